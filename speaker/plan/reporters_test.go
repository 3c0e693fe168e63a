package plan

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/election"
)

// bgpCluster is n nodes (n01...) peering with one router, announcing the
// cluster-policy Service "web" and the Local Service "local", whose
// endpoints are on the nodes named in local.
func bgpCluster(n int, local ...string) Facts {
	f := bgpSite()
	f.Nodes = nil
	f.Members.Alive = map[string]bool{}
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("n%02d", i)
		f.Nodes = append(f.Nodes, node(name, fmt.Sprintf("198.19.%d.%d", i/256, i%256), map[string]string{"rack": fmt.Sprint("ab"[i%2 : i%2+1])}))
		f.Members.Alive[name] = true
	}
	f.Services = []*v1.Service{service("web", bgpIP), service("local", bgpIP.Next(), func(s *v1.Service) {
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	})}
	sl := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "local-x",
		Labels: map[string]string{discoveryv1.LabelServiceName: "local"}}}
	for i, nn := range local {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("198.18.1.%d", 10+i)}, NodeName: ptr.To(nn)})
	}
	f.EndpointSlices = []*discoveryv1.EndpointSlice{sl}
	return f
}

// reportersOf runs every node's plan (twice, so that the second is a
// steady sync) and returns, per Service, the nodes that report it and the
// nodes that announce it.
func reportersOf(t *testing.T, f Facts, skip ...string) (reporting, announcing map[string][]string) {
	t.Helper()
	reporting, announcing = map[string][]string{}, map[string][]string{}
	for _, n := range f.Nodes {
		if slices.Contains(skip, n.Name) {
			continue
		}
		g := f
		g.Node = n.Name
		first := Make(g, State{})
		res := Make(g, first.State)
		for _, r := range res.Reports {
			if r.Via == v1alpha1.ViaBGP {
				reporting[r.Service] = append(reporting[r.Service], n.Name)
			}
		}
		for k := range res.State.BGP {
			announcing[k.Service[len("default/"):]] = append(announcing[k.Service[len("default/"):]], n.Name)
		}
		// Announcing Events come from the reporters only.
		for _, e := range first.Events {
			if e.Reason == EventAnnouncing && !slices.ContainsFunc(res.Reports, func(r Report) bool { return r.Service == e.Name }) {
				t.Errorf("%s: Announcing Event for %s, which it does not report", n.Name, e.Name)
			}
		}
	}
	for _, m := range []map[string][]string{reporting, announcing} {
		for k := range m {
			slices.Sort(m[k])
		}
	}
	return reporting, announcing
}

// TestBGPReporters: of the nodes that announce a Service by BGP, exactly
// BGPReporters (or all, when fewer announce) report it, all computing the
// same choice; live, not excluded nodes first.
func TestBGPReporters(t *testing.T) {
	endpoints := []string{"n02", "n05", "n07", "n09", "n11"}
	for _, tc := range []struct {
		name  string
		facts func(*Facts)
		skip  []string // nodes without a running speaker
		// want per Service: how many report, and among which nodes
		// (nil: any announcing node).
		want map[string]int
		from map[string][]string
	}{
		{name: "cluster policy: three of twelve; Local: three of the endpoints' nodes",
			want: map[string]int{"web": 3, "local": 3}, from: map[string][]string{"local": endpoints}},
		{name: "fewer announcers than reporters: all report",
			facts: func(f *Facts) { *f = bgpCluster(2, "n01") },
			want:  map[string]int{"web": 2, "local": 1}},
		{name: "an advertisement for one rack: its nodes only",
			facts: func(f *Facts) {
				f.BGP.Advertisements[0].Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "a"}}
			},
			want: map[string]int{"web": 3, "local": 1},
			from: map[string][]string{"web": {"n02", "n04", "n06", "n08", "n10", "n12"}, "local": {"n02"}}},
		{name: "every node excluded but one: the excluded ones still announce during their lead, and report",
			facts: func(f *Facts) {
				for _, n := range f.Nodes[1:] {
					n.Labels = map[string]string{election.ExcludeLabel: ""}
				}
			},
			want: map[string]int{"web": 3}, from: map[string][]string{"web": nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := bgpCluster(12, endpoints...)
			if tc.facts != nil {
				tc.facts(&f)
			}
			reporting, announcing := reportersOf(t, f, tc.skip...)
			for svc, n := range tc.want {
				if len(reporting[svc]) != n {
					t.Errorf("%s: reported by %v, want %d nodes", svc, reporting[svc], n)
				}
				for _, r := range reporting[svc] {
					if !slices.Contains(announcing[svc], r) {
						t.Errorf("%s: reported by %s, which does not announce it", svc, r)
					}
					if from, ok := tc.from[svc]; ok && from != nil && !slices.Contains(from, r) {
						t.Errorf("%s: reported by %s, want only some of %v", svc, r, from)
					}
				}
			}
		})
	}
}

// TestBGPReportersMove: a reporter that stops, is excluded, or a node that
// joins moves one report of a Service, not all of them.
func TestBGPReportersMove(t *testing.T) {
	f := bgpCluster(12)
	before, _ := reportersOf(t, f)
	gone := before["web"][0]

	dead := bgpCluster(12)
	dead.Members.Alive[gone] = false
	after, _ := reportersOf(t, dead, gone)
	if len(after["web"]) != 3 || slices.Contains(after["web"], gone) || changed(before["web"], after["web"]) != 1 {
		t.Errorf("%s stopped: reporters %v, were %v", gone, after["web"], before["web"])
	}

	excluded := bgpCluster(12)
	for _, n := range excluded.Nodes {
		if n.Name == gone {
			n.Labels = map[string]string{election.ExcludeLabel: ""}
		}
	}
	after, announcing := reportersOf(t, excluded)
	if len(after["web"]) != 3 || slices.Contains(after["web"], gone) || changed(before["web"], after["web"]) != 1 {
		t.Errorf("%s excluded: reporters %v, were %v", gone, after["web"], before["web"])
	}
	if !slices.Contains(announcing["web"], gone) {
		t.Errorf("%s should still announce during its drain's lead", gone)
	}

	// Twenty joins, one at a time: each moves at most one report.
	prev := before["web"]
	for n := 13; n <= 32; n++ {
		after, _ := reportersOf(t, bgpCluster(n))
		if len(after["web"]) != 3 || changed(prev, after["web"]) > 1 {
			t.Fatalf("node n%02d joined: reporters %v, were %v", n, after["web"], prev)
		}
		prev = after["web"]
	}
}

// TestBGPReportersSpread: over many Services every node reports some and
// each Service has exactly BGPReporters.
func TestBGPReportersSpread(t *testing.T) {
	f := bgpCluster(10)
	f.Services = nil
	for i := range 200 {
		f.Services = append(f.Services, service(fmt.Sprintf("s%03d", i), bgpIP))
	}
	per := map[string]int{}
	total := 0
	for _, n := range f.Nodes {
		g := f
		g.Node = n.Name
		for range Make(g, State{}).Reports {
			per[n.Name]++
			total++
		}
	}
	if total != 200*BGPReporters {
		t.Errorf("%d reports of 200 Services, want %d", total, 200*BGPReporters)
	}
	if len(per) != len(f.Nodes) {
		t.Errorf("reports per node %v: some node reports nothing", per)
	}
	t.Logf("reports per node: %v", slices.Sorted(maps.Values(per)))
}

func changed(a, b []string) int {
	n := 0
	for _, x := range b {
		if !slices.Contains(a, x) {
			n++
		}
	}
	return n
}

// BenchmarkMakeBGPReporters: one sync of a node among 1,000 announcing
// 10,000 Services, with reporters (compare BGPReporters at 1,000 to see the
// cost of choosing them).
func BenchmarkMakeBGPReporters(b *testing.B) {
	f := bgpCluster(1000)
	f.Services = nil
	ip := netip.MustParseAddr("198.18.0.0")
	f.Pools = append(f.Pools, pool("bench", "198.18.0.0/16"))
	f.BGP.Advertisements[0].Spec.IPPools = append(f.BGP.Advertisements[0].Spec.IPPools, "bench")
	for i := range 10000 {
		ip = ip.Next()
		f.Services = append(f.Services, service(fmt.Sprintf("s%05d", i), ip))
	}
	f.Node = "n500"
	res := Make(f, State{})
	if len(res.BGP.Open) == 0 || len(res.Reports) == 0 || len(res.Reports) > 100 {
		b.Fatalf("%d sessions, %d reports: not the case to measure", len(res.BGP.Open), len(res.Reports))
	}
	b.Logf("this node reports %d of 10,000 Services", len(res.Reports))
	st := res.State
	b.ResetTimer()
	for b.Loop() {
		Make(f, st)
	}
}

// TestBGPReportersDualStack: a Service whose families go out from
// different nodes has each address listed by BGPReporters reports.
func TestBGPReportersDualStack(t *testing.T) {
	f := bgpCluster(12)
	v6 := netip.MustParseAddr("2001:db8:5::10")
	f.Pools = append(f.Pools, pool("routed6", "2001:db8:5::/120"))
	f.Services = []*v1.Service{service("web", bgpIP, func(s *v1.Service) {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: v6.String()})
	})}
	f.BGP.Peers = append(f.BGP.Peers, v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor6"},
		Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "2001:db8::1"}})
	rack := func(r string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"rack": r}}
	}
	f.BGP.Advertisements = []v1alpha1.BGPAdvertisement{
		{ObjectMeta: metav1.ObjectMeta{Name: "v4"}, Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"routed"}, NodeSelector: rack("a")}},
		{ObjectMeta: metav1.ObjectMeta{Name: "v6"}, Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"routed6"}, NodeSelector: rack("b")}},
	}
	listed := map[netip.Addr][]string{}
	for _, n := range f.Nodes {
		g := f
		g.Node = n.Name
		for _, r := range Make(g, State{}).Reports {
			for _, ip := range r.Addresses {
				listed[ip] = append(listed[ip], n.Name)
			}
		}
	}
	for _, ip := range []netip.Addr{bgpIP, v6} {
		if len(listed[ip]) != BGPReporters {
			t.Errorf("%s listed by %v, want %d reports", ip, listed[ip], BGPReporters)
		}
	}
}
