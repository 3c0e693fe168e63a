package chaos

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/provider"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// site is a lab running Beacon (see labtest.Site).
type site struct{ *labtest.Site }

func startBeacon(t *testing.T, l *lab.Lab) *site {
	t.Helper()
	return &site{labtest.StartBeacon(t, l, 6*time.Minute)}
}

// echoService creates a Service selecting every lab pod (one per node) and
// returns its address.
func (s *site) echoService(name string) string {
	s.T.Helper()
	svc := labtest.AllEchoService(name, "")
	// A kube-apiserver that has just restarted can refuse ClusterIPs for a
	// moment ("range is full") until its allocator repair has run: retry.
	s.Poll(30*time.Second, "create Service "+name, func() (bool, string) {
		_, err := s.L.Kube().CoreV1().Services("default").Create(s.Ctx, svc, metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err)
	})
	return s.ingress(name, 30*time.Second)
}

// ingress returns the Service's (single-stack) address.
func (s *site) ingress(name string, timeout time.Duration) string {
	s.T.Helper()
	return s.IngressWithin(name, timeout)[0]
}

// labUp waits up to 30 minutes for the lab: the lab is one per machine and
// chaos runs queue behind other lab tests.
func labUp(t *testing.T, cfg lab.Config) *lab.Lab {
	t.Helper()
	return labtest.UpWithin(t, cfg, 30*time.Minute)
}

// needChaos gates the long scenarios behind `make chaos`.
func needChaos(t *testing.T) {
	t.Helper()
	if os.Getenv("BEACON_CHAOS") != "1" {
		t.Skip("chaos scenarios run with `make chaos` (BEACON_CHAOS=1)")
	}
}

// procCmdline reads a process's argv.
func procCmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// bgpService peers every node with the lab router (with a BFD profile
// unless ""), and creates a Service in the routed pool; it returns the Service's address once the router's
// FIB has one next hop per node.
func (s *site) bgpService(name, bfdProfile string) string {
	s.T.Helper()
	must := func(err error) {
		s.T.Helper()
		if err != nil {
			s.T.Fatal(err)
		}
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(lab.BGPPoolV4.String())}
	pool.Spec.AutoAssign = ptr.To(false)
	must(s.BC.Create(s.Ctx, client.IPPools, pool))
	must(s.BC.Create(s.Ctx, client.BGPPeers, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: v1alpha1.ASN(lab.NodeASN), PeerASN: v1alpha1.ASN(lab.RouterASN), PeerAddress: s.L.Topology().Router.IPv4.String(),
		GracefulRestart: &v1alpha1.GracefulRestart{Enabled: true}, BFDProfile: bfdProfile,
	}}))
	must(s.BC.Create(s.Ctx, client.BGPAdvertisements, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"},
		Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"bgp"}}}))
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{provider.AnnotationPool: "bgp"}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"lab.beaconlb.io/app": "echo"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := s.L.Kube().CoreV1().Services("default").Create(s.Ctx, svc, metav1.CreateOptions{}); err != nil {
		s.T.Fatal(err)
	}
	ip := s.ingress(name, 30*time.Second)
	var hops []netip.Addr
	for _, n := range s.L.Nodes() {
		hops = append(hops, n.IPv4)
	}
	ctx, cancel := context.WithTimeout(s.Ctx, 60*time.Second)
	defer cancel()
	if got, err := s.L.Router().WaitFIBNextHops(ctx, netip.PrefixFrom(netip.MustParseAddr(ip), 32), hops...); err != nil {
		s.T.Fatalf("router FIB for %s: next hops %v, want every node: %v", ip, got, err)
	}
	return ip
}

// TestAPIServerOutage stops the API server for 60 s while client-lan sends
// a request every 10 ms to an L2 Service and client-ext one every 10 ms to
// a BGP Service: no request may fail, speakers keep running, announcing
// and peering, and when the API server is back they resync: a Service
// created afterwards is announced and served.
func TestAPIServerOutage(t *testing.T) {
	needChaos(t)
	l := labUp(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s := startBeacon(t, l)
	s.LANPool()
	ip := s.echoService("steady")
	s.Poll(30*time.Second, "HTTP via "+ip, func() (bool, string) {
		a := s.Announcers("steady")
		return len(a) == 1 && s.Answerer(ip) == a[0], fmt.Sprint(a)
	})
	bgpIP := s.bgpService("steady-bgp", "")
	p := labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(ip, "80"))
	pb := labtest.StartProber(s.Ctx, l, lab.ClientExt, net.JoinHostPort(bgpIP, "80"))
	s.Poll(10*time.Second, "first replies", func() (bool, string) {
		sent, failed := p.Counts()
		sentB, failedB := pb.Counts()
		return sent > 100 && sentB > 100, fmt.Sprint(sent, failed, sentB, failedB)
	})
	sent0, failed0 := p.Counts()
	sentB0, failedB0 := pb.Counts()

	api := s.Process("kube-apiserver")
	if api == nil {
		t.Fatal("no kube-apiserver process in the lab")
	}
	argv, err := procCmdline(api.Pid)
	if err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	if err := l.StopProcess("kube-apiserver"); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server stopped")
	// The outage lasts 60 s; meanwhile every speaker must stay up.
	outage := time.NewTimer(60 * time.Second)
	check := time.NewTicker(time.Second)
	var died []string
	for waiting := true; waiting; {
		select {
		case <-outage.C:
			waiting = false
		case <-check.C:
			for _, n := range l.Nodes() {
				if pr := s.Process("speaker-" + n.Name); pr == nil || !pr.Alive() {
					if !slices.Contains(died, n.Name) {
						died = append(died, n.Name)
					}
				}
			}
		case <-s.Ctx.Done():
			t.Fatal(s.Ctx.Err())
		}
	}
	check.Stop()
	if _, err := l.StartProcess(lab.ProcessSpec{Name: "kube-apiserver", Netns: api.Netns, Argv: argv}); err != nil {
		t.Fatalf("restart API server: %v", err)
	}
	s.Poll(60*time.Second, "API server back", func() (bool, string) {
		_, err := l.Kube().CoreV1().Services("default").Get(s.Ctx, "steady", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	up := time.Now()
	t.Logf("API server back after %v", up.Sub(down).Round(time.Second))
	// A controller that lost its Lease exits (to restart cleanly); restart
	// it as a kubelet would.
	ctrlRestarted := false
	if pr := s.Process("beacon-controller"); pr == nil || !pr.Alive() {
		_ = l.StopProcess("beacon-controller")
		s.StartController()
		ctrlRestarted = true
	}
	sent1, failed1 := p.Counts()
	sentB1, failedB1 := pb.Counts()
	t.Logf("during the outage: L2 %d requests, %d failed; BGP %d requests, %d failed", sent1-sent0, failed1-failed0, sentB1-sentB0, failedB1-failedB0)
	t.Cleanup(func() {
		if t.Failed() {
			for _, pr := range l.Processes() {
				if strings.HasPrefix(pr.Name, "speaker-") || pr.Name == "beacon-controller" {
					t.Logf("--- %s log tail:\n%s", pr.Name, lab.LogTail(pr.Log, 6000))
				}
			}
		}
	})

	// Resync: a Service created now is allocated, announced and served.
	ip2 := s.echoService("after")
	t.Logf("Service after the outage: allocated %s %v after the API server returned", ip2, time.Since(up).Round(100*time.Millisecond))
	s.Poll(90*time.Second, "an announcer for "+ip2, func() (bool, string) {
		a := s.Announcers("after")
		return len(a) > 0, fmt.Sprint(a)
	})
	t.Logf("Service after the outage: announced %v after the API server returned", time.Since(up).Round(100*time.Millisecond))
	s.Poll(90*time.Second, "HTTP via "+ip2+" after the outage", func() (bool, string) {
		hc := l.HTTPClient("client-lan")
		hc.Timeout = time.Second
		resp, err := hc.Get("http://" + net.JoinHostPort(ip2, "80") + "/")
		if err != nil {
			return false, err.Error()
		}
		_ = resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	served := time.Since(up)
	t.Logf("a Service created after the outage is served %v after the API server returned", served.Round(100*time.Millisecond))
	// Informers wait out the outage rather than back off (cli.WaitOutOutages),
	// so the resync takes seconds (the controller's restart and Lease
	// included); client-go's back-off alone took 52-78 s.
	if served > 20*time.Second {
		t.Errorf("a Service created after the outage was served %v after the API server returned, want within 20 s", served.Round(100*time.Millisecond))
	}
	// The first Service kept its address and still has one announcer.
	if got := s.ingress("steady", 10*time.Second); got != ip {
		t.Errorf("steady changed address %s -> %s", ip, got)
	}
	s.Poll(20*time.Second, "one announcer for steady", func() (bool, string) {
		a := s.Announcers("steady")
		return len(a) == 1, fmt.Sprint(a)
	})
	p.Stop()
	pb.Stop()
	sent, failed := p.Counts()
	sentB, failedB := pb.Counts()
	changed, changedB := 0, 0
	if s.ingress("steady", 5*time.Second) != ip {
		changed = 1
	}
	if s.ingress("steady-bgp", 5*time.Second) != bgpIP {
		changedB = 1
	}
	var c, cb counts
	c.sent.Store(int64(sent1 - sent0))
	c.failed.Store(int64(failed1 - failed0))
	c.changed.Store(int64(changed))
	c.report(t, "apiserver-outage-l2", fmt.Sprintf(" (60 s outage; whole run %d requests, %d failed; controller restarted after losing its Lease: %v; speakers that died: %v)",
		sent, failed, ctrlRestarted, died))
	cb.sent.Store(int64(sentB1 - sentB0))
	cb.failed.Store(int64(failedB1 - failedB0))
	cb.changed.Store(int64(changedB))
	cb.report(t, "apiserver-outage-bgp", fmt.Sprintf(" (60 s outage, from client-ext through the router's ECMP route; whole run %d requests, %d failed)", sentB, failedB))
	if failed1 != failed0 {
		t.Errorf("%d L2 requests failed during the API server outage, want 0; last failures: %q", failed1-failed0, p.LastErrors())
	}
	if failedB1 != failedB0 {
		t.Errorf("%d BGP requests failed during the API server outage, want 0; last failures: %q", failedB1-failedB0, pb.LastErrors())
	}
	if changed+changedB > 0 {
		t.Errorf("addresses changed: L2 %v, BGP %v", changed > 0, changedB > 0)
	}
	if len(died) > 0 {
		t.Errorf("speakers died during the outage: %v", died)
	}
}

// TestSpeakerRestartsAndLinkFlaps: while client-lan sends a request every
// 10 ms, the announcing speaker is SIGKILLed and restarted, and the
// announcing node's LAN link goes down and up, three rounds each. Traffic
// must recover within the L2 failover bound (5 s) every time, and the
// Service keeps its address.
func TestSpeakerRestartsAndLinkFlaps(t *testing.T) {
	needChaos(t)
	const bound = 5 * time.Second
	l := labUp(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s := startBeacon(t, l)
	s.LANPool()
	ip := s.echoService("steady")
	var who string
	// settled waits until one node announces the Service and answers for
	// its address, and remembers that node.
	settled := func(what string) {
		t.Helper()
		s.Poll(30*time.Second, what, func() (bool, string) {
			a := s.Announcers("steady")
			if len(a) == 1 && s.Answerer(ip) == a[0] {
				who = a[0]
				return true, ""
			}
			return false, fmt.Sprint(a)
		})
	}
	settled("one announcer answering")
	// BGP with BFD at the lab router's 300 ms x 3: a dead link leaves the
	// ECMP set in about a second.
	if err := s.BC.Create(s.Ctx, client.BFDProfiles, &v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "chaos"},
		Spec: v1alpha1.BFDProfileSpec{ReceiveInterval: ptr.To(int32(300)), TransmitInterval: ptr.To(int32(300)), DetectMultiplier: ptr.To(int32(3))}}); err != nil {
		t.Fatal(err)
	}
	bgpIP := s.bgpService("steady-bgp", "chaos")
	type probe struct {
		name                 string
		p                    *labtest.Prober
		worst, worstRecovery time.Duration
	}
	probes := []*probe{
		{name: "l2", p: labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(ip, "80"))},
		{name: "bgp", p: labtest.StartProber(s.Ctx, l, lab.ClientExt, net.JoinHostPort(bgpIP, "80"))},
	}
	s.Poll(10*time.Second, "first replies", func() (bool, string) {
		for _, pr := range probes {
			if sent, _ := pr.p.Counts(); sent <= 100 {
				return false, pr.name
			}
		}
		return true, ""
	})
	measure := func(what string, from time.Time) {
		for _, pr := range probes {
			p := pr.p
			// Wait for 2 s of steady successes and no failure after
			// recovery (a share of failing requests would leave no long gap
			// between successes), then take the longest gap since the fault.
			s.Poll(bound+10*time.Second, pr.name+" traffic after "+what, func() (bool, string) {
				now := time.Now()
				return time.Since(from) > 2*time.Second && p.LastSuccess().After(now.Add(-50*time.Millisecond)) &&
					p.LongestSince(now.Add(-2*time.Second)) < 200*time.Millisecond && p.QuietFor(2*time.Second), ""
			})
			gap := p.LongestGap(from, time.Now())
			pr.worst = max(pr.worst, gap)
			// Recovery: from the fault to the last failed request (a
			// failure completes up to 1 s after it was sent); 0 when none
			// failed.
			failures := p.Failures(from)
			var recovery time.Duration
			for _, b := range failures {
				recovery = max(recovery, b.Sub(from))
			}
			pr.worstRecovery = max(pr.worstRecovery, recovery)
			t.Logf("%s: %s: %d failed requests, last failure %v after the fault, longest gap between successes %v",
				what, pr.name, len(failures), recovery.Round(time.Millisecond), gap.Round(time.Millisecond))
			if len(failures) > 0 {
				t.Logf("%s: %s: last failures: %q", what, pr.name, p.LastErrors())
			}
			if gap > bound || recovery > bound+time.Second {
				t.Errorf("%s: %s traffic not recovered within %v (gap %v, last failure after %v)", what, pr.name, bound, gap, recovery)
			}
		}
	}
	for round := range 3 {
		// Crash and restart the announcing speaker.
		at := time.Now()
		s.KillSpeaker(who)
		next, _ := s.AnsweredBy(ip, bound, func(n string) bool { return n != who })
		measure(fmt.Sprintf("round %d: SIGKILL speaker on %s (now %s)", round, who, next), at)
		s.StartSpeaker(who)
		// Wait until announcements settle (one announcer that answers).
		settled("settled")
		measure(fmt.Sprintf("round %d: speaker restarted", round), at)

		// Flap the announcer's LAN link.
		at = time.Now()
		if err := l.SetCable(s.Ctx, who, false); err != nil {
			t.Fatal(err)
		}
		next, _ = s.AnsweredBy(ip, bound, func(n string) bool { return n != who })
		if err := l.SetCable(s.Ctx, who, true); err != nil {
			t.Fatal(err)
		}
		measure(fmt.Sprintf("round %d: link of %s down and up (answered by %s)", round, who, next), at)
		settled("settled")
	}
	for _, pr := range probes {
		pr.p.Stop()
		sent, failed := pr.p.Counts()
		var c counts
		c.sent.Store(int64(sent))
		c.failed.Store(int64(failed))
		want := ip
		svc := "steady"
		if pr.name == "bgp" {
			want, svc = bgpIP, "steady-bgp"
		}
		if got := s.ingress(svc, 5*time.Second); got != want {
			c.changed.Store(1)
			t.Errorf("%s: address changed %s -> %s", svc, want, got)
		}
		c.report(t, "speaker-restarts-link-flaps-"+pr.name, fmt.Sprintf(" (3 SIGKILL+restart and 3 link flaps of the L2 announcer's node; failures are expected while traffic moves; worst recovery %v (last failure after the fault), worst gap between successes %v, bound %v)", pr.worstRecovery.Round(time.Millisecond), pr.worst.Round(time.Millisecond), bound))
	}
}
