package plan

import (
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/speaker/election"
)

// What speakers report in heartbeats reaches the election: links without
// carrier and claims; a node that reports nothing while others do has
// unknown claims (an older speaker).
func TestAnnounceInputReported(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.201")
	down := []election.Link{{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}}}
	nodes := []*v1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "a"}}, {ObjectMeta: metav1.ObjectMeta{Name: "b"}}}
	for _, tc := range []struct {
		name     string
		reported map[string]Reported
		check    func(a, b election.Node) bool
	}{
		{"nothing reported", nil, func(a, b election.Node) bool {
			return !a.ClaimsUnknown && !b.ClaimsUnknown && a.NoCarrier == nil && a.Claims == nil
		}},
		{"a reports, b is older", map[string]Reported{"a": {NoCarrier: down, Claims: []netip.Addr{ip}}}, func(a, b election.Node) bool {
			return !a.ClaimsUnknown && len(a.NoCarrier) == 1 && len(a.Claims) == 1 && b.ClaimsUnknown
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := announceInput(Facts{Node: "a", Nodes: nodes, Members: Members{Reported: tc.reported}})
			if len(in.Nodes) != 2 || !tc.check(in.Nodes[0], in.Nodes[1]) {
				t.Fatalf("nodes %+v", in.Nodes)
			}
		})
	}
}

// The member layer probes the nodes whose Ready condition is not True,
// including those without one yet.
func TestNotReady(t *testing.T) {
	withReady := func(name string, s v1.ConditionStatus) *v1.Node {
		n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		n.Status.Conditions = []v1.NodeCondition{
			{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionFalse},
			{Type: v1.NodeReady, Status: s},
		}
		return n
	}
	nodes := []*v1.Node{
		withReady("ready", v1.ConditionTrue),
		withReady("not-ready", v1.ConditionFalse),
		withReady("unknown", v1.ConditionUnknown),
		{ObjectMeta: metav1.ObjectMeta{Name: "new"}},
	}
	if got := NotReady(nodes); !slices.Equal(got, []string{"not-ready", "unknown", "new"}) {
		t.Fatalf("NotReady = %v", got)
	}
}
