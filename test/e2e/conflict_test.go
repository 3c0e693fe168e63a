package e2e

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
	"github.com/beaconlb/beacon/lbservice"
	"github.com/beaconlb/beacon/speaker/agent"
	"github.com/beaconlb/beacon/speaker/plan"
)

// TestL2AddressConflicts: hosts outside the cluster on client-lan's LAN.
// The first already holds the first pool addresses (IPv4 and IPv6) before
// the pool exists: the elected speaker's probe (ARP Probe, DAD) finds them
// taken, nothing announces them, and the controller moves the Service.
// The second takes over an announced address later with gratuitous ARP:
// the announcer reports it and the controller moves the Service again.
// Both show as Warning Events, in the pool's AddressConflict condition and
// in the speakers' metrics, and the taken addresses are not handed out
// again. The first rogue's addresses never appear in any Service status
// (the controller writes a new L2 address there only after a speaker's
// probe passed), and no node ever answers for them.
func TestL2AddressConflicts(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s := startBeacon(t, l)
	first4, first6 := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")
	mac1 := net.HardwareAddr{0x02, 0x0b, 0xad, 0, 0, 1}
	labtest.StartRogue(t, "rogue1", mac1, first4, first6)
	if got := s.Resolve(first4.String()); !slices.Equal(got, []string{mac1.String()}) {
		t.Fatalf("before the pool, %s resolves to %v, want the rogue %s", first4, got, mac1)
	}

	// From here on, nothing but the rogue may ever answer for its
	// addresses, and no Service status may ever hold them.
	w := watchAnswers(s, mac1.String(), first4, first6)
	defer w.check(t)
	statuses := watchStatuses(t, s)
	defer statuses.never(t, first4, first6)

	// The speakers run (and have planned once) before the pool exists.
	for _, n := range l.Nodes() {
		s.Poll(30*time.Second, n.Name+" ready", func() (bool, string) { return s.ready(n.Name), "" })
	}
	s.LANPool()
	s.Apply(echoService("web", "n1-p1", nil))
	webIPs := s.waitIngressAvoiding("web", first4, first6)
	t.Logf("web got %v", webIPs)
	for _, ip := range []netip.Addr{first4, first6} {
		s.waitEvent("web", agent.EventAddressConflict, ip.String()+" is in use by another host (MAC "+mac1.String())
		s.waitEvent("web", controller.EventAddressConflict, ip.String()+" is in use by another host (MAC "+mac1.String())
	}
	s.waitPoolConflict(first4.String()+" (MAC "+mac1.String(), first6.String()+" (MAC "+mac1.String())
	// The Service works on its new addresses.
	for _, ip := range webIPs {
		s.Poll(20*time.Second, "HTTP via "+ip.String(), func() (bool, string) {
			r, err := s.get("client-lan", ip.String(), 80)
			return err == nil && r.Pod == "n1-p1", fmt.Sprint(r, err)
		})
	}
	probes := s.sumMetric(`beacon_l2_probes_sent_total{family="ipv4",interface="eth0"}`)
	if probes < 3 {
		t.Errorf("%v ARP probes sent, want at least 3", probes)
	}
	// Another Service does not get the rogue's addresses either.
	s.Apply(echoService("web2", "n2-p1", nil))
	web2 := s.waitIngressAvoiding("web2", first4, first6, webIPs[0], webIPs[1])
	t.Logf("web2 got %v", web2)

	// The second rogue takes web's IPv4 address over while it is announced.
	taken := webIPs[0]
	if !taken.Is4() {
		taken = webIPs[1]
	}
	mac2 := net.HardwareAddr{0x02, 0x0b, 0xad, 0, 0, 2}
	rogue2 := labtest.StartRogue(t, "rogue2", mac2, taken)
	if err := rogue2.GratuitousARP(s.Ctx, taken, 3); err != nil {
		t.Fatal(err)
	}
	s.waitEvent("web", agent.EventAddressConflict, taken.String()+" is claimed by another host (MAC "+mac2.String())
	moved := s.waitIngressAvoiding("web", first4, first6, taken)
	t.Logf("web moved from %s: %v", taken, moved)
	s.waitEvent("web", controller.EventAddressConflict, taken.String()+" is in use by another host (MAC "+mac2.String())
	s.waitPoolConflict(taken.String() + " (MAC " + mac2.String())
	if c := s.sumMetric(`beacon_l2_conflicts_total{family="ipv4",interface="eth0"}`); c < 2 {
		t.Errorf("beacon_l2_conflicts_total{ipv4} = %v over the nodes, want at least 2 (a probe answer and a claim)", c)
	}
	s.Apply(echoService("web3", "n3-p1", nil))
	s.waitIngressAvoiding("web3", first4, first6, taken)

	// No speaker said it announced the rogue's addresses: the Announcing
	// Event waits for the probe to pass.
	evs, err := s.L.Kube().CoreV1().Events("default").List(s.Ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	announcing := 0
	for _, e := range evs.Items {
		if e.Reason != plan.EventAnnouncing {
			continue
		}
		announcing++
		for _, ip := range []netip.Addr{first4, first6} {
			if strings.HasPrefix(e.Message, "Announcing "+ip.String()+" ") {
				t.Errorf("Announcing Event for the rogue's address on %s: %s", e.InvolvedObject.Name, e.Message)
			}
		}
	}
	if announcing == 0 {
		t.Error("no Announcing Event at all")
	}
}

// TestL2ProbeLocalNotReady: a Local Service whose only pod is not ready
// has no announcer, yet its offered addresses are probed (by the node the
// election picks when endpoints are not looked at) and go into status
// well within the probe timeout, without an AddressNotProbed Warning. A
// rogue holds the pool's first addresses: that probe finds them, the
// controller moves the Service, and they never reach its status. Nobody
// answers for the Service's addresses until its pod is ready.
func TestL2ProbeLocalNotReady(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s := startBeacon(t, l)
	first4, first6 := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")
	mac1 := net.HardwareAddr{0x02, 0x0b, 0xad, 0, 0, 3}
	labtest.StartRogue(t, "rogue3", mac1, first4, first6)
	w := watchAnswers(s, mac1.String(), first4, first6)
	defer w.check(t)
	statuses := watchStatuses(t, s)
	defer statuses.never(t, first4, first6)
	for _, n := range l.Nodes() {
		s.Poll(30*time.Second, n.Name+" ready", func() (bool, string) { return s.ready(n.Name), "" })
	}
	s.LANPool()
	const pod = "n2-p1"
	if err := l.SetPodReady(s.Ctx, pod, false); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	s.Apply(echoService("local", pod, func(svc *v1.Service) {
		svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}))
	ips := s.waitIngressAvoiding("local", first4, first6)
	took := time.Since(start)
	t.Logf("local got %v after %v (probe timeout %v)", ips, took.Round(time.Millisecond), controller.DefaultProbeTimeout)
	if took >= controller.DefaultProbeTimeout {
		t.Errorf("local got its addresses after %v, not before the probe timeout %v", took, controller.DefaultProbeTimeout)
	}
	for _, ip := range []netip.Addr{first4, first6} {
		s.waitEvent("local", agent.EventAddressConflict, ip.String()+" is in use by another host (MAC "+mac1.String())
	}
	// Probed, not announced: no node answers for them while the pod is
	// not ready.
	for _, ip := range ips {
		if got := s.Resolve(ip.String()); len(got) != 0 {
			t.Errorf("%s answered by %v while the Service has no ready endpoint", ip, got)
		}
	}
	if err := l.SetPodReady(s.Ctx, pod, true); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		s.Poll(20*time.Second, "HTTP via "+ip.String(), func() (bool, string) {
			r, err := s.get("client-lan", ip.String(), 80)
			return err == nil && r.Pod == pod, fmt.Sprint(r, err)
		})
	}
	evs, err := s.L.Kube().CoreV1().Events("default").List(s.Ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if e.Reason == controller.EventAddressNotProbed {
			t.Errorf("%s on %s: %s", e.Reason, e.InvolvedObject.Name, e.Message)
		}
	}
}

// statusWatch records every address that appears in the status of any
// Service in "default", from every update the API server sends.
type statusWatch struct {
	w       watch.Interface
	done    sync.WaitGroup
	mu      sync.Mutex
	updates int
	seen    map[netip.Addr]string // address -> first Service seen with it
}

func watchStatuses(t *testing.T, s *site) *statusWatch {
	t.Helper()
	w, err := s.L.Kube().CoreV1().Services("default").Watch(s.Ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sw := &statusWatch{w: w, seen: map[netip.Addr]string{}}
	sw.done.Go(func() {
		for ev := range w.ResultChan() {
			svc, ok := ev.Object.(*v1.Service)
			if !ok {
				continue
			}
			sw.mu.Lock()
			sw.updates++
			for _, ip := range lbservice.IngressIPs(svc) {
				if _, ok := sw.seen[ip]; !ok {
					sw.seen[ip] = svc.Name
				}
			}
			sw.mu.Unlock()
		}
	})
	t.Cleanup(func() { w.Stop(); sw.done.Wait() })
	return sw
}

// never stops the watch and fails the test if any of ips appeared in a
// Service status.
func (sw *statusWatch) never(t *testing.T, ips ...netip.Addr) {
	sw.w.Stop()
	sw.done.Wait()
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.updates == 0 {
		t.Error("the status watch saw no Service update")
	}
	for _, ip := range ips {
		if svc, ok := sw.seen[ip]; ok {
			t.Errorf("%s appeared in the status of Service %s", ip, svc)
		}
	}
	t.Logf("status watch: %d Service updates, addresses seen %v", sw.updates, slices.SortedFunc(maps.Keys(sw.seen), netip.Addr.Compare))
}

// waitIngressAvoiding waits until the Service (in "default") holds an
// address of each family, none of them in avoid, and returns them.
func (s *site) waitIngressAvoiding(name string, avoid ...netip.Addr) []netip.Addr {
	s.T.Helper()
	var ips []netip.Addr
	s.Poll(45*time.Second, "ingress of "+name+" avoiding "+fmt.Sprint(avoid), func() (bool, string) {
		svc, err := s.L.Kube().CoreV1().Services("default").Get(s.Ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ips = nil
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ip, err := netip.ParseAddr(in.IP)
			if err != nil || slices.Contains(avoid, ip) {
				return false, fmt.Sprint(svc.Status.LoadBalancer.Ingress)
			}
			ips = append(ips, ip)
		}
		return len(ips) == 2, fmt.Sprint(ips)
	})
	return ips
}

// waitEvent waits for an Event on the Service (in "default") with the
// reason whose message contains substr.
func (s *site) waitEvent(name, reason, substr string) {
	s.T.Helper()
	s.Poll(30*time.Second, fmt.Sprintf("event %s %q on %s", reason, substr, name), func() (bool, string) {
		evs, err := s.L.Kube().CoreV1().Events("default").List(s.Ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name != name || e.Reason != reason {
				continue
			}
			if strings.Contains(e.Message, substr) {
				return true, ""
			}
			seen = append(seen, e.Message)
		}
		return false, strings.Join(seen, " | ")
	})
}

// waitPoolConflict waits until the pool "lan" has AddressConflict True with
// every part in its message.
func (s *site) waitPoolConflict(parts ...string) {
	s.T.Helper()
	s.Poll(30*time.Second, "AddressConflict condition of pool lan naming "+strings.Join(parts, ", "), func() (bool, string) {
		var p v1alpha1.IPPool
		if err := s.BC.Get(s.Ctx, client.IPPools, "lan", &p); err != nil {
			return false, err.Error()
		}
		for _, c := range p.Status.Conditions {
			if c.Type != v1alpha1.PoolAddressConflict {
				continue
			}
			for _, part := range parts {
				if c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, part) {
					return false, string(c.Status) + " " + c.Message
				}
			}
			return true, ""
		}
		return false, "no AddressConflict condition"
	})
}

// sumMetric adds up one series over the nodes.
func (s *site) sumMetric(series string) float64 {
	var sum float64
	for _, n := range s.L.Nodes() {
		sum += s.metric(n.Name, series)
	}
	return sum
}

// answerWatch resolves addresses from client-lan over and over and records
// every answer from another MAC than the owner's.
type answerWatch struct {
	stop    chan struct{}
	done    sync.WaitGroup
	mu      sync.Mutex
	rounds  int
	foreign []string
}

func watchAnswers(s *site, owner string, ips ...netip.Addr) *answerWatch {
	w := &answerWatch{stop: make(chan struct{})}
	w.done.Go(func() {
		for {
			for _, ip := range ips {
				for _, mac := range s.Resolve(ip.String()) {
					if mac != owner {
						w.mu.Lock()
						w.foreign = append(w.foreign, fmt.Sprintf("%s answered by %s (%s)", ip, mac, s.NodeOfMAC(mac)))
						w.mu.Unlock()
					}
				}
			}
			w.mu.Lock()
			w.rounds++
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-s.Ctx.Done():
				return
			default:
			}
		}
	})
	return w
}

// check stops the watch and fails the test if anyone but the owner
// answered, or if the watch never completed a round.
func (w *answerWatch) check(t *testing.T) {
	close(w.stop)
	w.done.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rounds == 0 {
		t.Error("the answer watch completed no round")
	}
	if len(w.foreign) > 0 {
		t.Errorf("the rogue's addresses were answered by others: %v", w.foreign)
	}
	t.Logf("answer watch: %d rounds, all answers from the rogue", w.rounds)
}
