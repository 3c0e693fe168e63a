package controller

import (
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestCleanupWrites(t *testing.T) {
	now := metav1.Now()
	beacon := netip.MustParseAddr("198.18.20.1")
	svc := func(typ v1.ServiceType, finalizer bool, ips ...string) *v1.Service {
		s := &v1.Service{Spec: v1.ServiceSpec{Type: typ}}
		if finalizer {
			s.Finalizers = []string{"example.com/other", Finalizer}
		}
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, v1.LoadBalancerIngress{IP: ip})
		}
		return s
	}
	deleting := func(s *v1.Service) *v1.Service { s.DeletionTimestamp = &now; return s }
	lb, cip := v1.ServiceTypeLoadBalancer, v1.ServiceTypeClusterIP
	cases := []struct {
		name string
		ours bool
		svc  *v1.Service
		held []netip.Addr
		want writes
	}{
		{"ours deleting", true, deleting(svc(lb, true, "198.18.20.1")), []netip.Addr{beacon}, writes{true, true}},
		// An address that could not be restored still may not block deletion.
		{"ours deleting, nothing held", true, deleting(svc(lb, true, "198.18.20.1")), nil, writes{true, true}},
		{"ours deleting, nothing to do", true, deleting(svc(lb, false)), nil, writes{}},
		{"foreign LB with generic finalizer", false, svc(lb, true, "203.0.113.9"), nil, writes{}},
		{"foreign LB deleting", false, deleting(svc(lb, true, "203.0.113.9")), nil, writes{}},
		{"foreign LB, our status (class changed)", false, svc(lb, true, "198.18.20.1"), []netip.Addr{beacon}, writes{true, true}},
		{"foreign LB, status not written yet", false, svc(lb, true), []netip.Addr{beacon}, writes{true, false}},
		{"foreign LB, other implementation wrote its own", false, svc(lb, true, "203.0.113.9"), []netip.Addr{beacon}, writes{}},
		{"foreign LB, ours plus a foreign address", false, svc(lb, true, "198.18.20.1", "203.0.113.9"), []netip.Addr{beacon}, writes{}},
		{"no longer LB, held", false, svc(cip, true, "198.18.20.1"), []netip.Addr{beacon}, writes{true, true}},
		{"no longer LB, finalizer only", false, svc(cip, true, "198.18.20.1"), nil, writes{true, true}},
		{"no longer LB, no marks", false, svc(cip, false), nil, writes{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanupWrites(tc.ours, tc.svc, tc.held); got != tc.want {
				t.Errorf("cleanupWrites = %+v, want %+v", got, tc.want)
			}
		})
	}
}
