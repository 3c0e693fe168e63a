package controller_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
)

// TestProbeBeforeStatus: a new address of a pool announced in L2 goes
// into a Service's status only once a speaker reports it announced (its
// probe passed). Until then it is offered in the probing annotation; an
// address a speaker finds in use there is never written into status, and
// the Service moves on. Without any report the address goes into status
// after the probe timeout, with a Warning; addresses of a pool no
// L2Advertisement selects go into status without waiting.
func TestProbeBeforeStatus(t *testing.T) {
	h := newHarness(t)
	const class = "beaconlb.io/t-probe"
	h.pool("t-probe", nil, "198.18.79.0/29")
	h.pool("t-probe-bgp", func(p *v1alpha1.IPPool) { p.Spec.AutoAssign = ptr.To(false) }, "198.18.79.64/29")
	h.create(client.L2Advertisements, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "t-probe"},
		Spec: v1alpha1.L2AdvertisementSpec{IPPools: []string{"t-probe"}}})
	const timeout = 4 * time.Second
	h.startController(func(o *app.Options) {
		o.LoadBalancerClass = class
		o.ProbeTimeout = timeout
	})
	seen := h.watchStatus()
	mine := func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) }

	h.service("web", mine)
	h.waitProbing("web", "198.18.79.0")
	if s, _ := h.getService("web"); len(s.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("status before any probe: %v", ingress(s))
	}
	// The speaker's probe finds the address in use.
	ann := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Labels: map[string]string{v1alpha1.NodeLabel: "n1"}},
		Service:    "web", Node: "n1", Via: v1alpha1.ViaL2, Addresses: []string{},
		Conflicts: []v1alpha1.AddressConflict{{Address: "198.18.79.0", MAC: "02:00:00:00:00:96", Interface: "eth0"}},
	}
	if err := h.env.Beacon.CreateIn(h.ctx, h.ns, client.ServiceAnnouncements, ann); err != nil {
		t.Fatal(err)
	}
	h.waitProbing("web", "198.18.79.1")
	h.waitEvent("web", controller.EventAddressConflict, "198.18.79.0 is in use by another host (MAC 02:00:00:00:00:96, seen by node n1 on eth0, found by probing before it was announced): moved to 198.18.79.1")
	// The next address passes its probe and is announced (the report is
	// replaced rather than updated: the test does not track its version).
	if err := h.env.Beacon.DeleteIn(h.ctx, h.ns, client.ServiceAnnouncements, ann.Name); err != nil {
		t.Fatal(err)
	}
	ann = ann.DeepCopy()
	ann.ResourceVersion, ann.UID, ann.Addresses = "", "", []string{"198.18.79.1"}
	if err := h.env.Beacon.CreateIn(h.ctx, h.ns, client.ServiceAnnouncements, ann); err != nil {
		t.Fatal(err)
	}
	h.waitIPs("web", "198.18.79.1")
	h.waitProbing("web", "")
	h.waitEvent("web", controller.EventIPAllocated, "Allocated 198.18.79.1 (pool t-probe)")

	// Nobody reports: the address goes into status after the timeout.
	start := time.Now()
	h.service("lonely", mine)
	h.waitProbing("lonely", "198.18.79.2")
	h.waitIPs("lonely", "198.18.79.2")
	if waited := time.Since(start); waited < timeout {
		t.Errorf("lonely got its address after %v, before the probe timeout %v", waited, timeout)
	}
	h.waitEvent("lonely", controller.EventAddressNotProbed, "No speaker reported 198.18.79.2 probed within 4s")

	// A pool without L2Advertisement: no probing annotation at all.
	h.service("routed", func(s *v1.Service) {
		mine(s)
		s.Annotations["beaconlb.io/pool"] = "t-probe-bgp"
	})
	h.waitIPs("routed", "198.18.79.64")

	evs, err := h.env.Kube.CoreV1().Events(h.ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Reason == controller.EventInvalidRequest {
			t.Errorf("%s on %s: %s", e.Reason, e.InvolvedObject.Name, e.Message)
		}
	}
	got := seen()
	if slices.Contains(got.ingress, "198.18.79.0") {
		t.Errorf("the address in use appeared in a Service status: %v", got.ingress)
	}
	if slices.Contains(got.probing, "routed") {
		t.Errorf("a Service of a pool without L2Advertisement waited for a probe")
	}
	t.Logf("%d Service updates watched, ingress seen: %v", got.updates, got.ingress)
}

// waitProbing waits until the Service's probing annotation is want ("":
// absent).
func (h *harness) waitProbing(name, want string) {
	h.t.Helper()
	h.eventually(10*time.Second, "probing annotation of "+name, func() (bool, string) {
		s, err := h.getService(name)
		if err != nil {
			return false, err.Error()
		}
		got, ok := s.Annotations[lbservice.AnnotationProbing]
		return got == want && ok == (want != ""), fmt.Sprintf("%q %v", got, ok)
	})
}

// statusSeen is what a watch of the test namespace's Services saw.
type statusSeen struct {
	updates int
	ingress []string // every address seen in a status, each once
	probing []string // the Services seen with a probing annotation
}

// watchStatus watches every Service update in the test's namespace until
// the returned function is called, which returns what it saw.
func (h *harness) watchStatus() func() statusSeen {
	h.t.Helper()
	w, err := h.env.Kube.CoreV1().Services(h.ns).Watch(h.ctx, metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	var mu sync.Mutex
	var got statusSeen
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev := range w.ResultChan() {
			s, ok := ev.Object.(*v1.Service)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			mu.Lock()
			got.updates++
			for _, ip := range ingress(s) {
				if !slices.Contains(got.ingress, ip) {
					got.ingress = append(got.ingress, ip)
				}
			}
			if _, ok := s.Annotations[lbservice.AnnotationProbing]; ok && !slices.Contains(got.probing, s.Name) {
				got.probing = append(got.probing, s.Name)
			}
			mu.Unlock()
		}
	})
	var once sync.Once
	stop := func() { once.Do(func() { w.Stop(); wg.Wait() }) }
	h.t.Cleanup(stop)
	return func() statusSeen {
		stop()
		mu.Lock()
		defer mu.Unlock()
		return statusSeen{updates: got.updates, ingress: slices.Clone(got.ingress), probing: slices.Clone(got.probing)}
	}
}
