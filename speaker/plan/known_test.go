package plan

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// TestMakeL2Known: every node lists every L2 address with the interfaces
// it would announce it on, whether it won the election or not.
func TestMakeL2Known(t *testing.T) {
	eth1 := Link{Name: "eth1", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.21/24")}}
	tests := []struct {
		name  string
		facts func(*Facts)
		want  string
	}{
		{name: "every node, on the interface holding the subnet", want: "[{198.51.100.200 [eth0]}]"},
		{
			name: "named interfaces of the advertisement",
			facts: func(f *Facts) {
				f.Links = append(f.Links, eth1)
				f.L2Advertisements[0].Spec.Interfaces = []v1alpha1.InterfaceName{"eth1"}
			},
			want: "[{198.51.100.200 [eth1]}]",
		},
		{
			name: "a node the advertisement does not select: the interfaces on the subnet",
			facts: func(f *Facts) {
				f.Links = append(f.Links, eth1)
				f.L2Advertisements[0].Spec.Interfaces = []v1alpha1.InterfaceName{"eth1"}
				f.L2Advertisements[0].Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"lb": "yes"}}
			},
			want: "[{198.51.100.200 [eth0 eth1]}]",
		},
		{
			name: "an address shared by two Services once; a BGP-only address not at all",
			facts: func(f *Facts) {
				f.Services = append(f.Services, service("web2", lanIP), service("routed", bgpIP))
			},
			want: "[{198.51.100.200 [eth0]}]",
		},
		{
			name:  "no advertisement: nothing",
			facts: func(f *Facts) { f.L2Advertisements = []v1alpha1.L2Advertisement{} },
			want:  "[]",
		},
		{
			name: "excluded nodes too",
			facts: func(f *Facts) {
				f.Nodes[0].Labels = map[string]string{"node.kubernetes.io/exclude-from-external-load-balancers": ""}
			},
			want: "[{198.51.100.200 [eth0]}]",
		},
	}
	for _, tc := range tests {
		for _, self := range []string{"n1", "n2", "n3"} {
			t.Run(tc.name+"/"+self, func(t *testing.T) {
				f := site(self)
				if tc.facts != nil {
					tc.facts(&f)
				}
				res := Make(f, State{})
				if res.L2 == nil {
					t.Fatal("no L2 plan")
				}
				got := fmt.Sprint(res.L2.Known)
				if res.L2.Known == nil {
					got = "[]"
				}
				if got != tc.want {
					t.Errorf("Known = %s, want %s", got, tc.want)
				}
			})
		}
	}
}
