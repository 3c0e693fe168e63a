package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestPlanAddresses(t *testing.T) {
	topo, err := Plan(Config{Nodes: 3, PodsPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(topo.Nodes); got != 3 {
		t.Fatalf("nodes: %d", got)
	}
	if got := len(topo.Pods); got != 6 {
		t.Fatalf("pods: %d", got)
	}
	n2 := topo.Nodes[1]
	for _, c := range []struct{ got, want string }{
		{topo.Router.IPv4.String(), "198.51.100.1"},
		{topo.Host.IPv4.String(), "198.51.100.2"},
		{topo.Host.IPv6.String(), "2001:db8:100::2"},
		{topo.ClientLAN.IPv4.String(), "198.51.100.100"},
		{topo.ClientLAN.IPv6.String(), "2001:db8:100::100"},
		{n2.Name, "node2"},
		{n2.Netns, "beacon-node2"},
		{n2.IPv4.String(), "198.51.100.12"},
		{n2.IPv6.String(), "2001:db8:100::12"},
		{n2.MAC.String(), "02:bc:00:00:00:0c"},
		{n2.PodCIDRv4.String(), "198.18.2.0/24"},
		{n2.PodCIDRv6.String(), "2001:db8:18:2::/64"},
		{n2.GatewayV4.String(), "198.18.2.1"},
		{n2.GatewayV6.String(), "2001:db8:18:2::1"},
		{topo.Pods[3].Name, "n2-p2"},
		{topo.Pods[3].Netns, "beacon-n2-p2"},
		{topo.Pods[3].Node, "node2"},
		{topo.Pods[3].IPv4.String(), "198.18.2.3"},
		{topo.Pods[3].IPv6.String(), "2001:db8:18:2::3"},
		{topo.Pods[3].MAC.String(), "02:bc:18:02:00:02"},
		{topo.ClientExt.Name, "client-ext"},
		{topo.ClientExt.Netns, "beacon-client-ext"},
		{topo.ClientExt.IPv4.String(), "198.18.254.2"},
		{topo.ClientExt.IPv6.String(), "2001:db8:192::2"},
		{topo.ClientExt.MAC.String(), "02:bc:00:00:fe:02"},
		{topo.RouterExtV4.String(), "198.18.254.1"},
		{topo.RouterExtV6.String(), "2001:db8:192::1"},
		{topo.RouterExtMAC.String(), "02:bc:00:00:fe:01"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

// Every address must be in the documented lab ranges, unique, and every MAC
// unique, unicast and locally administered.
func TestPlanStaysInLabRanges(t *testing.T) {
	topo, err := Plan(Config{Nodes: MaxNodes, PodsPerNode: 3})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]string{}
	macs := map[string]string{}
	check := func(who string, a netip.Addr, in ...netip.Prefix) {
		ok := false
		for _, p := range in {
			ok = ok || p.Contains(a)
		}
		if !ok {
			t.Errorf("%s: %v outside %v", who, a, in)
		}
		if other, dup := seen[a]; dup {
			t.Errorf("%s: %v already used by %s", who, a, other)
		}
		seen[a] = who
	}
	checkMAC := func(who string, m []byte) {
		if m[0]&1 != 0 || m[0]&2 == 0 {
			t.Errorf("%s: MAC %x not unicast locally administered", who, m)
		}
		if other, dup := macs[string(m)]; dup {
			t.Errorf("%s: MAC %x already used by %s", who, m, other)
		}
		macs[string(m)] = who
	}
	for _, s := range topo.Stations() {
		check(s.Name, s.IPv4, LANv4)
		check(s.Name, s.IPv6, LANv6)
		checkMAC(s.Name, s.MAC)
	}
	check("client-ext", topo.ClientExt.IPv4, ExternalV4)
	check("client-ext", topo.ClientExt.IPv6, ExternalV6)
	checkMAC("client-ext", topo.ClientExt.MAC)
	check("router/ext", topo.RouterExtV4, ExternalV4)
	check("router/ext", topo.RouterExtV6, ExternalV6)
	checkMAC("router/ext", topo.RouterExtMAC)
	for _, n := range topo.Nodes {
		// The external link shares 198.18.0.0/16 with the pods, never a
		// node's pod CIDR.
		if n.PodCIDRv4.Overlaps(ExternalV4) || n.PodCIDRv6.Overlaps(ExternalV6) {
			t.Errorf("%s: pod CIDRs %v %v overlap the external link", n.Name, n.PodCIDRv4, n.PodCIDRv6)
		}
		check(n.Name, n.GatewayV4, PodsV4)
		check(n.Name, n.GatewayV6, PodsV6)
		if !PodsV4.Contains(n.PodCIDRv4.Addr()) || !PodsV6.Contains(n.PodCIDRv6.Addr()) {
			t.Errorf("%s: pod CIDRs %v %v outside pod ranges", n.Name, n.PodCIDRv4, n.PodCIDRv6)
		}
	}
	for _, p := range topo.Pods {
		n := topo.Nodes[p.NodeIndex-1]
		check(p.Name, p.IPv4, n.PodCIDRv4)
		check(p.Name, p.IPv6, n.PodCIDRv6)
		checkMAC(p.Name, p.MAC)
		checkMAC(p.Name+"/node", p.NodeMAC)
		if len(p.NodeLink) > 15 {
			t.Errorf("%s: link name too long", p.Name)
		}
	}
}

func TestPlanLimits(t *testing.T) {
	for _, c := range []Config{{Nodes: MaxNodes + 1}, {Nodes: -1}, {PodsPerNode: MaxPodsPerNode + 1}} {
		if _, err := Plan(c); err == nil {
			t.Errorf("Plan(%+v) accepted", c)
		}
	}
}

func TestLANRoutes(t *testing.T) {
	topo, _ := Plan(Config{Nodes: 2, PodsPerNode: 1})
	r := topo.LANRoutes("node1")
	if len(r) != 2 || r[0].Dst.String() != "198.18.2.0/24" || r[0].Gateway.String() != "198.51.100.12" ||
		r[1].Dst.String() != "2001:db8:18:2::/64" || r[1].Gateway.String() != "2001:db8:100::12" {
		t.Errorf("node1 routes: %+v", r)
	}
	if got := len(topo.LANRoutes(ClientLAN)); got != 4 {
		t.Errorf("client-lan routes: %d, want 4", got)
	}
}

func TestExternalRoutes(t *testing.T) {
	topo, _ := Plan(Config{Nodes: 2, PodsPerNode: 1})
	str := func(rs []Route) string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Dst.String()+" via "+r.Gateway.String()+" dev "+r.Dev)
		}
		return strings.Join(out, "; ")
	}
	for name, want := range map[string]string{
		"node1":      "198.18.254.0/24 via 198.51.100.1 dev eth0; 2001:db8:192::/64 via 2001:db8:100::1 dev eth0",
		"host":       "198.18.254.0/24 via 198.51.100.1 dev eth0; 2001:db8:192::/64 via 2001:db8:100::1 dev eth0",
		"client-lan": "198.18.254.0/24 via 198.51.100.1 dev eth0; 2001:db8:192::/64 via 2001:db8:100::1 dev eth0",
		"client-ext": "0.0.0.0/0 via 198.18.254.1 dev eth0; ::/0 via 2001:db8:192::1 dev eth0",
		"router":     "", // connected routes only: nothing static, the BGP pools come from BGP
		"n1-p1":      "",
	} {
		if got := str(topo.ExternalRoutes(name)); got != want {
			t.Errorf("ExternalRoutes(%s) = %q, want %q", name, got, want)
		}
	}
	// No namespace routes the BGP pools or the uplink statically.
	uplink := netip.MustParsePrefix("192.0.2.0/24")
	for _, s := range append(topo.Stations(), topo.ClientExt) {
		for _, r := range append(topo.LANRoutes(s.Name), topo.ExternalRoutes(s.Name)...) {
			if r.Dst.Bits() > 0 && (r.Dst.Overlaps(BGPPoolV4) || r.Dst.Overlaps(BGPPoolV6) || r.Dst.Overlaps(uplink)) {
				t.Errorf("%s: route %v", s.Name, r.Dst)
			}
		}
	}
	if ExternalV4.Overlaps(uplink) {
		t.Errorf("ExternalV4 %v overlaps this machine's uplink %v", ExternalV4, uplink)
	}
}

func TestNamespacesIncludeClientExt(t *testing.T) {
	topo, _ := Plan(Config{Nodes: 1, PodsPerNode: 1})
	got := strings.Join(topo.Namespaces(), " ")
	if want := "beacon-lan beacon-host beacon-router beacon-client-lan beacon-node1 beacon-client-ext beacon-n1-p1"; got != want {
		t.Errorf("Namespaces = %q, want %q", got, want)
	}
}

func TestNetnsName(t *testing.T) {
	if Netns("node1") != "beacon-node1" || Netns("beacon-node1") != "beacon-node1" {
		t.Error("Netns")
	}
}

func TestParsers(t *testing.T) {
	r, err := parsePidRecord([]byte("123 456 beacon-host etcd\n"))
	if err != nil || r.Pid != 123 || r.Start != 456 || r.Netns != "beacon-host" || r.Argv0 != "etcd" {
		t.Errorf("parsePidRecord: %+v %v", r, err)
	}
	if _, err := parsePidRecord([]byte("x")); err == nil {
		t.Error("parsePidRecord accepted garbage")
	}
	if ino, ok := parseNsLink("net:[4026532281]"); !ok || ino != 4026532281 {
		t.Errorf("parseNsLink: %d %v", ino, ok)
	}
	for _, bad := range []string{"mnt:[1]", "net:[x]", "net:[1"} {
		if _, ok := parseNsLink(bad); ok {
			t.Errorf("parseNsLink(%q) accepted", bad)
		}
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestIsLabName(t *testing.T) {
	for name, want := range map[string]bool{
		"beacon-host": true, "beacon-lan": true, "beacon-router": true, "beacon-client-lan": true,
		"beacon-client-ext": true, "beacon-node1": true, "beacon-node12": true, "beacon-n1-p1": true,
		"beacon-n12-p200": true, "beacon-lab-frr": true,
		"beacon-t-p-6801": false, "beacon-t-r-6801": false, "beacon-": false, "host": false,
		"beacon-node": false, "beacon-hostx": false, "xbeacon-host": false,
	} {
		if got := IsLabName(name); got != want {
			t.Errorf("IsLabName(%q) = %v, want %v", name, got, want)
		}
	}
	topo, _ := Plan(Config{Nodes: 3, PodsPerNode: 2})
	for _, ns := range topo.Namespaces() {
		if !IsLabName(ns) {
			t.Errorf("planned namespace %s is not a lab name", ns)
		}
	}
}

func TestPlanHeartbeatNetwork(t *testing.T) {
	plain, err := Plan(Config{Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := Plan(Config{Nodes: 2, HeartbeatNetwork: true})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Heartbeat || plain.Nodes[0].HeartbeatIPv4.IsValid() || slices.Contains(plain.Namespaces(), Netns(HeartbeatSwitch)) {
		t.Fatalf("heartbeat network without asking: %+v", plain.Nodes[0])
	}
	if !slices.Contains(hb.Namespaces(), Netns(HeartbeatSwitch)) || !IsLabName(Netns(HeartbeatSwitch)) {
		t.Fatalf("namespaces %v", hb.Namespaces())
	}
	for i, n := range hb.Nodes {
		want := netip.AddrFrom4([4]byte{198, 18, 253, byte(11 + i)})
		if n.HeartbeatIPv4 != want || !HeartbeatV4.Contains(n.HeartbeatIPv4) || n.HeartbeatMAC.String() != fmt.Sprintf("02:bc:00:00:fd:%02x", 11+i) {
			t.Fatalf("%s: %v %v", n.Name, n.HeartbeatIPv4, n.HeartbeatMAC)
		}
		if a := nodeAddresses(n); a[0].Address != want.String() || a[1].Address != n.IPv4.String() {
			t.Fatalf("%s: addresses %v: the heartbeat address must come first", n.Name, a)
		}
	}
}
