package controller_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

func TestAllocatesFromPoolAndWritesOnce(t *testing.T) {
	h := newHarness(t)
	h.pool("t-basic", nil, "198.18.1.10-198.18.1.12")
	h.startController(nil)

	h.service("web", nil)
	h.waitIPs("web", "198.18.1.10")
	s, _ := h.getService("web")
	if len(s.Finalizers) != 1 || s.Finalizers[0] != controller.Finalizer {
		t.Errorf("finalizers = %v, want [%s]", s.Finalizers, controller.Finalizer)
	}
	if m := s.Status.LoadBalancer.Ingress[0].IPMode; m == nil || *m != v1.LoadBalancerIPModeVIP {
		t.Errorf("ipMode = %v, want VIP", m)
	}
	h.waitEvent("web", controller.EventIPAllocated, "198.18.1.10 (pool t-basic)")

	// Pool status counts the address and is then left alone.
	h.eventually(5*time.Second, "pool status", func() (bool, string) {
		p := h.getPool("t-basic")
		st := p.Status.IPv4
		return st != nil && st.Total == 3 && st.Used == 1 && st.Available == 2 &&
			meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.PoolReady), fmt.Sprintf("%+v", p.Status)
	})
	poolRV := h.getPool("t-basic").ResourceVersion
	svcRV := func() string { s, _ := h.getService("web"); return s.ResourceVersion }
	rv := svcRV()

	// A change that does not matter to allocation triggers a reconcile but
	// no write to the Service status or the pool.
	h.updateService("web", func(s *v1.Service) { s.Labels = map[string]string{"touched": "yes"} })
	h.service("probe", nil) // a later event proves the controller went past the edit
	h.waitIPs("probe", "198.18.1.11")
	h.eventually(5*time.Second, "pool used=2", func() (bool, string) {
		p := h.getPool("t-basic")
		return p.Status.IPv4 != nil && p.Status.IPv4.Used == 2, fmt.Sprintf("%+v", p.Status.IPv4)
	})
	s, _ = h.getService("web")
	if s.ResourceVersion == rv {
		t.Fatal("label edit did not change the resourceVersion; test is broken")
	}
	// Workers may still hold the edit's reconcile; a second probe created
	// after the first was served flushes every earlier event through the queue.
	afterEdit := s.ResourceVersion
	h.service("probe-2", nil)
	h.waitIPs("probe-2", "198.18.1.12")
	if got := svcRV(); got != afterEdit {
		t.Errorf("service rewritten without a change: rv %s -> %s", afterEdit, got)
	}
	if h.getPool("t-basic").ResourceVersion == poolRV {
		t.Error("pool status not updated for the second Service")
	}

	// Pool status is not rewritten when its counts do not change: another
	// edit, flushed through the controller by a Service of another pool.
	h.eventually(5*time.Second, "pool used=3", func() (bool, string) {
		p := h.getPool("t-basic")
		return p.Status.IPv4 != nil && p.Status.IPv4.Used == 3, fmt.Sprintf("%+v", p.Status.IPv4)
	})
	poolRV = h.getPool("t-basic").ResourceVersion
	h.pool("t-basic-other", nil, "198.18.1.100/32")
	h.updateService("web", func(s *v1.Service) { s.Labels["touched"] = "twice" })
	h.service("probe-3", func(s *v1.Service) { s.Annotations["beaconlb.io/pool"] = "t-basic-other" })
	h.waitIPs("probe-3", "198.18.1.100")
	h.eventually(5*time.Second, "other pool status", func() (bool, string) {
		p := h.getPool("t-basic-other")
		return p.Status.IPv4 != nil && p.Status.IPv4.Used == 1, fmt.Sprintf("%+v", p.Status.IPv4)
	})
	if got := h.getPool("t-basic").ResourceVersion; got != poolRV {
		t.Errorf("unchanged pool rewritten: rv %s -> %s", poolRV, got)
	}
}

func TestNamespaceSelectorFollowsLabels(t *testing.T) {
	h := newHarness(t)
	h.pool("t-nssel", func(p *v1alpha1.IPPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}},
		}
	}, "198.18.14.0/30")
	h.startController(nil)
	h.service("app", nil)
	h.waitEvent("app", controller.EventAllocationFailed, "")
	ns, err := h.env.Kube.CoreV1().Namespaces().Get(h.ctx, h.ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["tier"] = "prod"
	if _, err := h.env.Kube.CoreV1().Namespaces().Update(h.ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitIPs("app", "198.18.14.0")
}

func TestCRDValidationRejectsBadPools(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name  string
		addrs []string
		want  string // substring of the API server's message; "" = accepted
	}{
		{"ok-cidr", []string{"198.18.2.0/28"}, ""},
		{"ok-range-v6", []string{"2001:db8:2::ff-2001:db8:2::1:0"}, ""},
		{"ok-mixed", []string{"198.18.2.32/30", "2001:db8:2:1::/120", "198.18.2.40-198.18.2.41"}, ""},
		{"bad-cidr", []string{"198.18.2.0/33"}, "is neither a CIDR"},
		{"bad-text", []string{"not-an-ip"}, "is neither a CIDR"},
		{"host-bits", []string{"198.18.2.5/24"}, "has host bits set"},
		{"reversed-v4", []string{"198.18.2.20-198.18.2.10"}, "has its first address after its last"},
		{"reversed-v6", []string{"2001:db8:2::1:0-2001:db8:2::ff"}, "has its first address after its last"},
		{"reversed-v6-compressed", []string{"2001:db8:3::-2001:db8:2:ffff::"}, "has its first address after its last"},
		{"ok-v6-upper-vs-lower", []string{"2001:DB8:4::A-2001:db8:4::b"}, ""},
		{"reversed-v6-upper", []string{"2001:db8:4::B-2001:DB8:4::a"}, "has its first address after its last"},
		{"ok-v6-spaces", []string{"2001:db8:5:: - 2001:db8:5::1:0:0"}, ""},
		{"reversed-v4-numeric", []string{"198.18.2.100-198.18.2.99"}, "has its first address after its last"},
		{"ok-v4-numeric-not-lexical", []string{"198.18.2.9-198.18.2.10"}, ""},
		{"mixed-family", []string{"198.18.2.1-2001:db8::1"}, "mixes IPv4 and IPv6"},
		{"empty", []string{}, "spec.addresses"},
		{"three-dashes", []string{"198.18.2.1-198.18.2.2-198.18.2.3"}, "is neither a CIDR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "t-crd-" + tc.name}}
			p.Spec.Addresses = []v1alpha1.AddressBlock{}
			for _, a := range tc.addrs {
				p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(a))
			}
			err := h.env.Beacon.Create(h.ctx, "ippools", p)
			if err == nil {
				_ = h.env.Beacon.Delete(context.Background(), "ippools", p.Name)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected a valid pool: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted %v, want rejection containing %q", tc.addrs, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestOverlappingPoolIsMarkedAndNotUsed(t *testing.T) {
	h := newHarness(t)
	h.pool("t-a-old", func(p *v1alpha1.IPPool) { p.Spec.AutoAssign = ptr.To(false) }, "198.18.3.0-198.18.3.1")
	// Same-second creation falls back to name order, which also makes t-a-old older.
	h.pool("t-b-new", nil, "198.18.3.0-198.18.3.2")
	h.startController(nil)

	h.eventually(5*time.Second, "Conflicting condition", func() (bool, string) {
		p := h.getPool("t-b-new")
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConflicting)
		return c != nil && c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "t-a-old"), fmt.Sprintf("%+v", p.Status)
	})
	if st := h.getPool("t-b-new").Status.IPv4; st == nil || st.Total != 1 {
		t.Errorf("t-b-new counts %+v, want total 1 (only the non-overlapping address)", st)
	}
	h.eventually(5*time.Second, "older pool not conflicting", func() (bool, string) {
		c := meta.FindStatusCondition(h.getPool("t-a-old").Status.Conditions, v1alpha1.PoolConflicting)
		return c != nil && c.Status == metav1.ConditionFalse, fmt.Sprintf("%+v", c)
	})
	// Auto-assignment only draws from t-b-new, whose overlap belongs to t-a-old.
	h.service("a", nil)
	h.waitIPs("a", "198.18.3.2")
	h.service("b", nil)
	h.waitEvent("b", controller.EventAllocationFailed, "no free IPv4 address")
}

func TestRequestedAddressesAndAnnotations(t *testing.T) {
	h := newHarness(t)
	h.pool("t-req", nil, "198.18.4.0/29")
	h.startController(nil)

	h.service("by-annotation", func(s *v1.Service) { s.Annotations["beaconlb.io/ips"] = "198.18.4.5" })
	h.waitIPs("by-annotation", "198.18.4.5")
	h.service("by-field", func(s *v1.Service) { s.Spec.LoadBalancerIP = "198.18.4.6" })
	h.waitIPs("by-field", "198.18.4.6")

	h.service("outside", func(s *v1.Service) { s.Annotations["beaconlb.io/ips"] = "192.0.2.77" })
	h.waitEvent("outside", controller.EventAllocationFailed, "192.0.2.77")

	h.service("taken", func(s *v1.Service) { s.Annotations["beaconlb.io/ips"] = "198.18.4.5" })
	h.waitEvent("taken", controller.EventAllocationFailed, "by-annotation")

	h.service("garbage", func(s *v1.Service) { s.Annotations["beaconlb.io/ips"] = "198.18.4.x" })
	h.waitEvent("garbage", controller.EventAllocationFailed, "198.18.4.x")

	h.service("typo", func(s *v1.Service) { s.Annotations["beaconlb.io/ip"] = "198.18.4.3" })
	h.waitEvent("typo", controller.EventInvalidRequest, `unknown annotation "beaconlb.io/ip"`)
	h.waitIPs("typo", "198.18.4.0") // still allocated automatically

	h.service("conflicting", func(s *v1.Service) {
		s.Annotations["beaconlb.io/ips"] = "198.18.4.1"
		s.Spec.LoadBalancerIP = "198.18.4.2"
	})
	h.waitEvent("conflicting", controller.EventAllocationFailed, "conflicts with annotation")

	h.service("unknown-pool", func(s *v1.Service) { s.Annotations["beaconlb.io/pool"] = "nope" })
	h.waitEvent("unknown-pool", controller.EventAllocationFailed, "nope")

	// A bad edit of a working Service keeps its address.
	h.updateService("by-annotation", func(s *v1.Service) { s.Annotations["beaconlb.io/ips"] = "192.0.2.1" })
	h.waitEvent("by-annotation", controller.EventAllocationFailed, "192.0.2.1")
	h.waitIPs("by-annotation", "198.18.4.5")

	// Freeing the requested address lets the waiting Service take it.
	h.deleteService("by-annotation")
	h.waitIPs("taken", "198.18.4.5")
}

func TestSharing(t *testing.T) {
	h := newHarness(t)
	h.pool("t-share", nil, "198.18.5.0/30")
	h.startController(nil)
	share := func(port int32) func(*v1.Service) {
		return func(s *v1.Service) {
			s.Annotations["beaconlb.io/allow-shared-ip"] = "k1"
			s.Spec.Ports[0].Port = port
		}
	}
	h.service("dns-tcp", share(53))
	h.waitIPs("dns-tcp", "198.18.5.0")
	h.service("dns-udp", func(s *v1.Service) {
		share(53)(s)
		s.Spec.Ports[0].Protocol = v1.ProtocolUDP
		s.Annotations["beaconlb.io/ips"] = "198.18.5.0"
	})
	h.waitIPs("dns-udp", "198.18.5.0")
	h.service("https", share(443)) // auto choice prefers the shared address
	h.waitIPs("https", "198.18.5.0")
	h.service("clash", func(s *v1.Service) {
		share(443)(s)
		s.Annotations["beaconlb.io/ips"] = "198.18.5.0"
	})
	h.waitEvent("clash", controller.EventAllocationFailed, "443")
	h.service("other-key", func(s *v1.Service) { s.Annotations["beaconlb.io/ips"] = "198.18.5.0"; s.Spec.Ports[0].Port = 8080 })
	h.waitEvent("other-key", controller.EventAllocationFailed, "198.18.5.0")

	// The address returns to the pool only when its last user goes.
	h.deleteService("dns-tcp")
	h.deleteService("dns-udp")
	h.eventually(5*time.Second, "pool used=1", func() (bool, string) {
		st := h.getPool("t-share").Status.IPv4
		return st != nil && st.Used == 1, fmt.Sprintf("%+v", st)
	})
	// When the last sharer goes, the Service that asked for the address
	// without a sharing key gets it at once. (clash goes first: it would be
	// compatible with an empty address too.)
	h.deleteService("clash")
	h.deleteService("https")
	h.waitIPs("other-key", "198.18.5.0")
}

func TestDualStack(t *testing.T) {
	h := newHarness(t)
	h.pool("t-ds", nil, "198.18.6.0/30", "2001:db8:6::/126")
	h.startController(nil)
	h.service("both", func(s *v1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
	})
	h.waitIPs("both", "198.18.6.0", "2001:db8:6::")
	h.service("v6-first", func(s *v1.Service) {
		s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyPreferDualStack)
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol, v1.IPv4Protocol}
	})
	h.waitIPs("v6-first", "2001:db8:6::1", "198.18.6.1")
	h.service("v6-only", func(s *v1.Service) {
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol}
	})
	h.waitIPs("v6-only", "2001:db8:6::2")
	h.eventually(5*time.Second, "pool families", func() (bool, string) {
		p := h.getPool("t-ds")
		return p.Status.IPv4 != nil && p.Status.IPv4.Used == 2 && p.Status.IPv6 != nil && p.Status.IPv6.Used == 3,
			fmt.Sprintf("v4 %+v v6 %+v", p.Status.IPv4, p.Status.IPv6)
	})
}

func TestExhaustedPoolRetriesFast(t *testing.T) {
	h := newHarness(t)
	h.pool("t-one", nil, "198.18.7.1/32")
	h.startController(nil)
	h.service("first", nil)
	h.waitIPs("first", "198.18.7.1")
	h.service("second", nil)
	h.waitEvent("second", controller.EventAllocationFailed, "no free IPv4 address")
	h.eventually(5*time.Second, "Exhausted condition", func() (bool, string) {
		p := h.getPool("t-one")
		return meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.PoolExhausted), fmt.Sprintf("%+v", p.Status.Conditions)
	})

	// Freed by deletion: the waiting Service gets it within 2 seconds of the
	// first Service being gone.
	h.deleteService("first")
	h.eventually(10*time.Second, "first gone", func() (bool, string) {
		_, err := h.getService("first")
		return err != nil, fmt.Sprint(err)
	})
	gone := time.Now()
	h.waitIPs("second", "198.18.7.1")
	if d := time.Since(gone); d > 2*time.Second {
		t.Errorf("waiting Service got the freed address after %v, want < 2s", d)
	} else {
		t.Logf("freed address reached the waiting Service in %v", d)
	}

	// Freed by growth: editing the pool serves the next waiting Service.
	h.service("third", nil)
	h.waitEvent("third", controller.EventAllocationFailed, "no free IPv4 address")
	start := time.Now()
	h.editPool("t-one", func(p *v1alpha1.IPPool) { p.Spec.Addresses = append(p.Spec.Addresses, "198.18.7.2/32") })
	h.waitIPs("third", "198.18.7.2")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("pool growth reached the waiting Service after %v, want < 2s", d)
	}
}

func TestReleaseWhenNoLongerLoadBalancer(t *testing.T) {
	h := newHarness(t)
	h.pool("t-rel", nil, "198.18.8.0/31")
	h.startController(nil)
	h.service("lb", nil)
	h.waitIPs("lb", "198.18.8.0")
	h.updateService("lb", func(s *v1.Service) {
		s.Spec.Type = v1.ServiceTypeClusterIP
		s.Spec.Ports[0].NodePort = 0
		s.Spec.AllocateLoadBalancerNodePorts = nil
	})
	h.eventually(5*time.Second, "status and finalizer cleared", func() (bool, string) {
		s, _ := h.getService("lb")
		return len(s.Status.LoadBalancer.Ingress) == 0 && len(s.Finalizers) == 0, fmt.Sprintf("%v %v", ingress(s), s.Finalizers)
	})
	h.waitEvent("lb", controller.EventIPReleased, "198.18.8.0")
	h.service("next", nil)
	h.waitIPs("next", "198.18.8.0")
}

func TestLoadBalancerClass(t *testing.T) {
	h := newHarness(t)
	h.pool("t-class", nil, "198.18.9.0/30")
	h.startController(func(o *app.Options) { o.LoadBalancerClass = "beaconlb.io/test" })
	h.service("ours", func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To("beaconlb.io/test") })
	h.waitIPs("ours", "198.18.9.0")
	h.service("classless", nil)
	h.service("theirs", func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To("example.com/other") })
	// A later Service proves the controller has seen the two above.
	h.service("ours-2", func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To("beaconlb.io/test") })
	h.waitIPs("ours-2", "198.18.9.1")
	for _, n := range []string{"classless", "theirs"} {
		s, _ := h.getService(n)
		if len(s.Status.LoadBalancer.Ingress) > 0 || len(s.Finalizers) > 0 {
			t.Errorf("%s was handled: %v %v", n, ingress(s), s.Finalizers)
		}
	}
}

func TestPoolEditedAwayKeepsThenMoves(t *testing.T) {
	h := newHarness(t)
	h.pool("t-edit", nil, "198.18.10.0/31")
	h.startController(nil)
	h.service("svc", nil)
	h.waitIPs("svc", "198.18.10.0")
	h.service("filler", nil)
	h.waitIPs("filler", "198.18.10.1")

	// svc's address leaves the pool and no replacement is free: keep it.
	h.editPool("t-edit", func(p *v1alpha1.IPPool) { p.Spec.Addresses = []v1alpha1.AddressBlock{"198.18.10.1/32"} })
	h.waitEvent("svc", controller.EventIPOutsidePool, "198.18.10.0")
	h.waitIPs("svc", "198.18.10.0")

	// Room appears: svc moves to a pool address (make before break).
	h.editPool("t-edit", func(p *v1alpha1.IPPool) { p.Spec.Addresses = []v1alpha1.AddressBlock{"198.18.10.1-198.18.10.2"} })
	h.waitIPs("svc", "198.18.10.2")
	h.waitEvent("svc", controller.EventIPChanged, "198.18.10.2")
	h.waitIPs("filler", "198.18.10.1")
}

func TestRestartKeepsAddresses(t *testing.T) {
	h := newHarness(t)
	h.pool("t-restart", nil, "198.18.11.0/24")
	stop := h.startController(nil)
	before := map[string]string{}
	for i := range 20 {
		h.service(fmt.Sprintf("s%02d", i), nil)
	}
	for i := range 20 {
		n := fmt.Sprintf("s%02d", i)
		before[n] = h.waitAnyIPs(n, 1)[0]
	}
	stop()

	// While no controller runs: delete the lowest address holder (it stays
	// terminating behind the finalizer) and create more Services; then start
	// a new controller while creating still more.
	h.deleteService("s00")
	for i := 20; i < 25; i++ {
		h.service(fmt.Sprintf("s%02d", i), nil)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 25; i < 35; i++ {
			h.service(fmt.Sprintf("s%02d", i), nil)
		}
	}()
	h.startController(nil)
	<-done
	for i := 1; i < 35; i++ {
		h.waitAnyIPs(fmt.Sprintf("s%02d", i), 1)
	}
	list, err := h.env.Kube.CoreV1().Services(h.ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.assertNoDuplicates(list.Items)
	for _, s := range list.Items {
		if old, ok := before[s.Name]; ok && ingress(&s)[0] != old {
			t.Errorf("%s changed address across restart: %s -> %s", s.Name, old, ingress(&s)[0])
		}
	}
	h.eventually(5*time.Second, "s00 gone", func() (bool, string) {
		_, err := h.getService("s00")
		return err != nil, fmt.Sprint(err)
	})
}

func TestMetrics(t *testing.T) {
	h := newHarness(t)
	h.pool("t-metrics", nil, "198.18.12.0/30")
	metricsAddr, healthAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	h.startController(func(o *app.Options) {
		o.MetricsAddr = metricsAddr
		o.HealthAddr = healthAddr
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + healthAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", path, resp.Status)
		}
	}
	h.service("m", nil)
	h.waitIPs("m", "198.18.12.0")
	h.service("m-bad", func(s *v1.Service) { s.Annotations["beaconlb.io/ips"] = "192.0.2.1" })
	h.waitEvent("m-bad", controller.EventAllocationFailed, "192.0.2.1")
	var body string
	h.eventually(5*time.Second, "metrics", func() (bool, string) {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		body = string(b)
		return strings.Contains(body, `beacon_pool_addresses_in_use{family="IPv4",pool="t-metrics"} 1`), ""
	})
	for _, want := range []string{
		`beacon_pool_addresses{family="IPv4",pool="t-metrics"} 4`,
		`beacon_allocation_failures_total{reason="IPNotInPool"}`,
		`beacon_service_reconcile_duration_seconds_bucket`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
