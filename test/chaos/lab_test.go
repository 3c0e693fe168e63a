package chaos

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/provider"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// The helpers below are small copies of test/e2e's (a test package cannot
// be imported).

// site is a lab running Beacon: the controller in host, a speaker per node.
type site struct {
	t   *testing.T
	l   *lab.Lab
	ctx context.Context
	bin string
	bc  *client.Client
}

func startBeacon(t *testing.T, l *lab.Lab) *site {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	bc, err := client.New(l.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	labtest.BuildInto(t, dir, "./cmd/beacon-controller")
	labtest.BuildInto(t, dir, "./cmd/beacon-speaker")
	s := &site{t: t, l: l, ctx: ctx, bin: dir, bc: bc}
	s.startController()
	for _, n := range l.Nodes() {
		s.startSpeaker(n.Name)
	}
	return s
}

func (s *site) startController() {
	s.t.Helper()
	if _, err := s.l.StartProcess(lab.ProcessSpec{Name: "beacon-controller", Netns: "host", Argv: []string{
		filepath.Join(s.bin, "beacon-controller"), "--kubeconfig", s.l.Kubeconfig(), "--leader-elect-namespace", "default",
	}}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) startSpeaker(node string) {
	s.t.Helper()
	if _, err := s.l.StartProcess(lab.ProcessSpec{Name: "speaker-" + node, Netns: node, Argv: []string{
		filepath.Join(s.bin, "beacon-speaker"), "--kubeconfig", s.l.Kubeconfig(), "--node-name", node, "--dataplane=full", "-v=1",
	}}); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) process(name string) *lab.Process {
	for _, p := range s.l.Processes() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// killSpeaker sends SIGKILL to a node's speaker, as a crash would.
func (s *site) killSpeaker(node string) {
	s.t.Helper()
	if p := s.process("speaker-" + node); p != nil {
		if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
			s.t.Fatal(err)
		}
	}
	_ = s.l.StopProcess("speaker-" + node) // reaps it and forgets the pid file
}

func (s *site) poll(timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	s.t.Helper()
	start := time.Now()
	var last string
	err := wait.PollUntilContextTimeout(s.ctx, 10*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		s.t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
	}
	return time.Since(start)
}

func (s *site) lanPool() {
	s.t.Helper()
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	p.Spec.Addresses = []v1alpha1.AddressBlock{"198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"}
	if err := s.bc.Create(s.ctx, client.IPPools, p); err != nil {
		s.t.Fatal(err)
	}
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	ad.Spec.IPPools = []string{"lan"}
	if err := s.bc.Create(s.ctx, client.L2Advertisements, ad); err != nil {
		s.t.Fatal(err)
	}
}

// echoService selects every lab pod (one per node).
func (s *site) echoService(name string) string {
	s.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"lab.beaconlb.io/app": "echo"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	// A kube-apiserver that has just restarted can refuse ClusterIPs for a
	// moment ("range is full") until its allocator repair has run: retry.
	s.poll(30*time.Second, "create Service "+name, func() (bool, string) {
		_, err := s.l.Kube().CoreV1().Services("default").Create(s.ctx, svc, metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err)
	})
	return s.ingress(name, 30*time.Second)
}

func (s *site) ingress(name string, timeout time.Duration) string {
	s.t.Helper()
	var ip string
	s.poll(timeout, "ingress of "+name, func() (bool, string) {
		svc, err := s.l.Kube().CoreV1().Services("default").Get(s.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return false, "none"
		}
		ip = svc.Status.LoadBalancer.Ingress[0].IP
		return true, ip
	})
	return ip
}

// announcers returns the nodes whose ServiceAnnouncement names the Service.
func (s *site) announcers(service string) []string {
	var list v1alpha1.ServiceAnnouncementList
	if err := s.bc.List(s.ctx, "default", client.ServiceAnnouncements, &list); err != nil {
		return nil
	}
	var out []string
	for _, a := range list.Items {
		if a.Service == service {
			out = append(out, a.Node)
		}
	}
	sort.Strings(out)
	return out
}

var macRE = regexp.MustCompile(`(?i)([0-9a-f]{2}(:[0-9a-f]{2}){5})`)

// answerer asks from client-lan who has the IPv4 address and returns the
// node that answered, or "" unless exactly one did.
func (s *site) answerer(ip string) string {
	out, _ := s.l.Exec(s.ctx, "client-lan", "arping", "-c", "1", "-w", "1", "-I", lab.LANInterface, ip)
	var macs []string
	for _, line := range strings.Split(string(out), "\n") {
		if m := macRE.FindString(line); m != "" && strings.Contains(line, "bytes from") {
			macs = append(macs, strings.ToLower(m))
		}
	}
	if len(macs) != 1 {
		return ""
	}
	for _, n := range s.l.Nodes() {
		if strings.EqualFold(n.MAC.String(), macs[0]) {
			return n.Name
		}
	}
	return "?" + macs[0]
}

func (s *site) answeredBy(ip string, timeout time.Duration, cond func(node string) bool) (string, time.Duration) {
	s.t.Helper()
	var node string
	d := s.poll(timeout, "answer for "+ip, func() (bool, string) {
		node = s.answerer(ip)
		return node != "" && cond(node), node
	})
	return node, d
}

// prober starts one HTTP request every 10 ms from client-lan, each on its
// own connection (at most 200 in flight, 1 s timeout), and records when
// each success completed.
type prober struct {
	mu      sync.Mutex
	ok      []time.Time
	bad     []time.Time // when each failure was seen
	errs    []string    // the last failures: when each started, and why
	sent    int
	failed  int
	stop    context.CancelFunc
	stopped chan struct{}
}

func startProber(ctx context.Context, l *lab.Lab, target string) *prober {
	return startProberFrom(ctx, l, "client-lan", target)
}

// startProberFrom is startProber from another lab namespace.
func startProberFrom(ctx context.Context, l *lab.Lab, from, target string) *prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &prober{stop: cancel, stopped: make(chan struct{})}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return l.Dialer(from)(ctx, network, addr)
	}}
	hc := &http.Client{Transport: tr, Timeout: time.Second}
	slots := make(chan struct{}, 200)
	one := func() {
		defer func() { <-slots }()
		start := time.Now()
		resp, err := hc.Get("http://" + target + "/")
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if err == nil {
			at := time.Now()
			i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(at) })
			p.ok = slices.Insert(p.ok, i, at)
		} else {
			p.failed++
			p.bad = append(p.bad, time.Now())
			p.errs = append(p.errs, fmt.Sprintf("%s (+%v): %v", start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), err))
			if len(p.errs) > 20 {
				p.errs = p.errs[1:]
			}
		}
	}
	go func() {
		var wg sync.WaitGroup
		defer close(p.stopped)
		defer wg.Wait()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
				p.mu.Lock()
				p.sent++
				p.mu.Unlock()
				wg.Go(one)
			default:
				p.mu.Lock()
				p.sent++
				p.failed++
				p.bad = append(p.bad, time.Now())
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *prober) counts() (sent, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.failed
}

// longestGap returns the longest time without a successful reply between
// from and to (both inclusive of the successes around them).
func (p *prober) longestGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(from) })
	j := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(to) })
	var longest time.Duration
	for k := max(i, 1); k < len(p.ok) && k <= j; k++ {
		longest = max(longest, p.ok[k].Sub(p.ok[k-1]))
	}
	return longest
}

func (p *prober) finish() {
	p.stop()
	<-p.stopped
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
	s.t.Helper()
	must := func(err error) {
		s.t.Helper()
		if err != nil {
			s.t.Fatal(err)
		}
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(lab.BGPPoolV4.String())}
	pool.Spec.AutoAssign = ptr.To(false)
	must(s.bc.Create(s.ctx, client.IPPools, pool))
	must(s.bc.Create(s.ctx, client.BGPPeers, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "router"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: v1alpha1.ASN(lab.NodeASN), PeerASN: v1alpha1.ASN(lab.RouterASN), PeerAddress: s.l.Topology().Router.IPv4.String(),
		GracefulRestart: &v1alpha1.GracefulRestart{Enabled: true}, BFDProfile: bfdProfile,
	}}))
	must(s.bc.Create(s.ctx, client.BGPAdvertisements, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"},
		Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"bgp"}}}))
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{provider.AnnotationPool: "bgp"}},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"lab.beaconlb.io/app": "echo"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := s.l.Kube().CoreV1().Services("default").Create(s.ctx, svc, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	ip := s.ingress(name, 30*time.Second)
	var hops []netip.Addr
	for _, n := range s.l.Nodes() {
		hops = append(hops, n.IPv4)
	}
	ctx, cancel := context.WithTimeout(s.ctx, 60*time.Second)
	defer cancel()
	if got, err := s.l.Router().WaitFIBNextHops(ctx, netip.PrefixFrom(netip.MustParseAddr(ip), 32), hops...); err != nil {
		s.t.Fatalf("router FIB for %s: next hops %v, want every node: %v", ip, got, err)
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
	s.lanPool()
	ip := s.echoService("steady")
	s.poll(30*time.Second, "HTTP via "+ip, func() (bool, string) {
		a := s.announcers("steady")
		return len(a) == 1 && s.answerer(ip) == a[0], fmt.Sprint(a)
	})
	bgpIP := s.bgpService("steady-bgp", "")
	p := startProber(s.ctx, l, net.JoinHostPort(ip, "80"))
	pb := startProberFrom(s.ctx, l, lab.ClientExt, net.JoinHostPort(bgpIP, "80"))
	s.poll(10*time.Second, "first replies", func() (bool, string) {
		sent, failed := p.counts()
		sentB, failedB := pb.counts()
		return sent > 100 && sentB > 100, fmt.Sprint(sent, failed, sentB, failedB)
	})
	sent0, failed0 := p.counts()
	sentB0, failedB0 := pb.counts()

	api := s.process("kube-apiserver")
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
				if pr := s.process("speaker-" + n.Name); pr == nil || !pr.Alive() {
					if !slices.Contains(died, n.Name) {
						died = append(died, n.Name)
					}
				}
			}
		case <-s.ctx.Done():
			t.Fatal(s.ctx.Err())
		}
	}
	check.Stop()
	if _, err := l.StartProcess(lab.ProcessSpec{Name: "kube-apiserver", Netns: api.Netns, Argv: argv}); err != nil {
		t.Fatalf("restart API server: %v", err)
	}
	s.poll(60*time.Second, "API server back", func() (bool, string) {
		_, err := l.Kube().CoreV1().Services("default").Get(s.ctx, "steady", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	up := time.Now()
	t.Logf("API server back after %v", up.Sub(down).Round(time.Second))
	// A controller that lost its Lease exits (to restart cleanly); restart
	// it as a kubelet would.
	ctrlRestarted := false
	if pr := s.process("beacon-controller"); pr == nil || !pr.Alive() {
		_ = l.StopProcess("beacon-controller")
		s.startController()
		ctrlRestarted = true
	}
	sent1, failed1 := p.counts()
	sentB1, failedB1 := pb.counts()
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
	s.poll(90*time.Second, "an announcer for "+ip2, func() (bool, string) {
		a := s.announcers("after")
		return len(a) > 0, fmt.Sprint(a)
	})
	t.Logf("Service after the outage: announced %v after the API server returned", time.Since(up).Round(100*time.Millisecond))
	s.poll(90*time.Second, "HTTP via "+ip2+" after the outage", func() (bool, string) {
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
	s.poll(20*time.Second, "one announcer for steady", func() (bool, string) {
		a := s.announcers("steady")
		return len(a) == 1, fmt.Sprint(a)
	})
	p.finish()
	pb.finish()
	sent, failed := p.counts()
	sentB, failedB := pb.counts()
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
		t.Errorf("%d L2 requests failed during the API server outage, want 0; last failures: %q", failed1-failed0, p.errs)
	}
	if failedB1 != failedB0 {
		t.Errorf("%d BGP requests failed during the API server outage, want 0; last failures: %q", failedB1-failedB0, pb.errs)
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
	s.lanPool()
	ip := s.echoService("steady")
	var who string
	s.poll(30*time.Second, "one announcer answering", func() (bool, string) {
		a := s.announcers("steady")
		if len(a) == 1 && s.answerer(ip) == a[0] {
			who = a[0]
			return true, ""
		}
		return false, fmt.Sprint(a)
	})
	// BGP with BFD at the lab router's 300 ms x 3: a dead link leaves the
	// ECMP set in about a second.
	if err := s.bc.Create(s.ctx, client.BFDProfiles, &v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "chaos"},
		Spec: v1alpha1.BFDProfileSpec{ReceiveInterval: ptr.To(int32(300)), TransmitInterval: ptr.To(int32(300)), DetectMultiplier: ptr.To(int32(3))}}); err != nil {
		t.Fatal(err)
	}
	bgpIP := s.bgpService("steady-bgp", "chaos")
	type probe struct {
		name                 string
		p                    *prober
		worst, worstRecovery time.Duration
	}
	probes := []*probe{
		{name: "l2", p: startProber(s.ctx, l, net.JoinHostPort(ip, "80"))},
		{name: "bgp", p: startProberFrom(s.ctx, l, lab.ClientExt, net.JoinHostPort(bgpIP, "80"))},
	}
	s.poll(10*time.Second, "first replies", func() (bool, string) {
		for _, pr := range probes {
			if sent, _ := pr.p.counts(); sent <= 100 {
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
			s.poll(bound+10*time.Second, pr.name+" traffic after "+what, func() (bool, string) {
				p.mu.Lock()
				defer p.mu.Unlock()
				n := len(p.ok)
				quiet := len(p.bad) == 0 || time.Since(p.bad[len(p.bad)-1]) > 2*time.Second
				return n > 0 && time.Since(from) > 2*time.Second && p.ok[n-1].After(time.Now().Add(-50*time.Millisecond)) &&
					p.longestSince(time.Now().Add(-2*time.Second)) < 200*time.Millisecond && quiet, ""
			})
			gap := p.longestGap(from, time.Now())
			pr.worst = max(pr.worst, gap)
			// Recovery: from the fault to the last failed request (a
			// failure completes up to 1 s after it was sent); 0 when none
			// failed.
			p.mu.Lock()
			var recovery time.Duration
			failures := 0
			for _, b := range p.bad {
				if b.After(from) {
					failures++
					recovery = max(recovery, b.Sub(from))
				}
			}
			p.mu.Unlock()
			pr.worstRecovery = max(pr.worstRecovery, recovery)
			t.Logf("%s: %s: %d failed requests, last failure %v after the fault, longest gap between successes %v",
				what, pr.name, failures, recovery.Round(time.Millisecond), gap.Round(time.Millisecond))
			if failures > 0 {
				p.mu.Lock()
				t.Logf("%s: %s: last failures: %q", what, pr.name, p.errs)
				p.mu.Unlock()
			}
			if gap > bound || recovery > bound+time.Second {
				t.Errorf("%s: %s traffic not recovered within %v (gap %v, last failure after %v)", what, pr.name, bound, gap, recovery)
			}
		}
	}
	for round := range 3 {
		// Crash and restart the announcing speaker.
		at := time.Now()
		s.killSpeaker(who)
		next, _ := s.answeredBy(ip, bound, func(n string) bool { return n != who })
		measure(fmt.Sprintf("round %d: SIGKILL speaker on %s (now %s)", round, who, next), at)
		s.startSpeaker(who)
		// Wait until announcements settle (one announcer that answers).
		s.poll(30*time.Second, "settled", func() (bool, string) {
			a := s.announcers("steady")
			if len(a) == 1 && s.answerer(ip) == a[0] {
				who = a[0]
				return true, ""
			}
			return false, fmt.Sprint(a)
		})
		measure(fmt.Sprintf("round %d: speaker restarted", round), at)

		// Flap the announcer's LAN link.
		at = time.Now()
		if err := l.SetCable(s.ctx, who, false); err != nil {
			t.Fatal(err)
		}
		next, _ = s.answeredBy(ip, bound, func(n string) bool { return n != who })
		if err := l.SetCable(s.ctx, who, true); err != nil {
			t.Fatal(err)
		}
		measure(fmt.Sprintf("round %d: link of %s down and up (answered by %s)", round, who, next), at)
		s.poll(30*time.Second, "settled", func() (bool, string) {
			a := s.announcers("steady")
			if len(a) == 1 && s.answerer(ip) == a[0] {
				who = a[0]
				return true, ""
			}
			return false, fmt.Sprint(a)
		})
	}
	for _, pr := range probes {
		pr.p.finish()
		sent, failed := pr.p.counts()
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

// longestSince returns the longest gap between successes after from; the
// caller holds p.mu.
func (p *prober) longestSince(from time.Time) time.Duration {
	i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(from) })
	var longest time.Duration
	for k := max(i, 1); k < len(p.ok); k++ {
		longest = max(longest, p.ok[k].Sub(p.ok[k-1]))
	}
	if i < len(p.ok) && i > 0 {
		longest = max(longest, p.ok[i].Sub(from))
	}
	return longest
}
