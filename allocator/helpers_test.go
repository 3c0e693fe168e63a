package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// pool builds an IPPool from comma-separated blocks.
func pool(name, blocks string, opts ...func(*v1alpha1.IPPool)) v1alpha1.IPPool {
	p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, b := range strings.Split(blocks, ",") {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(b))
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func sa(p *v1alpha1.IPPool) *v1alpha1.ServiceAllocation {
	if p.Spec.ServiceAllocation == nil {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{}
	}
	return p.Spec.ServiceAllocation
}

func prio(n int32) func(*v1alpha1.IPPool) {
	return func(p *v1alpha1.IPPool) { sa(p).Priority = n }
}

func manual(p *v1alpha1.IPPool) { f := false; p.Spec.AutoAssign = &f }

func avoidBuggy(p *v1alpha1.IPPool) { p.Spec.AvoidBuggyIPs = true }

func onlyNS(ns ...string) func(*v1alpha1.IPPool) {
	return func(p *v1alpha1.IPPool) { sa(p).Namespaces = ns }
}

func nsSel(sel string) func(*v1alpha1.IPPool) {
	return func(p *v1alpha1.IPPool) { sa(p).NamespaceSelector = mustSelector(sel) }
}

func svcSel(sel string) func(*v1alpha1.IPPool) {
	return func(p *v1alpha1.IPPool) { sa(p).ServiceSelector = mustSelector(sel) }
}

func mustSelector(s string) *metav1.LabelSelector {
	sel, err := metav1.ParseToLabelSelector(s)
	if err != nil {
		panic(err)
	}
	return sel
}

type reqOpt func(*Request)

// svc builds a SingleStack IPv4 request for "namespace/name".
func svc(key string, opts ...reqOpt) Request {
	ns, _, _ := strings.Cut(key, "/")
	r := Request{Key: key, Namespace: ns, Families: []config.Family{config.IPv4}, RequireAll: true}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// fams sets ipFamilies; prefer and require set the dual-stack policy.
func fams(fs ...config.Family) reqOpt { return func(r *Request) { r.Families = fs } }

func prefer(r *Request) { r.Families, r.RequireAll = []config.Family{config.IPv4, config.IPv6}, false }

func require(r *Request) { r.Families, r.RequireAll = []config.Family{config.IPv4, config.IPv6}, true }

func want(ips string) reqOpt { return func(r *Request) { r.IPs = addrs(ips) } }

func inPool(name string) reqOpt { return func(r *Request) { r.Pool = name } }

// shared sets the sharing key and ports ("80/TCP").
func shared(key string, ports ...string) reqOpt {
	return func(r *Request) {
		r.SharingKey = key
		r.Ports = nil
		for _, p := range ports {
			n, proto, _ := strings.Cut(p, "/")
			v, err := strconv.Atoi(n)
			if err != nil {
				panic(err)
			}
			r.Ports = append(r.Ports, Port{Protocol: proto, Port: int32(v)})
		}
	}
}

func local(selector string) reqOpt {
	return func(r *Request) { r.Local, r.Selector = true, selector }
}

func nsLabels(s string) reqOpt {
	return func(r *Request) { r.NamespaceLabels = mustSet(s) }
}

func svcLabels(s string) reqOpt {
	return func(r *Request) { r.ServiceLabels = mustSet(s) }
}

func mustSet(s string) labels.Set {
	set, err := labels.ConvertSelectorToLabelsMap(s)
	if err != nil {
		panic(err)
	}
	return set
}

// addrs parses comma-separated addresses; "" is none.
func addrs(s string) []netip.Addr {
	if s == "" {
		return nil
	}
	var out []netip.Addr
	for _, f := range strings.Split(s, ",") {
		out = append(out, netip.MustParseAddr(strings.TrimSpace(f)))
	}
	return out
}

func join(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

// dumpState renders every key's holdings: "ns/a=10.0.0.1 ns/b=10.0.0.2,fd00::".
func dumpState(a *Allocator) string {
	keys := make([]string, 0, len(a.keys))
	for k := range a.keys {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		out = append(out, k+"="+join(a.Holding(k)))
	}
	return strings.Join(out, " ")
}

// dumpStats renders Stats: "a v4 1/4 v6 0/256; b v4 0/2".
func dumpStats(st map[string]PoolStats) string {
	names := make([]string, 0, len(st))
	for n := range st {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []string
	for _, n := range names {
		s := n
		if f := st[n].IPv4; f != nil {
			s += fmt.Sprintf(" v4 %d/%d", f.Used, f.Total)
		}
		if f := st[n].IPv6; f != nil {
			s += fmt.Sprintf(" v6 %d/%d", f.Used, f.Total)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func mkPools(ps ...v1alpha1.IPPool) *config.Pools { return config.ParsePools(ps) }

func newWith(t testing.TB, ps ...v1alpha1.IPPool) *Allocator {
	t.Helper()
	a := New()
	a.SetPools(mkPools(ps...))
	return a
}
