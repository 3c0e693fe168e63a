package plan

import (
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/election"
)

// TestWhyWithdrawn: each way an address leaves a node gets its own reason,
// from the new plan as every speaker computes it.
func TestWhyWithdrawn(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.200")
	pool := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.51.100.200-198.51.100.250"}
	pools := config.ParsePools([]v1alpha1.IPPool{pool})
	l2 := func(nodeSel map[string]string) *config.L2Advertisements {
		ad := v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
		ad.Spec.IPPools = []string{"lan"}
		if nodeSel != nil {
			ad.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: nodeSel}
		}
		return config.ParseL2Advertisements([]v1alpha1.L2Advertisement{ad}, pools)
	}
	// Which of n1, n2 wins the address when both may announce it.
	winner, _ := election.Announcer(ip, []election.Candidate{{Name: "n1", Eligible: true}, {Name: "n2", Eligible: true}})
	loser := "n1"
	if winner == "n1" {
		loser = "n2"
	}
	web := announce.Service{Key: "default/web", IPs: []netip.Addr{ip}}
	local := announce.Service{Key: "default/web", IPs: []netip.Addr{ip}, Local: true, ReadyEndpoints: map[string]int{winner: 1}}
	node := func(name string, l labels.Set, mut ...func(*election.Node)) election.Node {
		n := election.Node{Name: name, Labels: l, Alive: true}
		for _, m := range mut {
			m(&n)
		}
		return n
	}
	for _, tc := range []struct {
		name string
		node string // the node that stopped announcing
		in   announce.Input
		bgp  bool
		want string
	}{
		{
			name: "lost the election", node: loser,
			in:   announce.Input{Nodes: []election.Node{node("n1", nil), node("n2", nil)}, Services: []announce.Service{web}, Pools: pools, L2: l2(nil)},
			want: "node " + winner + " announces it now (elected among the eligible nodes)",
		},
		{
			name: "Service lost the address", node: "n1",
			in:   announce.Input{Nodes: []election.Node{node("n1", nil)}, Pools: pools, L2: l2(nil)},
			want: "the Service no longer has this address (or is no longer a LoadBalancer Service Beacon handles)",
		},
		{
			name: "excluded (draining)", node: "n1",
			in:   announce.Input{Nodes: []election.Node{node("n1", labels.Set{election.ExcludeLabel: ""}), node("n2", nil)}, Services: []announce.Service{web}, Pools: pools, L2: l2(nil)},
			want: "the node is labelled " + election.ExcludeLabel,
		},
		{
			name: "network unavailable", node: "n1",
			in:   announce.Input{Nodes: []election.Node{node("n1", nil, func(n *election.Node) { n.NetworkUnavailable = true })}, Services: []announce.Service{web}, Pools: pools, L2: l2(nil)},
			want: "the node's NetworkUnavailable condition is True",
		},
		{
			name: "no ready local endpoint", node: loser,
			in:   announce.Input{Nodes: []election.Node{node("n1", nil), node("n2", nil)}, Services: []announce.Service{local}, Pools: pools, L2: l2(nil)},
			want: "externalTrafficPolicy is Local and the node has no ready endpoint of the Service",
		},
		{
			name: "advertisement no longer selects the node", node: "n1",
			in:   announce.Input{Nodes: []election.Node{node("n1", nil), node("n2", labels.Set{"lb": "yes"})}, Services: []announce.Service{web}, Pools: pools, L2: l2(map[string]string{"lb": "yes"})},
			want: "no L2Advertisement of pool lan selects this node any more",
		},
		{
			name: "advertisement deleted", node: "n1",
			in:   announce.Input{Nodes: []election.Node{node("n1", nil)}, Services: []announce.Service{web}, Pools: pools, L2: config.ParseL2Advertisements(nil, pools)},
			want: "no L2Advertisement selects pool lan",
		},
		{
			name: "pool deleted", node: "n1",
			in:   announce.Input{Nodes: []election.Node{node("n1", nil)}, Services: []announce.Service{web}, Pools: config.ParsePools(nil), L2: l2(nil)},
			want: "the address is in no IPPool",
		},
		{
			name: "BGP: no advertisement any more", node: "n1", bgp: true,
			in:   announce.Input{Nodes: []election.Node{node("n1", nil)}, Services: []announce.Service{web}, Pools: pools},
			want: "no BGPAdvertisement announces it from this node to a BGPPeer of this node any more",
		},
		{
			name: "BGP: no ready local endpoint", node: loser, bgp: true,
			in:   announce.Input{Nodes: []election.Node{node(loser, nil)}, Services: []announce.Service{local}, Pools: pools},
			want: "externalTrafficPolicy is Local and the node has no ready endpoint of the Service",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d *announce.Decision
			if !tc.bgp {
				for _, x := range announce.Plan(tc.in) {
					if x.Service == "default/web" && x.IP == ip {
						d = &x
					}
				}
			}
			if got := whyWithdrawn(tc.in, tc.node, "default/web", ip, d); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestWithdrawnL2 lists only addresses this node announced at the last
// sync and does not announce now.
func TestWithdrawnL2(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.201"), netip.MustParseAddr("198.51.100.202")
	prev := []announce.Decision{
		{Service: "ns/x", IP: a, Node: "n1"},
		{Service: "ns/x", IP: b, Node: "n1"}, // planned, but it never got an interface
		{Service: "ns/y", IP: c, Node: "n2"},
	}
	before := map[netip.Addr][]string{a: {"eth0"}}
	got := withdrawnL2(announce.Input{}, "n1", prev, nil, before, map[netip.Addr][]string{})
	if len(got) != 1 || got[0].service != "ns/x" || got[0].ip != a {
		t.Errorf("got %+v, want ns/x %s only", got, a)
	}
	if got := withdrawnL2(announce.Input{}, "n1", prev, nil, before, before); len(got) != 0 {
		t.Errorf("still announced, got %+v", got)
	}
}
