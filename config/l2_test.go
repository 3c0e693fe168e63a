package config

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

func l2ad(name string, opts ...func(*v1alpha1.L2AdvertisementSpec)) v1alpha1.L2Advertisement {
	a := v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, o := range opts {
		o(&a.Spec)
	}
	return a
}

func pools(names ...string) func(*v1alpha1.L2AdvertisementSpec) {
	return func(s *v1alpha1.L2AdvertisementSpec) { s.IPPools = names }
}

func poolSel(sel string) func(*v1alpha1.L2AdvertisementSpec) {
	return func(s *v1alpha1.L2AdvertisementSpec) { s.IPPoolSelector = mustSelector(sel) }
}

func nodeSel(sel string) func(*v1alpha1.L2AdvertisementSpec) {
	return func(s *v1alpha1.L2AdvertisementSpec) { s.NodeSelector = mustSelector(sel) }
}

func ifaces(names ...string) func(*v1alpha1.L2AdvertisementSpec) {
	return func(s *v1alpha1.L2AdvertisementSpec) {
		for _, n := range names {
			s.Interfaces = append(s.Interfaces, v1alpha1.InterfaceName(n))
		}
	}
}

// mustSelector parses "k=v,k2 in (a,b)" into a LabelSelector.
func mustSelector(s string) *metav1.LabelSelector {
	sel, err := metav1.ParseToLabelSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

func withLabels(kv ...string) func(*v1alpha1.IPPool) {
	return func(p *v1alpha1.IPPool) {
		p.Labels = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func testPools() *Pools {
	return ParsePools([]v1alpha1.IPPool{
		ippool("lan", 0, "198.51.100.200-198.51.100.250", withLabels("scope", "lan")),
		ippool("lan6", 0, "2001:db8:100::200-2001:db8:100::250", withLabels("scope", "lan", "family", "v6")),
		ippool("wan", 0, "203.0.113.0/24", withLabels("scope", "wan")),
	})
}

// names renders advertisements as their names.
func names(ads []*L2Advertisement) string {
	var out []string
	for _, a := range ads {
		out = append(out, a.Name)
	}
	return strings.Join(out, ",")
}

func TestParseL2AdvertisementsSelectsPools(t *testing.T) {
	for _, tc := range []struct {
		name string
		ads  []v1alpha1.L2Advertisement
		// want maps each pool (and "ghost", an unknown pool) to the
		// advertisements selecting it.
		want map[string]string
	}{{
		name: "no advertisements: nothing announced",
		want: map[string]string{"lan": "", "lan6": "", "wan": "", "ghost": ""},
	}, {
		name: "empty spec selects every pool, even unknown ones",
		ads:  []v1alpha1.L2Advertisement{l2ad("all")},
		want: map[string]string{"lan": "all", "lan6": "all", "wan": "all", "ghost": "all"},
	}, {
		name: "by name; names of missing pools are kept for later",
		ads:  []v1alpha1.L2Advertisement{l2ad("a", pools("lan", "ghost", "lan"))},
		want: map[string]string{"lan": "a", "lan6": "", "wan": "", "ghost": "a"},
	}, {
		name: "by label selector",
		ads:  []v1alpha1.L2Advertisement{l2ad("a", poolSel("scope=lan"))},
		want: map[string]string{"lan": "a", "lan6": "a", "wan": "", "ghost": ""},
	}, {
		name: "names and selector add up",
		ads:  []v1alpha1.L2Advertisement{l2ad("a", pools("wan"), poolSel("family=v6"))},
		want: map[string]string{"lan": "", "lan6": "a", "wan": "a", "ghost": ""},
	}, {
		name: "an empty selector matches every pool with labels known",
		ads:  []v1alpha1.L2Advertisement{l2ad("a", func(s *v1alpha1.L2AdvertisementSpec) { s.IPPoolSelector = &metav1.LabelSelector{} })},
		want: map[string]string{"lan": "a", "lan6": "a", "wan": "a", "ghost": "a"},
	}, {
		name: "several advertisements, sorted by name",
		ads:  []v1alpha1.L2Advertisement{l2ad("z", pools("lan")), l2ad("b", poolSel("scope in (lan,wan)")), l2ad("m", pools("lan6"))},
		want: map[string]string{"lan": "b,z", "lan6": "b,m", "wan": "b", "ghost": ""},
	}, {
		name: "an invalid advertisement selects nothing, the others still work",
		ads: []v1alpha1.L2Advertisement{
			l2ad("bad", pools("lan"), func(s *v1alpha1.L2AdvertisementSpec) {
				s.IPPoolSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "scope", Operator: "Near"}}}
			}),
			l2ad("good", pools("lan")),
		},
		want: map[string]string{"lan": "good", "lan6": "", "wan": "", "ghost": ""},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l2 := ParseL2Advertisements(tc.ads, testPools())
			for pool, want := range tc.want {
				if got := names(l2.ForPool(pool)); got != want {
					t.Errorf("ForPool(%s) = %q, want %q", pool, got, want)
				}
				if got := l2.Announced(pool); got != (want != "") {
					t.Errorf("Announced(%s) = %v", pool, got)
				}
			}
		})
	}
}

func TestParseL2AdvertisementsInterfaces(t *testing.T) {
	ads := []v1alpha1.L2Advertisement{
		l2ad("edge", pools("lan"), nodeSel("role=edge"), ifaces("eth1", "eth0")),
		l2ad("edge-bond", pools("lan"), nodeSel("role=edge,bond=yes"), ifaces("bond0", "eth0")),
		l2ad("v6-anywhere", pools("lan6")),
		l2ad("wan-gw", pools("wan"), nodeSel("gw"), ifaces("wan0")),
		l2ad("wan-gw-all", pools("wan"), nodeSel("gw=all")),
	}
	for _, tc := range []struct {
		pool string
		node labels.Set
		want string // "" allows nothing, "*" all
	}{
		{"lan", labels.Set{"role": "edge"}, "eth0,eth1"},
		{"lan", labels.Set{"role": "edge", "bond": "yes"}, "bond0,eth0,eth1"},
		{"lan", labels.Set{"role": "core"}, ""},
		{"lan", nil, ""},
		{"lan6", nil, "*"},
		{"lan6", labels.Set{"role": "edge"}, "*"},
		{"wan", labels.Set{"gw": "yes"}, "wan0"},
		{"wan", labels.Set{"gw": "all"}, "*"}, // all wins over a list
		{"ghost", labels.Set{"role": "edge"}, ""},
	} {
		t.Run(fmt.Sprintf("%s/%v", tc.pool, tc.node), func(t *testing.T) {
			l2 := ParseL2Advertisements(ads, testPools())
			got := l2.Interfaces(tc.pool, tc.node)
			if got.String() != tc.want || got.Any() != (tc.want != "") {
				t.Fatalf("Interfaces = %q (any %v), want %q", got, got.Any(), tc.want)
			}
		})
	}
}

func TestInterfacesAllows(t *testing.T) {
	for _, tc := range []struct {
		set  Interfaces
		name string
		want bool
	}{
		{Interfaces{}, "eth0", false},
		{Interfaces{All: true}, "eth0", true},
		{Interfaces{Names: []string{"bond0", "eth0"}}, "eth0", true},
		{Interfaces{Names: []string{"bond0", "eth0"}}, "eth1", false},
	} {
		if got := tc.set.Allows(tc.name); got != tc.want {
			t.Errorf("%v.Allows(%s) = %v, want %v", tc.set, tc.name, got, tc.want)
		}
	}
}

func TestParseL2AdvertisementsErrors(t *testing.T) {
	bad := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "k", Operator: metav1.LabelSelectorOpIn}}}
	for _, tc := range []struct {
		name string
		ad   v1alpha1.L2Advertisement
		want string // substring of the error; "" means valid
	}{
		{"valid", l2ad("a", pools("lan"), nodeSel("x=y"), ifaces("eth0", "bond0.100", "a-b_c@d")), ""},
		{"duplicate names are merged", l2ad("a", pools("lan", "lan"), ifaces("eth0", "eth0")), ""},
		{"bad pool selector", l2ad("a", func(s *v1alpha1.L2AdvertisementSpec) { s.IPPoolSelector = bad }), "ipPoolSelector:"},
		{"bad node selector", l2ad("a", func(s *v1alpha1.L2AdvertisementSpec) { s.NodeSelector = bad }), "nodeSelector:"},
		{"empty pool name", l2ad("a", pools("")), "empty pool name"},
		{"interface too long", l2ad("a", ifaces("abcdefghijklmnop")), "longer than 15"},
		{"interface with slash", l2ad("a", ifaces("eth/0")), "contains"},
		{"interface with colon (alias)", l2ad("a", ifaces("eth0:1")), "contains"},
		{"interface with space", l2ad("a", ifaces("eth 0")), "contains"},
		{"interface dot", l2ad("a", ifaces(".")), "not allowed"},
		{"empty interface", l2ad("a", ifaces("")), "empty interface name"},
		{"errors are all reported", l2ad("a", pools(""), ifaces("..")), "empty pool name; interfaces:"},
		{"failback Never", l2ad("a", func(s *v1alpha1.L2AdvertisementSpec) { s.Failback = v1alpha1.FailbackNever }), ""},
		{"unknown failback", l2ad("a", func(s *v1alpha1.L2AdvertisementSpec) { s.Failback = "Sometimes" }), "failback:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l2 := ParseL2Advertisements([]v1alpha1.L2Advertisement{tc.ad}, nil)
			err := l2.Invalid["a"]
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want == "" && l2.ByName["a"] == nil:
				t.Fatal("valid advertisement missing")
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			case tc.want != "" && l2.ByName["a"] != nil:
				t.Fatal("invalid advertisement kept")
			}
		})
	}
}

func TestParseL2AdvertisementNormalises(t *testing.T) {
	l2 := ParseL2Advertisements([]v1alpha1.L2Advertisement{
		l2ad("a", pools("z", "a", "z"), ifaces("eth1", "eth0", "eth1")),
	}, nil)
	a := l2.ByName["a"]
	got := fmt.Sprint(a.Pools, a.Interfaces, sort.StringsAreSorted(a.Pools))
	if want := "[a z] [eth0 eth1] true"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if a.AllPools() {
		t.Fatal("AllPools with ipPools set")
	}
}

func TestL2AdvertisementsSticky(t *testing.T) {
	never := func(s *v1alpha1.L2AdvertisementSpec) { s.Failback = v1alpha1.FailbackNever }
	immediate := func(s *v1alpha1.L2AdvertisementSpec) { s.Failback = v1alpha1.FailbackImmediate }
	for _, tc := range []struct {
		name string
		ads  []v1alpha1.L2Advertisement
		want map[string]bool // pool -> sticky
	}{
		{"default is Immediate", []v1alpha1.L2Advertisement{l2ad("a", pools("lan"))}, map[string]bool{"lan": false}},
		{"Never", []v1alpha1.L2Advertisement{l2ad("a", pools("lan"), never)}, map[string]bool{"lan": true, "other": false}},
		{"Never wins", []v1alpha1.L2Advertisement{l2ad("a", pools("lan"), immediate), l2ad("b", pools("lan"), never, nodeSel("x=y"))}, map[string]bool{"lan": true}},
		{"all pools", []v1alpha1.L2Advertisement{l2ad("a", never)}, map[string]bool{"lan": true, "other": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l2 := ParseL2Advertisements(tc.ads, nil)
			for pool, want := range tc.want {
				if got := l2.Sticky(pool); got != want {
					t.Errorf("Sticky(%s) = %v, want %v", pool, got, want)
				}
			}
		})
	}
}
