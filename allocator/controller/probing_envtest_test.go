package controller_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

	h.noEvents(controller.EventInvalidRequest)
	got := seen()
	if slices.Contains(got.ingress, "198.18.79.0") {
		t.Errorf("the address in use appeared in a Service status: %v", got.ingress)
	}
	if slices.Contains(got.probing, "routed") {
		t.Errorf("a Service of a pool without L2Advertisement waited for a probe")
	}
	t.Logf("%d Service updates watched, ingress seen: %v", got.updates, got.ingress)
}

// TestProbingOfferSurvivesRestart: a controller that starts while a
// Service waits for its probe reads the offer back from the probing
// annotation. The Service keeps the offered address and keeps waiting, and
// no other Service gets that address, neither one that asks for it nor one
// that takes the next free address of the pool.
func TestProbingOfferSurvivesRestart(t *testing.T) {
	h := newHarness(t)
	const class = "beaconlb.io/t-offer"
	h.pool("t-offer", nil, "198.18.79.128/29")
	h.create(client.L2Advertisements, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "t-offer"},
		Spec: v1alpha1.L2AdvertisementSpec{IPPools: []string{"t-offer"}}})
	// No speaker runs here: offers wait until a test-written report or the
	// timeout, which the test never reaches.
	opts := func(o *app.Options) {
		o.LoadBalancerClass = class
		o.ProbeTimeout = time.Hour
	}
	stop := h.startController(opts)
	seen := h.watchStatus()
	mine := func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) }

	// first takes the pool's first address, so web's offer is the second;
	// once first is gone, a controller that forgot the offer would hand
	// web the first address again, or web's to whoever syncs first.
	h.service("first", mine)
	h.waitProbing("first", "198.18.79.128")
	h.service("web", mine)
	h.waitProbing("web", "198.18.79.129")
	h.deleteService("first")
	h.eventually(10*time.Second, "first deleted", func() (bool, string) {
		_, err := h.getService("first")
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})

	stop()
	h.service("other", func(s *v1.Service) {
		mine(s)
		s.Annotations["beaconlb.io/ips"] = "198.18.79.129"
	})
	h.service("auto", mine)
	h.startController(opts)
	h.waitProbing("auto", "198.18.79.128")
	h.waitEvent("other", controller.EventAllocationFailed, "198.18.79.129")
	s, err := h.getService("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Annotations[lbservice.AnnotationProbing]; got != "198.18.79.129" || len(s.Status.LoadBalancer.Ingress) != 0 {
		t.Fatalf("web after the restart: offer %q, status %v; want it still waiting for 198.18.79.129", got, ingress(s))
	}

	// The speaker reports the offer probed: it goes into status.
	ann := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Labels: map[string]string{v1alpha1.NodeLabel: "n1"}},
		Service:    "web", Node: "n1", Via: v1alpha1.ViaL2, Addresses: []string{"198.18.79.129"},
	}
	if err := h.env.Beacon.CreateIn(h.ctx, h.ns, client.ServiceAnnouncements, ann); err != nil {
		t.Fatal(err)
	}
	h.waitIPs("web", "198.18.79.129")
	h.waitProbing("web", "")
	if got := seen().holders["198.18.79.129"]; !slices.Equal(got, []string{"web"}) {
		t.Errorf("198.18.79.129 was offered to or held by %v; want only web", got)
	}
}

// TestProbedOfferCommits: a speaker that probed an offered address without
// announcing it (a Local Service without ready endpoints) lists it under
// probed; the controller writes it into status at once, without waiting
// for the probe timeout and without a Warning.
func TestProbedOfferCommits(t *testing.T) {
	h := newHarness(t)
	const class = "beaconlb.io/t-probed"
	h.pool("t-probed", nil, "198.18.79.160/29")
	h.create(client.L2Advertisements, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "t-probed"},
		Spec: v1alpha1.L2AdvertisementSpec{IPPools: []string{"t-probed"}}})
	h.startController(func(o *app.Options) {
		o.LoadBalancerClass = class
		o.ProbeTimeout = time.Hour
	})
	h.service("local", func(s *v1.Service) {
		s.Spec.LoadBalancerClass = ptr.To(class)
		s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	})
	h.waitProbing("local", "198.18.79.160")
	ann := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "local-n1", Labels: map[string]string{v1alpha1.NodeLabel: "n1"}},
		Service:    "local", Node: "n1", Via: v1alpha1.ViaL2, Addresses: []string{}, Interfaces: []string{"eth0"},
		Probed: []string{"198.18.79.160"},
	}
	if err := h.env.Beacon.CreateIn(h.ctx, h.ns, client.ServiceAnnouncements, ann); err != nil {
		t.Fatal(err)
	}
	h.waitIPs("local", "198.18.79.160")
	h.waitProbing("local", "")
	h.waitEvent("local", controller.EventIPAllocated, "Allocated 198.18.79.160 (pool t-probed)")
	h.noEvents(controller.EventAddressNotProbed)
}

// noEvents fails the test for every Event in the namespace with the
// reason.
func (h *harness) noEvents(reason string) {
	h.t.Helper()
	evs, err := h.env.Kube.CoreV1().Events(h.ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Reason == reason {
			h.t.Errorf("%s on %s: %s", e.Reason, e.InvolvedObject.Name, e.Message)
		}
	}
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
	// holders maps each address to the Services seen with it in status
	// or in the probing annotation, each once.
	holders map[string][]string
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
	got := statusSeen{holders: map[string][]string{}}
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
			for _, ip := range append(ingress(s), strings.Split(s.Annotations[lbservice.AnnotationProbing], ",")...) {
				if ip != "" && !slices.Contains(got.holders[ip], s.Name) {
					got.holders[ip] = append(got.holders[ip], s.Name)
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
		return statusSeen{updates: got.updates, ingress: slices.Clone(got.ingress), probing: slices.Clone(got.probing), holders: maps.Clone(got.holders)}
	}
}
