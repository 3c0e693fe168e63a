package announce

import (
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/election"
)

func pools(t *testing.T) *config.Pools {
	t.Helper()
	mk := func(name string, addrs ...string) v1alpha1.IPPool {
		p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
		for _, a := range addrs {
			p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(a))
		}
		return p
	}
	ps := config.ParsePools([]v1alpha1.IPPool{
		mk("lan", "198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"),
		mk("routed", "203.0.113.0/24"),
	})
	if len(ps.Invalid) > 0 {
		t.Fatal(ps.Invalid)
	}
	return ps
}

func ads(ps *config.Pools, specs ...v1alpha1.L2AdvertisementSpec) *config.L2Advertisements {
	var in []v1alpha1.L2Advertisement
	for i, s := range specs {
		in = append(in, v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: string(rune('a' + i))}, Spec: s})
	}
	return config.ParseL2Advertisements(in, ps)
}

var (
	lanIP  = netip.MustParseAddr("198.51.100.200")
	lanIP6 = netip.MustParseAddr("2001:db8:100::200")
	bgpIP  = netip.MustParseAddr("203.0.113.5")
	outIP  = netip.MustParseAddr("192.0.2.9")
)

func nodes(names ...string) []election.Node {
	var out []election.Node
	for _, n := range names {
		out = append(out, election.Node{Name: n, Alive: true, Labels: labels.Set{"name": n}})
	}
	return out
}

func TestPlan(t *testing.T) {
	ps := pools(t)
	lanOnly := v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"}}
	three := nodes("node1", "node2", "node3")
	// Whoever the hash picks among all three is the reference announcer.
	all := election.Candidates(three, nil, election.Service{})
	ref, _ := election.Announcer(lanIP, all)

	tests := []struct {
		name   string
		in     Input
		node   string // expected announcer of the first decision ("" = none)
		reason string
		prober string // expected prober of the first decision ("" = none)
	}{
		{
			name:   "not in any pool",
			in:     Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{outIP}}}, Pools: ps, L2: ads(ps, lanOnly)},
			reason: NoPool,
		},
		{
			name:   "pool without advertisement",
			in:     Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{bgpIP}}}, Pools: ps, L2: ads(ps, lanOnly)},
			reason: NoAdvertisement,
		},
		{
			name: "elected among all nodes",
			in:   Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}}}, Pools: ps, L2: ads(ps, lanOnly)},
			node: ref,
		},
		{
			name: "node selector limits candidates",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}}}, Pools: ps, L2: ads(ps, v1alpha1.L2AdvertisementSpec{
				IPPools:      []string{"lan"},
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "node3"}},
			})},
			node: "node3",
		},
		{
			name: "local policy follows the endpoint",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}, Local: true,
				ReadyEndpoints: map[string]int{"node2": 1}}}, Pools: ps, L2: ads(ps, lanOnly)},
			node: "node2",
		},
		{
			name: "local policy without endpoints: nobody",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}, Local: true}},
				Pools: ps, L2: ads(ps, lanOnly)},
			reason: NoEligibleNode,
		},
		{
			name: "local policy without endpoints, address offered: the election ignoring endpoints probes",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}, Offered: []netip.Addr{lanIP}, Local: true}},
				Pools: ps, L2: ads(ps, lanOnly)},
			reason: NoEligibleNode, prober: ref,
		},
		{
			name: "offered with an endpoint: announced, nobody probes apart",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}, Offered: []netip.Addr{lanIP}, Local: true,
				ReadyEndpoints: map[string]int{"node2": 1}}}, Pools: ps, L2: ads(ps, lanOnly)},
			node: "node2",
		},
		{
			name: "offered, cluster policy, no node selected: nobody probes",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}, Offered: []netip.Addr{lanIP}}}, Pools: ps,
				L2: ads(ps, v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"},
					NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "none"}}})},
			reason: NoEligibleNode,
		},
		{
			name: "offered, local policy, no node selected: nobody probes",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}, Offered: []netip.Addr{lanIP}, Local: true}}, Pools: ps,
				L2: ads(ps, v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"},
					NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "none"}}})},
			reason: NoEligibleNode,
		},
		{
			name: "offered, local policy, only node3 selected: node3 probes",
			in: Input{Nodes: three, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}, Offered: []netip.Addr{lanIP}, Local: true,
				ReadyEndpoints: map[string]int{"node1": 1}}}, Pools: ps,
				L2: ads(ps, v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"},
					NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "node3"}}})},
			reason: NoEligibleNode, prober: "node3",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := Plan(tc.in)
			if len(ds) == 0 {
				t.Fatal("no decisions")
			}
			if ds[0].Node != tc.node || ds[0].Reason != tc.reason || ds[0].Prober != tc.prober {
				t.Fatalf("got node %q reason %q prober %q, want %q %q %q", ds[0].Node, ds[0].Reason, ds[0].Prober, tc.node, tc.reason, tc.prober)
			}
			if (tc.node != "" || tc.prober != "") && !ds[0].Interfaces.Any() {
				t.Fatal("announcer or prober has no interfaces")
			}
			if got := ProbedBy(tc.prober, ds); tc.prober != "" && len(got) != 1 {
				t.Fatalf("ProbedBy(%s) = %v", tc.prober, got)
			}
		})
	}
}

// A dead announcer's address moves, and only that one: every other node
// keeps what it announced.
func TestPlanFailoverMovesOnlyTheDeadNodesAddresses(t *testing.T) {
	ps := pools(t)
	l2 := ads(ps, v1alpha1.L2AdvertisementSpec{})
	var svcs []Service
	for a := lanIP; a.Compare(netip.MustParseAddr("198.51.100.250")) <= 0; a = a.Next() {
		svcs = append(svcs, Service{Key: "ns/" + a.String(), IPs: []netip.Addr{a}})
	}
	svcs = append(svcs, Service{Key: "ns/v6", IPs: []netip.Addr{lanIP6}})
	ns := nodes("node1", "node2", "node3")
	before := Plan(Input{Nodes: ns, Services: svcs, Pools: ps, L2: l2})
	ns[1].Alive = false
	after := Plan(Input{Nodes: ns, Services: svcs, Pools: ps, L2: l2})
	moved, counts := 0, map[string]int{}
	for i := range before {
		counts[before[i].Node]++
		if before[i].Node == after[i].Node {
			continue
		}
		if before[i].Node != "node2" {
			t.Fatalf("%s moved from live %s to %s", before[i].IP, before[i].Node, after[i].Node)
		}
		if after[i].Node == "" || after[i].Node == "node2" {
			t.Fatalf("%s not taken over: %q", before[i].IP, after[i].Node)
		}
		if after[i].Node != before[i].Standby {
			t.Fatalf("%s taken over by %s, but the standby was %q", before[i].IP, after[i].Node, before[i].Standby)
		}
		moved++
	}
	if moved != counts["node2"] || moved == 0 {
		t.Fatalf("moved %d, node2 announced %d", moved, counts["node2"])
	}
	if len(For("node2", after)) != 0 {
		t.Fatal("dead node still announces")
	}
}

// failback: Never keeps an address with the node that claims it; Immediate
// ignores claims; a node whose announcing interface lost carrier hands the
// address on.
func TestPlanStickyAndCarrier(t *testing.T) {
	ps := pools(t)
	never := v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"}, Failback: v1alpha1.FailbackNever}
	immediate := v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"}}
	named := v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"}, Interfaces: []v1alpha1.InterfaceName{"eth1"}}
	rank := election.Rank(lanIP, election.Candidates(nodes("node1", "node2", "node3"), nil, election.Service{}))
	first, second := rank[0], rank[1]
	with := func(f func(*election.Node)) []election.Node {
		ns := nodes("node1", "node2", "node3")
		for i := range ns {
			f(&ns[i])
		}
		return ns
	}
	secondClaims := with(func(n *election.Node) {
		if n.Name == second {
			n.Claims = []netip.Addr{lanIP}
		}
	})
	lanDown := []election.Link{{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}}}
	firstNoCarrier := with(func(n *election.Node) {
		if n.Name == first {
			n.NoCarrier = lanDown
		}
	})
	for _, tc := range []struct {
		name   string
		nodes  []election.Node
		ads    []v1alpha1.L2AdvertisementSpec
		node   string
		sticky bool
	}{
		{"Immediate ignores the claim", secondClaims, []v1alpha1.L2AdvertisementSpec{immediate}, first, false},
		{"Never keeps it with the claimant", secondClaims, []v1alpha1.L2AdvertisementSpec{never}, second, true},
		{"Never wins over Immediate", secondClaims, []v1alpha1.L2AdvertisementSpec{immediate, never}, second, true},
		{"Never without claims: by score", nodes("node1", "node2", "node3"), []v1alpha1.L2AdvertisementSpec{never}, first, true},
		{"no carrier on the on-link interface", firstNoCarrier, []v1alpha1.L2AdvertisementSpec{immediate}, second, false},
		{"no carrier on an interface not announcing", firstNoCarrier, []v1alpha1.L2AdvertisementSpec{named}, first, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := Plan(Input{Nodes: tc.nodes, Services: []Service{{Key: "a/s", IPs: []netip.Addr{lanIP}}}, Pools: ps, L2: ads(ps, tc.ads...)})
			if len(ds) != 1 || ds[0].Node != tc.node || ds[0].Sticky != tc.sticky {
				t.Fatalf("got %+v, want node %s sticky %v", ds, tc.node, tc.sticky)
			}
		})
	}
}
