package kernelarp

import (
	"net/netip"
	"slices"
	"testing"
)

func TestAnswered(t *testing.T) {
	ip := netip.MustParseAddr
	v4, v4b, v6 := ip("198.51.100.200"), ip("198.51.100.201"), ip("2001:db8:100::200")
	onEth0 := func(ips ...netip.Addr) []Address {
		var out []Address
		for _, x := range ips {
			out = append(out, Address{IP: x, Interfaces: []string{"eth0"}})
		}
		return out
	}
	ipvs := map[string][]netip.Addr{
		"eth0":       {ip("198.51.100.12"), ip("2001:db8:100::12")},
		"kube-ipvs0": {v4, v4b, v6},
	}
	tests := []struct {
		name      string
		addrs     []Address
		local     map[string][]netip.Addr
		arpIgnore map[string]int
		want      []Answer
	}{
		{
			name: "ipvs, default arp_ignore 0: every IPv4 address, no IPv6", addrs: onEth0(v4, v4b, v6), local: ipvs,
			arpIgnore: map[string]int{"eth0": 0},
			want: []Answer{
				{IP: v4, Interface: "eth0", HeldOn: "kube-ipvs0"},
				{IP: v4b, Interface: "eth0", HeldOn: "kube-ipvs0"},
			},
		},
		{
			name: "ipvs, strictARP (arp_ignore 1)", addrs: onEth0(v4, v6), local: ipvs,
			arpIgnore: map[string]int{"eth0": 1},
		},
		{
			name: "arp_ignore 2 is as strict here", addrs: onEth0(v4), local: ipvs,
			arpIgnore: map[string]int{"eth0": 2},
		},
		{
			name: "arp_ignore 3 still answers for global addresses elsewhere", addrs: onEth0(v4), local: ipvs,
			arpIgnore: map[string]int{"eth0": 3},
			want:      []Answer{{IP: v4, Interface: "eth0", HeldOn: "kube-ipvs0", ARPIgnore: 3}},
		},
		{
			name: "reserved arp_ignore 5 acts as 0", addrs: onEth0(v4), local: ipvs,
			arpIgnore: map[string]int{"eth0": 5},
			want:      []Answer{{IP: v4, Interface: "eth0", HeldOn: "kube-ipvs0", ARPIgnore: 5}},
		},
		{
			name: "arp_ignore 8 never answers, even on the interface", addrs: onEth0(v4),
			local:     map[string][]netip.Addr{"eth0": {v4}},
			arpIgnore: map[string]int{"eth0": 8},
		},
		{
			name: "on the announcing interface itself: both families, whatever arp_ignore below 8", addrs: onEth0(v4, v6),
			local:     map[string][]netip.Addr{"eth0": {v4, v6}, "kube-ipvs0": {v4}},
			arpIgnore: map[string]int{"eth0": 1},
			want: []Answer{
				{IP: v4, Interface: "eth0", HeldOn: "eth0", ARPIgnore: 1},
				{IP: v6, Interface: "eth0", HeldOn: "eth0"},
			},
		},
		{
			name: "IPv6 needs no arp_ignore", addrs: onEth0(v6),
			local: map[string][]netip.Addr{"eth0": {v6}},
			want:  []Answer{{IP: v6, Interface: "eth0", HeldOn: "eth0"}},
		},
		{
			name: "arp_ignore unknown: IPv4 not checked", addrs: onEth0(v4), local: ipvs,
		},
		{
			name: "only the interfaces the address is announced on", local: ipvs,
			addrs:     []Address{{IP: v4, Interfaces: []string{"eth1", "eth0"}}},
			arpIgnore: map[string]int{"eth0": 1, "eth1": 0},
			want:      []Answer{{IP: v4, Interface: "eth1", HeldOn: "kube-ipvs0"}},
		},
		{
			name: "an address nobody holds", addrs: onEth0(ip("198.51.100.250")), local: ipvs,
			arpIgnore: map[string]int{"eth0": 0},
		},
		{
			name: "on lo counts too; a duplicate address counts once", local: map[string][]netip.Addr{"lo": {v4}},
			addrs:     append(onEth0(v4), onEth0(v4)...),
			arpIgnore: map[string]int{"eth0": 0},
			want:      []Answer{{IP: v4, Interface: "eth0", HeldOn: "lo"}},
		},
		{
			name: "no address announced", local: ipvs, arpIgnore: map[string]int{"eth0": 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Answered(tc.addrs, tc.local, tc.arpIgnore)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Answered =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestARPIgnoreNeeded(t *testing.T) {
	ip := netip.MustParseAddr
	addrs := []Address{
		{IP: ip("198.51.100.200"), Interfaces: []string{"eth1", "eth0"}},
		{IP: ip("198.51.100.201"), Interfaces: []string{"eth2"}},
		{IP: ip("2001:db8:100::200"), Interfaces: []string{"eth3"}},
	}
	for _, tc := range []struct {
		name  string
		local map[string][]netip.Addr
		want  []string
	}{
		{name: "no address held: nothing to read", local: map[string][]netip.Addr{"eth0": {ip("198.51.100.12")}}},
		{name: "an IPv4 address held: its announcing interfaces",
			local: map[string][]netip.Addr{"kube-ipvs0": {ip("198.51.100.200"), ip("2001:db8:100::200")}},
			want:  []string{"eth0", "eth1"}},
		{name: "IPv6 needs no arp_ignore", local: map[string][]netip.Addr{"kube-ipvs0": {ip("2001:db8:100::200")}}},
		{name: "both IPv4 addresses held",
			local: map[string][]netip.Addr{"kube-ipvs0": {ip("198.51.100.200")}, "eth2": {ip("198.51.100.201")}},
			want:  []string{"eth0", "eth1", "eth2"}},
	} {
		if got := ARPIgnoreNeeded(addrs, tc.local); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEffective(t *testing.T) {
	for _, tc := range []struct{ all, iface, want int }{{0, 0, 0}, {1, 0, 1}, {0, 1, 1}, {8, 1, 8}, {2, 3, 3}} {
		if got := Effective(tc.all, tc.iface); got != tc.want {
			t.Errorf("Effective(%d, %d) = %d, want %d", tc.all, tc.iface, got, tc.want)
		}
	}
}

func TestCount(t *testing.T) {
	ip := netip.MustParseAddr
	as := []Answer{
		{IP: ip("198.51.100.200"), Interface: "eth0"},
		{IP: ip("198.51.100.200"), Interface: "eth1"},
		{IP: ip("198.51.100.201"), Interface: "eth0"},
		{IP: ip("2001:db8:100::200"), Interface: "eth0"},
	}
	if v4, v6 := Count(as); v4 != 2 || v6 != 1 {
		t.Errorf("Count = %d, %d; want 2, 1", v4, v6)
	}
	if v4, v6 := Count(nil); v4 != 0 || v6 != 0 {
		t.Errorf("Count(nil) = %d, %d", v4, v6)
	}
}

// TestReadARPIgnore reads this namespace's own settings: lo always exists,
// and an interface that does not is reported, not guessed.
func TestReadARPIgnore(t *testing.T) {
	got, err := ReadARPIgnore([]string{"lo", "beacon-none0"})
	if err == nil {
		t.Error("no error for an interface that does not exist")
	}
	all, err1 := readInt(procConf + "/all/arp_ignore")
	lo, err2 := readInt(procConf + "/lo/arp_ignore")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if v, ok := got["lo"]; !ok || v != max(all, lo) {
		t.Errorf("lo: %d (read: %v), want %d", v, ok, max(all, lo))
	}
	if _, ok := got["beacon-none0"]; ok {
		t.Error("a value for an interface that does not exist")
	}
}
