package lbservice

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestHandled(t *testing.T) {
	class := func(c string) *string { return &c }
	for _, tc := range []struct {
		name   string
		typ    v1.ServiceType
		svc    *string
		flag   string
		handle bool
	}{
		{"no class, default flag", v1.ServiceTypeLoadBalancer, nil, "", true},
		{"no class, class flag", v1.ServiceTypeLoadBalancer, nil, "x", false},
		{"our class", v1.ServiceTypeLoadBalancer, class("x"), "x", true},
		{"other class", v1.ServiceTypeLoadBalancer, class("y"), "x", false},
		{"a class, default flag", v1.ServiceTypeLoadBalancer, class("x"), "", false},
		{"NodePort", v1.ServiceTypeNodePort, nil, "", false},
		{"ClusterIP of our class", v1.ServiceTypeClusterIP, class("x"), "x", false},
	} {
		svc := &v1.Service{Spec: v1.ServiceSpec{Type: tc.typ, LoadBalancerClass: tc.svc}}
		if got := Handled(svc, tc.flag); got != tc.handle {
			t.Errorf("%s: Handled = %v, want %v", tc.name, got, tc.handle)
		}
	}
}

func TestIngressIPs(t *testing.T) {
	svc := &v1.Service{Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{
		{IP: "198.51.100.200"}, {Hostname: "lb.example"}, {IP: "bogus"}, {IP: "2001:db8:100::200"},
	}}}}
	want := []netip.Addr{netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")}
	if got := IngressIPs(svc); !slices.Equal(got, want) {
		t.Errorf("IngressIPs = %v, want %v", got, want)
	}
	if got := IngressIPs(&v1.Service{}); got != nil {
		t.Errorf("IngressIPs of no status = %v, want nil", got)
	}
}

func TestSortForRestore(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := func(ns, name string, age int) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			CreationTimestamp: metav1.NewTime(t0.Add(time.Duration(age) * time.Second))}}
	}
	svcs := []*v1.Service{svc("b", "new", 9), svc("b", "same", 1), svc("a", "same", 1), svc("z", "old", 0)}
	SortForRestore(svcs)
	var got []string
	for _, s := range svcs {
		got = append(got, Key(s))
	}
	if want := []string{"z/old", "a/same", "b/same", "b/new"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}
