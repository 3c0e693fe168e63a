package config

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// ippool builds an IPPool created at minute m from comma-separated blocks.
func ippool(name string, m int, blocks string, opts ...func(*v1alpha1.IPPool)) v1alpha1.IPPool {
	p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{
		Name:              name,
		CreationTimestamp: metav1.NewTime(time.Date(2025, 1, 1, 0, m, 0, 0, time.UTC)),
	}}
	if blocks != "" {
		for _, b := range strings.Split(blocks, ",") {
			p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(b))
		}
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func withSA(sa v1alpha1.ServiceAllocation) func(*v1alpha1.IPPool) {
	return func(p *v1alpha1.IPPool) { p.Spec.ServiceAllocation = &sa }
}

// describe renders the valid pools and the invalid ones' errors.
func describe(ps *Pools) string {
	var out []string
	for _, p := range ps.Sorted() {
		s := fmt.Sprintf("%s=%s", p.Name, join(p.Ranges))
		if len(p.Conflicts) > 0 {
			s += " conflicts:" + strings.Join(p.Conflicts, ",")
		}
		out = append(out, s)
	}
	var bad []string
	for name, err := range ps.Invalid {
		bad = append(bad, fmt.Sprintf("%s!%v", name, err))
	}
	sort.Strings(bad)
	return strings.Join(append(out, bad...), "; ")
}

func TestParsePools(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pools []v1alpha1.IPPool
		want  string
	}{{
		name:  "no overlap, blocks of one pool merged",
		pools: []v1alpha1.IPPool{ippool("a", 0, "10.0.0.0/25,10.0.0.128/25,10.0.0.100-10.0.0.200,2001:db8::/120"), ippool("b", 0, "10.1.0.0/24")},
		want:  "a=10.0.0.0/24 2001:db8::/120; b=10.1.0.0/24",
	}, {
		name:  "the younger pool loses the overlap and names the older",
		pools: []v1alpha1.IPPool{ippool("young", 5, "10.0.0.0/24"), ippool("old", 1, "10.0.0.128/25,10.0.1.0/24")},
		want:  "old=10.0.0.128-10.0.1.255; young=10.0.0.0/25 conflicts:old",
	}, {
		name:  "creation time decides, not name or list order",
		pools: []v1alpha1.IPPool{ippool("a", 9, "10.0.0.0/24"), ippool("z", 2, "10.0.0.0/24")},
		want:  "a= conflicts:z; z=10.0.0.0/24",
	}, {
		name:  "same creation time: name decides",
		pools: []v1alpha1.IPPool{ippool("b", 0, "10.0.0.0/24"), ippool("a", 0, "10.0.0.10-10.0.0.19")},
		want:  "a=10.0.0.10-10.0.0.19; b=10.0.0.0-10.0.0.9 10.0.0.20-10.0.0.255 conflicts:a",
	}, {
		name: "overlapping several older pools",
		pools: []v1alpha1.IPPool{
			ippool("c", 3, "10.0.0.0/24,2001:db8::/64"),
			ippool("a", 1, "10.0.0.0/26"),
			ippool("b", 2, "10.0.0.192/26,2001:db8::/120"),
		},
		want: "a=10.0.0.0/26; b=10.0.0.192/26 2001:db8::/120; c=10.0.0.64-10.0.0.191 2001:db8::100-2001:db8::ffff:ffff:ffff:ffff conflicts:a,b",
	}, {
		name: "an invalid pool claims nothing",
		pools: []v1alpha1.IPPool{
			ippool("bad", 0, "10.0.0.0/24,10.0.1.1/24"),
			ippool("good", 1, "10.0.0.0/24"),
		},
		want: `good=10.0.0.0/24; bad!CIDR "10.0.1.1/24" has host bits set; write 10.0.1.0/24`,
	}, {
		name: "invalid pools",
		pools: []v1alpha1.IPPool{
			ippool("empty", 0, ""),
			ippool("prio", 0, "10.0.0.0/24", withSA(v1alpha1.ServiceAllocation{Priority: -1})),
			ippool("sel", 0, "10.1.0.0/24", withSA(v1alpha1.ServiceAllocation{NamespaceSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Bogus"}},
			}})),
			ippool("mixed", 0, "10.2.0.0/24,nonsense"),
		},
		want: `empty!spec.addresses is empty; mixed!"nonsense" is neither a CIDR nor a range first-last: netip.ParsePrefix("nonsense"): no '/'; prio!serviceAllocation.priority must not be negative; sel!serviceAllocation.namespaceSelector: "Bogus" is not a valid label selector operator`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describe(ParsePools(tc.pools)); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestPoolFields(t *testing.T) {
	f := false
	ps := ParsePools([]v1alpha1.IPPool{
		ippool("p", 0, "2001:db8::/64,10.0.0.0/24", func(p *v1alpha1.IPPool) {
			p.Spec.AutoAssign = &f
			p.Spec.AvoidBuggyIPs = true
			p.Spec.AllowExternalIPs = true
			p.Generation = 7
		}, withSA(v1alpha1.ServiceAllocation{Priority: 3, Namespaces: []string{"b", "a", "b"}})),
		ippool("d", 0, "2001:db8:1::/64"),
	})
	p, d := ps.ByName["p"], ps.ByName["d"]
	if p.AutoAssign || !p.AvoidBuggyIPs || !p.AllowExternalIPs || p.Priority != 3 || p.Generation != 7 || fmt.Sprint(p.Namespaces) != "[a b]" {
		t.Errorf("pool fields: %+v", p)
	}
	if !d.AutoAssign || d.NamespaceSelector != nil || d.ServiceSelector != nil {
		t.Errorf("defaults: %+v", d)
	}
	if fmt.Sprint(p.Families()) != "[IPv4 IPv6]" || fmt.Sprint(d.Families()) != "[IPv6]" {
		t.Errorf("Families: %v %v", p.Families(), d.Families())
	}
	if got := join(p.Declared); got != "2001:db8::/64 10.0.0.0/24" {
		t.Errorf("Declared = %s", got)
	}
}

func TestServes(t *testing.T) {
	sel := func(s string) *metav1.LabelSelector {
		ls, err := metav1.ParseToLabelSelector(s)
		if err != nil {
			t.Fatal(err)
		}
		return ls
	}
	ps := ParsePools([]v1alpha1.IPPool{
		ippool("all", 0, "10.0.0.0/24"),
		ippool("ns", 0, "10.1.0.0/24", withSA(v1alpha1.ServiceAllocation{Namespaces: []string{"a", "b"}})),
		ippool("nssel", 0, "10.2.0.0/24", withSA(v1alpha1.ServiceAllocation{NamespaceSelector: sel("env in (prod,stage)")})),
		ippool("svcsel", 0, "10.3.0.0/24", withSA(v1alpha1.ServiceAllocation{ServiceSelector: sel("app=web")})),
		ippool("both", 0, "10.4.0.0/24", withSA(v1alpha1.ServiceAllocation{Namespaces: []string{"a"}, ServiceSelector: sel("app=web")})),
	})
	for _, tc := range []struct {
		ns        string
		nsLabels  string
		svcLabels string
		want      string
	}{
		{"a", "", "", "all ns"},
		{"c", "env=prod", "", "all nssel"},
		{"c", "env=dev", "app=web", "all svcsel"},
		{"a", "env=stage", "app=web", "all both ns nssel svcsel"},
	} {
		var got []string
		for _, p := range ps.Sorted() {
			if p.Serves(tc.ns, labels.Set(mustMap(t, tc.nsLabels)), labels.Set(mustMap(t, tc.svcLabels))) {
				got = append(got, p.Name)
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("Serves(%s, %s, %s): %v, want %s", tc.ns, tc.nsLabels, tc.svcLabels, got, tc.want)
		}
	}
}

func mustMap(t *testing.T, s string) map[string]string {
	m, err := labels.ConvertSelectorToLabelsMap(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSorted(t *testing.T) {
	prio := func(n int32) func(*v1alpha1.IPPool) { return withSA(v1alpha1.ServiceAllocation{Priority: n}) }
	ps := ParsePools([]v1alpha1.IPPool{
		ippool("z", 0, "10.0.0.0/24"),
		ippool("a", 0, "10.1.0.0/24"),
		ippool("p2", 0, "10.2.0.0/24", prio(2)),
		ippool("p1b", 0, "10.3.0.0/24", prio(1)),
		ippool("p1a", 0, "10.4.0.0/24", prio(1)),
	})
	var got []string
	for _, p := range ps.Sorted() {
		got = append(got, p.Name)
	}
	if strings.Join(got, " ") != "p1a p1b p2 a z" {
		t.Errorf("Sorted = %v", got)
	}
}
