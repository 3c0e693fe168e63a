package agent

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/l2"
)

func TestToProbe(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.201"), netip.MustParseAddr("198.51.100.202")
	prev := []announce.Decision{{Service: "ns/x", IP: a, Node: "n2"}, {Service: "ns/y", IP: b, Node: ""}}
	plan := []announce.Decision{{Service: "ns/x", IP: a, Node: "n1"}, {Service: "ns/y", IP: b, Node: "n1"}, {Service: "ns/z", IP: c, Node: "n1"}}
	for _, tc := range []struct {
		name    string
		planned bool
		recheck map[netip.Addr]bool
		want    []netip.Addr
	}{
		// a moves from n2: no probe. b was announced by nobody, c is new.
		{"running", true, nil, []netip.Addr{b, c}},
		// The first plan of a process probes nothing new.
		{"first plan", false, nil, nil},
		// Addresses the pools list in conflict are probed, also when they
		// move and in the first plan.
		{"conflict moves", true, map[netip.Addr]bool{a: true}, []netip.Addr{a, b, c}},
		{"conflict after a restart", false, map[netip.Addr]bool{a: true}, []netip.Addr{a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := toProbe("n1", prev, plan, tc.planned, tc.recheck)
			var ips []netip.Addr
			for ip := range got {
				ips = append(ips, ip)
			}
			slices.SortFunc(ips, netip.Addr.Compare)
			if !slices.Equal(ips, tc.want) {
				t.Fatalf("got %v, want %v", ips, tc.want)
			}
		})
	}
}

func TestApplyConflicts(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")
	other := netip.MustParseAddr("198.51.100.201")
	mac, _ := net.ParseMAC("02:00:00:00:00:99")
	reports := map[string]*report{
		"ns/web": {namespace: "ns", service: "web", addresses: []netip.Addr{v4, v6}},
		"ns/db":  {namespace: "ns", service: "db", addresses: []netip.Addr{other}},
	}
	owner := map[netip.Addr]string{v4: "ns/web", v6: "ns/web", other: "ns/db"}
	conflicts := conflictsOf([]Responder{
		stubResponder{{IP: v6, MAC: mac, Interface: "eth0", Announced: true}},
		stubResponder{{IP: v4, MAC: mac, Interface: "eth1"}},
	})
	applyConflicts(reports, owner, conflicts)
	web := reports["ns/web"]
	if !slices.Equal(web.addresses, []netip.Addr{v6}) {
		t.Errorf("web announces %v; the address found in use must go, the one claimed later stays", web.addresses)
	}
	want := []v1alpha1.AddressConflict{
		{Address: v4.String(), MAC: mac.String(), Interface: "eth1"},
		{Address: v6.String(), MAC: mac.String(), Interface: "eth0", Announced: true},
	}
	if !slices.Equal(web.conflicts, want) {
		t.Errorf("web conflicts %+v, want %+v", web.conflicts, want)
	}
	if db := reports["ns/db"]; len(db.conflicts) != 0 || len(db.addresses) != 1 {
		t.Errorf("db changed: %+v", db)
	}
}

// stubResponder only reports conflicts.
type stubResponder []l2.Conflict

func (stubResponder) SetAnnounced([]netip.Addr)  {}
func (stubResponder) Announce(_, _ []netip.Addr) {}
func (stubResponder) Reannounce()                {}
func (s stubResponder) Conflicts() []l2.Conflict { return s }
