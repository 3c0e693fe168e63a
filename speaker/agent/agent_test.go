package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/speaker/agent"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
	"github.com/beaconlb/beacon/speaker/l2"
	"github.com/beaconlb/beacon/speaker/plan"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// fakeLiveness: every listed node is alive.
type fakeLiveness struct {
	mu    sync.Mutex
	alive map[string]bool
	ch    chan struct{}
}

func (f *fakeLiveness) Alive(n string) bool                { f.mu.Lock(); defer f.mu.Unlock(); return f.alive[n] }
func (f *fakeLiveness) Settled() bool                      { return true }
func (f *fakeLiveness) Rejoining() bool                    { return false }
func (f *fakeLiveness) Changes() <-chan struct{}           { return f.ch }
func (f *fakeLiveness) SetPeers(map[string]netip.AddrPort) {}
func (f *fakeLiveness) Left(string) bool                   { return false }
func (f *fakeLiveness) set(n string, alive bool) {
	f.mu.Lock()
	f.alive[n] = alive
	f.mu.Unlock()
	f.ch <- struct{}{}
}

// fakeLinks records what each interface announces.
type fakeLinks struct {
	mu     sync.Mutex
	ips    map[string][]netip.Addr
	checks map[string][]netip.Addr
}

type fakeResponder struct {
	l     *fakeLinks
	iface string
}

func (r fakeResponder) SetAnnounced(ips []netip.Addr) {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	r.l.ips[r.iface] = slices.Clone(ips)
}

func (r fakeResponder) Reannounce() {}

func (r fakeResponder) Announce(ips, _ []netip.Addr) { r.SetAnnounced(ips) }

func (r fakeResponder) Conflicts() []l2.Conflict { return nil }

// Announced: the fake probes nothing, so it answers for all it was given.
func (r fakeResponder) Announced() []netip.Addr { return r.l.announced(r.iface) }

// Check and Checked: every check passes at once.
func (r fakeResponder) Check(ips []netip.Addr) {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	if r.l.checks == nil {
		r.l.checks = map[string][]netip.Addr{}
	}
	r.l.checks[r.iface] = slices.Clone(ips)
}

func (r fakeResponder) Checked() []netip.Addr {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	return slices.Clone(r.l.checks[r.iface])
}

func (l *fakeLinks) Responder(_ context.Context, iface string) (agent.Responder, error) {
	return fakeResponder{l, iface}, nil
}

// Interfaces: eth0 holds every address on its link.
func (l *fakeLinks) Interfaces() ([]plan.Link, error) {
	return []plan.Link{{Name: "eth0", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}}, nil
}
func (l *fakeLinks) Retain([]plan.Link) {}

func (l *fakeLinks) announced(iface string) []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ips[iface])
}

// fakeHandoff records the last hand-off routes applied.
type fakeHandoff struct {
	mu     sync.Mutex
	routes []handoff.Route
}

func (f *fakeHandoff) Apply(r []handoff.Route) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes = slices.Clone(r)
	return nil
}

func (f *fakeHandoff) last() []handoff.Route {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.routes)
}

// Three agents (one per node) against a real API server: exactly one
// announces the Service's address; when it dies another takes over; with
// externalTrafficPolicy Local the announcer is the endpoint's node.
func TestAgentsElectOneAnnouncer(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := e.Kube
	nodes := []string{"node1", "node2", "node3"}
	nodeIP := map[string]netip.Addr{}
	for i, n := range nodes {
		node, err := kube.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		nodeIP[n] = netip.AddrFrom4([4]byte{198, 51, 100, byte(11 + i)})
		node.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: nodeIP[n].String()}}
		if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.51.100.200-198.51.100.250"}
	if err := e.Beacon.Create(ctx, client.IPPools, pool); err != nil {
		t.Fatal(err)
	}
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	ad.Spec.IPPools = []string{"lan"}
	if err := e.Beacon.Create(ctx, client.L2Advertisements, ad); err != nil {
		t.Fatal(err)
	}
	svc, err := kube.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: []v1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The controller's job, done by hand here.
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "198.51.100.200"}}
	if _, err := kube.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	live := &fakeLiveness{alive: map[string]bool{"node1": true, "node2": true, "node3": true}, ch: make(chan struct{}, 16)}
	links := map[string]*fakeLinks{}
	handoffs := map[string]*fakeHandoff{}
	stop := map[string]func(){}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start := func(n string) {
		links[n] = &fakeLinks{ips: map[string][]netip.Addr{}}
		handoffs[n] = &fakeHandoff{}
		a := newAgent(t, agent.Config{
			Node: n, Clients: cli.Clients{Kube: kube, Beacon: e.Beacon}, Liveness: live, Links: links[n],
			Recorder: record.NewFakeRecorder(100), Log: logr.Discard(), MemberPort: 7946,
			Handoff: handoffs[n], HandoffWindow: time.Minute,
		})
		actx, acancel := context.WithCancel(ctx)
		done := make(chan struct{})
		wg.Go(func() { _ = a.Run(actx); close(done) })
		// A dead speaker's responders die with it.
		stop[n] = func() {
			acancel()
			<-done
			links[n].mu.Lock()
			links[n].ips = map[string][]netip.Addr{}
			links[n].mu.Unlock()
		}
	}
	for _, n := range nodes {
		start(n)
	}
	ip := netip.MustParseAddr("198.51.100.200")
	announcers := func() []string {
		var out []string
		for _, n := range nodes {
			if slices.Contains(links[n].announced("eth0"), ip) {
				out = append(out, n)
			}
		}
		return out
	}
	waitOne := func(what string, ok func(string) bool) string {
		t.Helper()
		var got []string
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			got = announcers()
			return len(got) == 1 && ok(got[0]), nil
		})
		if err != nil {
			t.Fatalf("%s: announcers %v", what, got)
		}
		return got[0]
	}
	first := waitOne("initial election", func(string) bool { return true })

	// The announcing node reports it, for kubectl get serviceannouncements.
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		var list v1alpha1.ServiceAnnouncementList
		if err := e.Beacon.List(ctx, "default", client.ServiceAnnouncements, &list); err != nil {
			return false, err
		}
		return len(list.Items) == 1 && list.Items[0].Node == first && list.Items[0].Service == "web" &&
			slices.Equal(list.Items[0].Addresses, []string{"198.51.100.200"}), nil
	})
	if err != nil {
		t.Fatalf("service announcement of %s: %v", first, err)
	}

	// Just started, the announcer hands unknown flows to the standby,
	// which may have held the address meanwhile; stopped, it hands off
	// nothing (flows handed to it must not bounce back).
	if r := handoffs[first].last(); len(r) != 1 || r[0].IP != ip {
		t.Errorf("%s, just started, hands off %v; want %v to its standby", first, r, ip)
	}
	stop[first]()
	if r := handoffs[first].last(); len(r) != 0 {
		t.Errorf("%s, stopped, still hands off %v", first, r)
	}
	live.set(first, false)
	for range nodes {
		live.ch <- struct{}{} // every agent reads the shared channel
	}
	second := waitOne("takeover", func(n string) bool { return n != first })
	t.Logf("announcer %s, after its death %s", first, second)
	// A node that died silently gets no hand-off: nothing could serve it.
	// (A hand-off to the third node can exist when the second saw it own
	// the address earlier, while agents were starting.)
	for _, r := range handoffs[second].last() {
		if r.Via == nodeIP[first] {
			t.Errorf("%s handed off %v to %s, which died", second, r, first)
		}
	}
	start(first)
	live.set(first, true)
	for range nodes {
		live.ch <- struct{}{}
	}
	waitOne("return", func(n string) bool { return n == first })
	// The returning node hands unknown mid-stream flows back to the node
	// that held the address meanwhile (its standby), before announcing.
	want := []handoff.Route{{IP: ip, Via: nodeIP[second]}}
	if r := handoffs[first].last(); !slices.Equal(r, want) {
		t.Errorf("%s, back, hands off %v; want %v", first, r, want)
	}

	// Local policy: only the node with a ready endpoint announces.
	target := "node1"
	if first == "node1" {
		target = "node2"
	}
	svc, _ = kube.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	if _, err := kube.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = kube.DiscoveryV1().EndpointSlices("default").Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses: []string{"198.18.1.2"}, NodeName: ptr.To(target),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitOne("local endpoint's node", func(n string) bool { return n == target })
}

// An L2Advertisement the speakers cannot use gets a Warning Event naming the
// problem (it is ignored, as before) that `kubectl describe` shows on the
// cluster-scoped object, and a speaker reports ready only once it has
// applied an announcement plan.
func TestAgentWarnsAboutInvalidL2Advertisement(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "bad-selector"}}
	ad.Spec.IPPoolSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Near", Values: []string{"x"}}}}
	if err := e.Beacon.Create(ctx, client.L2Advertisements, ad); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Beacon.Delete(context.Background(), client.L2Advertisements, ad.Name) }()
	rec, stopRec, err := (&cli.Clients{Config: e.Config}).Recorder(ctx, v1.EventSource{Component: "beacon-speaker"})
	if err != nil {
		t.Fatal(err)
	}
	defer stopRec()
	a := newAgent(t, agent.Config{
		Node: "warn-node", Clients: cli.Clients{Kube: e.Kube, Beacon: e.Beacon},
		Liveness: &fakeLiveness{alive: map[string]bool{}, ch: make(chan struct{}, 1)},
		Links:    &fakeLinks{ips: map[string][]netip.Addr{}}, Recorder: rec, Log: logr.Discard(), MemberPort: 7946,
	})
	if a.Ready() {
		t.Fatal("ready before running")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = a.Run(ctx) })
	waitDescribed(ctx, t, e, "l2advertisements.beaconlb.io", ad.Name,
		`Warning\s+InvalidL2Advertisement\s.*node warn-node: invalid, ignored: ipPoolSelector: .*Near`, a.Ready)
}

// waitDescribed polls `kubectl describe resource name` until the Events
// section of its output matches event and ready (if set) holds.
func waitDescribed(ctx context.Context, t *testing.T, e *testenv.Env, resource, name, event string, ready func() bool) {
	t.Helper()
	re := regexp.MustCompile(event)
	var described string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", e.Kubeconfig, "describe", resource, name).CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("kubectl describe: %w: %s", err, out)
		}
		described = string(out)
		i := strings.Index(described, "\nEvents:")
		return (ready == nil || ready()) && i >= 0 && re.MatchString(described[i:]), nil
	})
	if err != nil {
		t.Fatalf("kubectl describe %s %s: no Event matching %s (ready %v): %v\n%s", resource, name, event, ready == nil || ready(), err, described)
	}
}

// A healed partition: the announcer kept its address while cut off from
// its standby, whose side elected the standby meanwhile. When the standby
// is heard again, the announcer hands the unknown flows of the address
// (those clients opened through the standby) to it, with a new window, as
// after a takeover.
func TestAgentHandsOffToRejoinedStandby(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kube := e.Kube
	ip := netip.MustParseAddr("203.0.113.240")
	nodeIP := map[string]netip.Addr{"heal-a": netip.MustParseAddr("198.51.100.31"), "heal-b": netip.MustParseAddr("198.51.100.32")}
	l2Site(ctx, t, e, "heal", "203.0.113.240/31", ip, nodeIP)

	owner, _ := election.Announcer(ip, []election.Candidate{{Name: "heal-a", Eligible: true}, {Name: "heal-b", Eligible: true}})
	standby := "heal-a"
	if owner == standby {
		standby = "heal-b"
	}
	live := &fakeLiveness{alive: map[string]bool{"heal-a": true, "heal-b": true}, ch: make(chan struct{}, 16)}
	links, ho := &fakeLinks{ips: map[string][]netip.Addr{}}, &fakeHandoff{}
	a := newAgent(t, agent.Config{
		Node: owner, Clients: cli.Clients{Kube: kube, Beacon: e.Beacon}, Liveness: live, Links: links,
		Recorder: record.NewFakeRecorder(100), Log: logr.Discard(), MemberPort: 7946,
		Handoff: ho, HandoffWindow: 300 * time.Millisecond,
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = a.Run(ctx) })
	poll := func(what string, cond func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
			t.Fatalf("%s: %v (hand-offs %v, announced %v)", what, err, ho.last(), links.announced("eth0"))
		}
	}
	poll("announced by its owner "+owner, func() bool { return slices.Contains(links.announced("eth0"), ip) })
	// The start-up hand-off to the standby ends with its short window (the
	// agent re-syncs every 5 s).
	poll("start-up hand-off over", func() bool { return len(ho.last()) == 0 })

	live.set(standby, false) // cut off: the owner keeps the address
	poll("a plan without the standby", func() bool {
		for _, d := range a.Plan() {
			if d.IP == ip {
				return d.Node == owner && d.Standby != standby
			}
		}
		return false
	})
	live.set(standby, true) // healed
	want := []handoff.Route{{IP: ip, Via: nodeIP[standby]}}
	poll("hand-off to the rejoined standby", func() bool { return slices.Equal(ho.last(), want) })
}

// TestAgentRecordsWithdrawn: against a real API server, a node that stops
// announcing an address records a Withdrawn Event on the Service naming the
// node, the address and why: it lost the election to a node that came
// back, it was excluded from load balancers, or the Service stopped being a
// LoadBalancer.
func TestAgentRecordsWithdrawn(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kube := e.Kube
	ip := netip.MustParseAddr("203.0.113.244")
	names := []string{"wd-1", "wd-2", "wd-3"}
	nodeIP := map[string]netip.Addr{}
	for i, n := range names {
		nodeIP[n] = netip.AddrFrom4([4]byte{198, 51, 100, byte(41 + i)})
	}
	l2Site(ctx, t, e, "wd", "203.0.113.244/32", ip, nodeIP)

	// The agent runs as the second choice for the address; the first is
	// dead at the start, so the agent announces.
	var cands []election.Candidate
	for _, n := range names {
		cands = append(cands, election.Candidate{Name: n, Eligible: true})
	}
	rank := election.Rank(ip, cands)
	first, self := rank[0], rank[1]
	live := &fakeLiveness{alive: map[string]bool{rank[0]: false, rank[1]: true, rank[2]: true}, ch: make(chan struct{}, 16)}
	links := &fakeLinks{ips: map[string][]netip.Addr{}}
	rec := record.NewFakeRecorder(100)
	a := newAgent(t, agent.Config{
		Node: self, Clients: cli.Clients{Kube: kube, Beacon: e.Beacon}, Liveness: live, Links: links,
		Recorder: rec, Log: logr.Discard(), MemberPort: 7946,
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = a.Run(ctx) })
	var events []string
	waitEvent := func(want string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
			for {
				select {
				case ev := <-rec.Events:
					events = append(events, ev)
					if ev == want {
						return true, nil
					}
					continue
				default:
				}
				return false, nil
			}
		})
		if err != nil {
			t.Fatalf("no Event %q; got %q", want, events)
		}
	}
	announcing := "Normal Announcing Announcing 203.0.113.244 from node " + self + " via L2 (interface eth0)"
	withdrawn := "Normal Withdrawn Withdrawn 203.0.113.244 from node " + self + " via L2: "
	waitEvent(announcing)

	live.set(first, true)
	waitEvent(withdrawn + "node " + first + " announces it now (elected among the eligible nodes)")
	if slices.Contains(links.announced("eth0"), ip) {
		t.Errorf("%s still answers for %s after Withdrawn", self, ip)
	}

	live.set(first, false)
	waitEvent(announcing)
	node, err := kube.CoreV1().Nodes().Get(ctx, self, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Labels = map[string]string{election.ExcludeLabel: ""}
	if _, err := kube.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(withdrawn + "the node is labelled " + election.ExcludeLabel)

	node, err = kube.CoreV1().Nodes().Get(ctx, self, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Labels = nil
	if _, err := kube.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(announcing)
	svc, err := kube.CoreV1().Services("default").Get(ctx, "wd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Spec.Type = v1.ServiceTypeClusterIP
	svc.Spec.Ports[0].NodePort = 0
	if _, err := kube.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEvent(withdrawn + "the Service no longer has this address (or is no longer a LoadBalancer Service Beacon handles)")
}

// l2Site creates on e's API server a Node per entry of nodes (with that
// InternalIP), an IPPool holding block and an L2Advertisement of it, both
// called name, and a LoadBalancer Service name in default whose status
// holds ip. All of it is deleted when the test ends.
func l2Site(ctx context.Context, t *testing.T, e *testenv.Env, name, block string, ip netip.Addr, nodes map[string]netip.Addr, adOpts ...func(*v1alpha1.L2Advertisement)) {
	t.Helper()
	kube := e.Kube
	for n, addr := range nodes {
		node, err := kube.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = kube.CoreV1().Nodes().Delete(context.Background(), n, metav1.DeleteOptions{}) })
		node.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: addr.String()}}
		if _, err := kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(block)}
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ad.Spec.IPPools = []string{name}
	for _, o := range adOpts {
		o(ad)
	}
	for _, c := range []struct {
		res string
		obj runtime.Object
	}{{client.IPPools, pool}, {client.L2Advertisements, ad}} {
		if err := e.Beacon.Create(ctx, c.res, c.obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Beacon.Delete(context.Background(), c.res, name) })
	}
	svc, err := kube.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: []v1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip.String()}}
	if _, err := kube.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func newAgent(t *testing.T, cfg agent.Config) *agent.Agent {
	t.Helper()
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
