package provider

import (
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/allocator"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

func lbSvc(ns, name string, ann map[string]string, lbIP string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec: v1.ServiceSpec{
			Type:           v1.ServiceTypeLoadBalancer,
			LoadBalancerIP: lbIP,
			IPFamilies:     []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol},
			Ports:          []v1.ServicePort{{Port: 80}},
		},
	}
}

func TestRequestedIPs(t *testing.T) {
	for _, tc := range []struct {
		name string
		ann  map[string]string
		lb   string
		want string // comma-joined IPs, or "error: substring"
	}{
		{"none", nil, "", ""},
		{"annotation", map[string]string{AnnotationIPs: " 198.51.100.1 , 2001:db8::1"}, "", "198.51.100.1,2001:db8::1"},
		{"loadBalancerIP", nil, "198.51.100.2", "198.51.100.2"},
		{"both agree", map[string]string{AnnotationIPs: "198.51.100.1,2001:db8::1"}, "2001:db8::1", "198.51.100.1,2001:db8::1"},
		{"both agree, other spelling", map[string]string{AnnotationIPs: "2001:DB8::1"}, "2001:db8:0::1", "2001:db8::1"},
		{"both disagree", map[string]string{AnnotationIPs: "198.51.100.1"}, "198.51.100.3", "error: spec.loadBalancerIP 198.51.100.3 conflicts"},
		{"loadBalancerIP garbage with annotation", map[string]string{AnnotationIPs: "198.51.100.1"}, "x", "error: conflicts"},
		{"loadBalancerIP garbage", nil, "999.1.1.1", `error: "999.1.1.1" is not a plain`},
		{"empty annotation", map[string]string{AnnotationIPs: ""}, "", "error: is empty"},
		{"zone", map[string]string{AnnotationIPs: "fe80::1%eth0"}, "", "error: not a plain"},
		{"mapped", map[string]string{AnnotationIPs: "::ffff:1.2.3.4"}, "", "error: not a plain"},
		{"cidr", nil, "198.51.100.0/24", "error: not a plain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _, err := RequestFor(lbSvc("ns", "s", tc.ann, tc.lb), nil)
			if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want containing %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range req.IPs {
				got = append(got, a.String())
			}
			if strings.Join(got, ",") != tc.want {
				t.Fatalf("IPs = %v, want %s", got, tc.want)
			}
		})
	}
}

// A Service cannot take another Service's address, nor an address or pool
// its namespace may not use, through the LoadBalancer.
func TestEnsureRefusesForeignAddresses(t *testing.T) {
	nsLabels := map[string]labels.Set{"team-a": {"team": "a"}, "team-b": {"team": "b"}}
	lb := New(func(ns string) labels.Set { return nsLabels[ns] })
	pool := func(name, block string, sa *v1alpha1.ServiceAllocation) v1alpha1.IPPool {
		p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
		p.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(block)}
		p.Spec.ServiceAllocation = sa
		return p
	}
	lb.SetPools(config.ParsePools([]v1alpha1.IPPool{
		pool("a", "198.51.100.0/30", &v1alpha1.ServiceAllocation{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}}),
		pool("b", "198.51.100.4/30", &v1alpha1.ServiceAllocation{Namespaces: []string{"team-b"}}),
	}))
	single := func(s *v1.Service) *v1.Service { s.Spec.IPFamilies = s.Spec.IPFamilies[:1]; return s }
	out, err := lb.Ensure(single(lbSvc("team-a", "web", nil, "")))
	if err != nil || out.Result.IPs[0].String() != "198.51.100.0" {
		t.Fatalf("team-a/web: %v %v", out.Result.IPs, err)
	}
	for _, tc := range []struct {
		svc    *v1.Service
		reason allocator.Reason
		msg    string
	}{
		{single(lbSvc("team-a", "thief", map[string]string{AnnotationIPs: "198.51.100.0"}, "")), allocator.ReasonIPInUse, "in use by Service team-a/web"},
		{single(lbSvc("team-b", "thief", nil, "198.51.100.0")), allocator.ReasonIPNotAllowed, `pool "a", which does not serve Service team-b/thief`},
		{single(lbSvc("team-a", "x", map[string]string{AnnotationIPs: "198.51.100.5"}, "")), allocator.ReasonIPNotAllowed, `pool "b"`},
		{single(lbSvc("team-a", "y", map[string]string{AnnotationPool: "b"}, "")), allocator.ReasonNoPool, `pool "b" named by beaconlb.io/pool does not serve`},
		{single(lbSvc("team-b", "z", map[string]string{AnnotationSharedIP: "k", AnnotationIPs: "198.51.100.0"}, "")), allocator.ReasonIPNotAllowed, `pool "a"`},
		{single(lbSvc("other", "w", nil, "")), allocator.ReasonNoPool, `no IP pool with autoAssign serves IPv4 addresses to Service other/w`},
	} {
		_, err := lb.Ensure(tc.svc)
		if allocator.ReasonOf(err) != tc.reason || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s/%s: %v (%s), want %s containing %q", tc.svc.Namespace, tc.svc.Name, err, allocator.ReasonOf(err), tc.reason, tc.msg)
		}
	}
	if got := lb.Holding("team-a/web"); len(got) != 1 || got[0].String() != "198.51.100.0" {
		t.Errorf("team-a/web now holds %v", got)
	}
}
