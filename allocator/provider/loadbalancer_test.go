package provider

import (
	"context"
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// cloudLB returns the LoadBalancer as a cloud-provider host sees it, with
// one pool of the given blocks.
func cloudLB(t *testing.T, blocks ...string) (cloudprovider.LoadBalancer, *LoadBalancer) {
	t.Helper()
	lb := New(nil)
	p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	for _, b := range blocks {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(b))
	}
	lb.SetPools(config.ParsePools([]v1alpha1.IPPool{p}))
	got, ok := NewCloud(lb).LoadBalancer()
	if !ok {
		t.Fatal("Cloud.LoadBalancer() not supported")
	}
	return got, lb
}

func v4Svc(name string, ann map[string]string) *v1.Service {
	s := lbSvc("ns", name, ann, "")
	s.Spec.IPFamilies = s.Spec.IPFamilies[:1]
	return s
}

func ingressOf(st *v1.LoadBalancerStatus) []string {
	if st == nil {
		return nil
	}
	var out []string
	for _, in := range st.Ingress {
		out = append(out, in.IP)
	}
	return out
}

func TestRegisteredCloudProvider(t *testing.T) {
	c, err := cloudprovider.GetCloudProvider(ProviderName, nil)
	if err != nil || c == nil {
		t.Fatalf("GetCloudProvider(%q) = %v, %v", ProviderName, c, err)
	}
	if c.ProviderName() != ProviderName {
		t.Errorf("ProviderName() = %q", c.ProviderName())
	}
	if _, ok := c.LoadBalancer(); !ok {
		t.Error("LoadBalancer() not supported")
	}
	for name, supported := range map[string]func() bool{
		"Instances":   func() bool { _, ok := c.Instances(); return ok },
		"InstancesV2": func() bool { _, ok := c.InstancesV2(); return ok },
		"Zones":       func() bool { _, ok := c.Zones(); return ok },
		"Clusters":    func() bool { _, ok := c.Clusters(); return ok },
		"Routes":      func() bool { _, ok := c.Routes(); return ok },
	} {
		if supported() {
			t.Errorf("%s() claims support", name)
		}
	}
}

// The cloud-provider entry points through one Service's life, with a second
// Service waiting for the only address.
func TestCloudLoadBalancerLifecycle(t *testing.T) {
	ctx := context.Background()
	cp, _ := cloudLB(t, "198.51.100.10/32")
	a, b := v4Svc("a", nil), v4Svc("b", nil)

	if st, exists, err := cp.GetLoadBalancer(ctx, "c", a); exists || st != nil || err != nil {
		t.Fatalf("GetLoadBalancer before Ensure = %v, %v, %v; want nothing", st, exists, err)
	}
	st, err := cp.EnsureLoadBalancer(ctx, "c", a, nil)
	if err != nil {
		t.Fatalf("EnsureLoadBalancer(a): %v", err)
	}
	if len(st.Ingress) != 1 || st.Ingress[0].IP != "198.51.100.10" {
		t.Fatalf("EnsureLoadBalancer(a) ingress = %v", ingressOf(st))
	}
	if m := st.Ingress[0].IPMode; m == nil || *m != v1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", m)
	}
	if again, err := cp.EnsureLoadBalancer(ctx, "c", a, nil); err != nil || ingressOf(again)[0] != "198.51.100.10" {
		t.Errorf("second EnsureLoadBalancer(a) = %v, %v; want the same address", ingressOf(again), err)
	}
	got, exists, err := cp.GetLoadBalancer(ctx, "c", a)
	if err != nil || !exists || len(ingressOf(got)) != 1 || ingressOf(got)[0] != "198.51.100.10" {
		t.Errorf("GetLoadBalancer(a) = %v, %v, %v; want 198.51.100.10, true", ingressOf(got), exists, err)
	}

	// Exhausted: a short RetryError, so that the upstream service controller
	// retries every second instead of backing off for minutes.
	st, err = cp.EnsureLoadBalancer(ctx, "c", b, nil)
	var re *api.RetryError
	if !errors.As(err, &re) {
		t.Fatalf("EnsureLoadBalancer(b) on an exhausted pool = %v, %v; want a RetryError", ingressOf(st), err)
	}
	if d := re.RetryAfter(); d < 500*time.Millisecond || d > 2*time.Second {
		t.Errorf("RetryAfter = %v, want about 1s", d)
	}
	if _, exists, _ := cp.GetLoadBalancer(ctx, "c", b); exists {
		t.Error("GetLoadBalancer(b) reports a load balancer for a Service that got none")
	}

	if err := cp.EnsureLoadBalancerDeleted(ctx, "c", a); err != nil {
		t.Fatalf("EnsureLoadBalancerDeleted(a): %v", err)
	}
	if _, exists, _ := cp.GetLoadBalancer(ctx, "c", a); exists {
		t.Error("GetLoadBalancer(a) still reports a load balancer after deletion")
	}
	if st, err := cp.EnsureLoadBalancer(ctx, "c", b, nil); err != nil || ingressOf(st)[0] != "198.51.100.10" {
		t.Errorf("EnsureLoadBalancer(b) after a was deleted = %v, %v; want the freed address", ingressOf(st), err)
	}
	if err := cp.EnsureLoadBalancerDeleted(ctx, "c", a); err != nil {
		t.Errorf("EnsureLoadBalancerDeleted is not idempotent: %v", err)
	}
}

// Only an exhausted pool is worth a fast retry; a request that cannot be
// met until someone edits something is a plain error.
func TestEnsureLoadBalancerErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		svc   *v1.Service
		retry bool
	}{
		{"pool exhausted", v4Svc("late", nil), true},
		{"address in use", v4Svc("thief", map[string]string{AnnotationIPs: "198.51.100.20"}), false},
		{"address outside every pool", v4Svc("outside", map[string]string{AnnotationIPs: "192.0.2.1"}), false},
		{"unreadable request", v4Svc("garbage", map[string]string{AnnotationIPs: "198.51.100.x"}), false},
		{"unknown pool", v4Svc("nopool", map[string]string{AnnotationPool: "nope"}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, _ := cloudLB(t, "198.51.100.20/32")
			if _, err := cp.EnsureLoadBalancer(ctx, "c", v4Svc("first", nil), nil); err != nil {
				t.Fatalf("first: %v", err)
			}
			st, err := cp.EnsureLoadBalancer(ctx, "c", tc.svc, nil)
			if err == nil {
				t.Fatalf("EnsureLoadBalancer succeeded: %v", ingressOf(st))
			}
			var re *api.RetryError
			if errors.As(err, &re) != tc.retry {
				t.Errorf("error %q (%T): RetryError = %v, want %v", err, err, !tc.retry, tc.retry)
			}
		})
	}
}
