package agent_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/speaker/agent"
	"github.com/beaconlb/beacon/speaker/plan"
)

// requestCounter counts the requests that pass through it by verb and
// resource ("create serviceannouncements", "watch services", ...).
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		c.mu.Lock()
		c.n[requestKind(r)]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.n))
	for k, v := range c.n {
		out[k] = v
	}
	return out
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// requestKind is "verb resource": the resource is the path segment after
// the version or namespace, the verb from the method (a GET with watch=true
// is a watch; a GET of a collection is a list).
func requestKind(r *http.Request) string {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:]
	}
	if len(segs) > 2 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	res := ""
	if len(segs) > 0 {
		res = segs[0]
	}
	verb := strings.ToLower(r.Method)
	switch r.Method {
	case http.MethodGet:
		verb = "get"
		if w := r.URL.Query().Get("watch"); w == "true" || w == "1" {
			verb = "watch"
		} else if len(segs) == 1 {
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	}
	return verb + " " + res
}

// writes sums the requests that are not reads (get, list, watch).
func writes(m map[string]int) (n int, kinds []string) {
	for k, v := range m {
		if v == 0 || strings.HasPrefix(k, "get ") || strings.HasPrefix(k, "list ") || strings.HasPrefix(k, "watch ") {
			continue
		}
		n += v
		kinds = append(kinds, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(kinds)
	return n, kinds
}

func sub(after, before map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// apiLoadNodes is how many speakers TestAgentsAPILoadBGP runs.
const apiLoadNodes = 8

// TestAgentsAPILoadBGP: eight speakers in BGP mode against a real API
// server, every request of each counted by its client. At steady state
// they send none; one new Service costs BGPReporters ServiceAnnouncements
// and as many Events in the whole cluster, not one of each per node. The
// baseline, measured first, has every announcing node report. The
// figures are printed per node and projected to 1,000 nodes (make
// bench-scale prints them too).
func TestAgentsAPILoadBGP(t *testing.T) {
	e := testenv.Need(t, env)
	var out strings.Builder
	t.Run("baseline", func(t *testing.T) { out.WriteString(apiLoadBGP(t, e, "base", apiLoadNodes, "198.18.203")) })
	t.Run("reporters", func(t *testing.T) { out.WriteString(apiLoadBGP(t, e, "load", 0, "198.18.200")) })
	if os.Getenv("BEACON_BENCH") != "" {
		fmt.Print(out.String())
	} else {
		t.Log("\n" + out.String())
	}
}

// apiLoadBGP runs apiLoadNodes speakers, named run1..., announcing
// Services from block.0/24 with reporters per address (0: the default),
// and returns what it measured, printed.
func apiLoadBGP(t *testing.T, e *testenv.Env, run string, reporters int, block string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const (
		nodes    = apiLoadNodes
		services = 24
	)
	k := cmp.Or(reporters, plan.BGPReporters)
	class := "beaconlb.io/apiload-" + run // other tests' Services stay out
	ns := "apiload-" + run
	steadyWindow := 10 * time.Second
	if os.Getenv("BEACON_BENCH") != "" {
		steadyWindow = time.Minute
	}
	// Longer than the counting windows, short enough to see the counts
	// arrive.
	prefixesRefresh := steadyWindow + 20*time.Second
	kube := e.Kube
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	var names []string
	for i := range nodes {
		name := fmt.Sprintf("%s%d", run, i+1)
		names = append(names, name)
		n, err := kube.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"apiload": run}}}, metav1.CreateOptions{})
		must(err)
		n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: fmt.Sprintf("198.51.100.%d", 101+i)}}
		_, err = kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		must(err)
		t.Cleanup(func() { _ = kube.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(block + ".0/24")}
	must(e.Beacon.Create(ctx, client.IPPools, pool))
	must(e.Beacon.Create(ctx, client.BGPPeers, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: ns}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1",
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"apiload": run}},
	}}))
	must(e.Beacon.Create(ctx, client.BGPAdvertisements, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: ns},
		Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{ns}}}))
	t.Cleanup(func() {
		// The speakers stop before they could delete their reports.
		var states v1alpha1.BGPSessionStateList
		if err := e.Beacon.List(context.Background(), "", client.BGPSessionStates, &states); err == nil {
			for _, st := range states.Items {
				if slices.Contains(names, st.Node) {
					_ = e.Beacon.Delete(context.Background(), client.BGPSessionStates, st.Name)
				}
			}
		}
		_ = e.Beacon.Delete(context.Background(), client.BGPAdvertisements, ns)
		_ = e.Beacon.Delete(context.Background(), client.BGPPeers, ns)
		_ = e.Beacon.Delete(context.Background(), client.IPPools, ns)
	})
	newService := func(i int) {
		t.Helper()
		svc, err := kube.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("s%02d", i)},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, LoadBalancerClass: ptrTo(class),
				Ports: []v1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		must(err)
		// The controller's job, done by hand here.
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("%s.%d", block, 10+i)}}
		_, err = kube.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
		must(err)
	}
	for i := range services {
		newService(i)
	}

	live := &fakeLiveness{alive: map[string]bool{}, ch: make(chan struct{})}
	for _, n := range names {
		live.alive[n] = true
	}
	counters := map[string]*requestCounter{}
	var wg sync.WaitGroup
	defer wg.Wait()
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	for _, n := range names {
		c := &requestCounter{n: map[string]int{}}
		counters[n] = c
		cfg := rest.CopyConfig(e.Config)
		cfg.WrapTransport = c.wrap
		// The speaker's client: client-go's default rate limit, as in
		// production.
		cs, err := cli.NewClients(cfg, "", "beacon-speaker/"+n, 0, 0)
		must(err)
		rec, stopEvents, err := cs.Recorder(actx, v1.EventSource{Component: "beacon-speaker", Host: n})
		must(err)
		a := newAgent(t, agent.Config{
			Node: n, Clients: *cs, Recorder: rec, Log: logr.Discard(), MemberPort: 7946, LoadBalancerClass: class,
			Liveness: live, Links: &fakeLinks{ips: map[string][]netip.Addr{}}, BGP: &fakeBGP{ch: make(chan struct{}, 1)},
			PrefixesRefresh: prefixesRefresh, BGPReporters: reporters,
		})
		wg.Go(func() { _ = a.Run(actx); stopEvents() })
	}

	reporting := func() map[string][]string {
		var list v1alpha1.ServiceAnnouncementList
		if err := e.Beacon.List(ctx, ns, client.ServiceAnnouncements, &list); err != nil {
			t.Fatal(err)
		}
		out := map[string][]string{}
		for _, sa := range list.Items {
			if sa.Via == v1alpha1.ViaBGP {
				out[sa.Service] = append(out[sa.Service], sa.Node)
			}
		}
		return out
	}
	settled := func(n int) func() (bool, string) {
		return func() (bool, string) {
			r := reporting()
			ok := len(r) == n
			for _, nodes := range r {
				ok = ok && len(nodes) == k
			}
			return ok, fmt.Sprint(r)
		}
	}
	total := func() map[string]int {
		out := map[string]int{}
		for _, c := range counters {
			for k, v := range c.snapshot() {
				out[k] += v
			}
		}
		return out
	}
	quiet := func() func() (bool, string) {
		last, at := -1, time.Now()
		return func() (bool, string) {
			n, _ := writes(total())
			if n != last {
				last, at = n, time.Now()
			}
			return time.Since(at) >= 3*time.Second, fmt.Sprintf("%d writes, the last %v ago", n, time.Since(at).Round(time.Second))
		}
	}
	prefixes := func(want int) func() (bool, string) {
		return func() (bool, string) {
			var states v1alpha1.BGPSessionStateList
			if err := e.Beacon.List(ctx, "", client.BGPSessionStates, &states); err != nil {
				return false, err.Error()
			}
			var counts []string
			ok := true
			for _, st := range states.Items {
				if slices.Contains(names, st.Node) {
					counts = append(counts, fmt.Sprintf("%s %d", st.Node, st.Prefixes))
					ok = ok && st.Prefixes == int32(want)
				}
			}
			return ok && len(counts) == nodes, strings.Join(counts, ", ")
		}
	}
	testenv.Poll(t, ctx, 200*time.Millisecond, time.Minute, "the reports of every Service", settled(services))
	// Counts that went up in steps at start are written within
	// PrefixesRefresh: wait for them, so that the steady window sees none.
	testenv.Poll(t, ctx, time.Second, prefixesRefresh+30*time.Second, "prefix counts of every session", prefixes(services))
	testenv.Poll(t, ctx, 200*time.Millisecond, time.Minute, "speakers quiet", quiet())

	snap := func() map[string]map[string]int {
		out := map[string]map[string]int{}
		for n, c := range counters {
			out[n] = c.snapshot()
		}
		return out
	}
	before := snap()
	start := time.Now()
	time.Sleep(steadyWindow) // a counting window, not synchronisation
	steady := snap()
	mins := time.Since(start).Minutes()

	newService(services)
	testenv.Poll(t, ctx, 200*time.Millisecond, time.Minute, "the reports of the new Service", settled(services+1))
	testenv.Poll(t, ctx, 200*time.Millisecond, time.Minute, "speakers quiet after the change", quiet())
	change := snap()
	// The prefix counts, not written with the change, arrive within
	// PrefixesRefresh.
	testenv.Poll(t, ctx, time.Second, prefixesRefresh+30*time.Second, "prefix counts of every session", prefixes(services+1))
	acancel()

	var b strings.Builder
	what := fmt.Sprintf("%d reporters per address", k)
	if reporters != 0 {
		what = fmt.Sprintf("baseline: every announcing node reports (%d reporters)", k)
	}
	fmt.Fprintf(&b, "API load (BGP, %d speakers in one process against kube-apiserver, %d Services, %s; steady window %v)\n",
		nodes, services, what, steadyWindow)
	fmt.Fprintf(&b, "  %-6s %15s %14s   %s\n", "node", "watches opened", "req/min steady", "one new Service: requests")
	var sumWatch, sumSteady float64
	var changeWrites int
	announcements, events := 0, 0
	for _, n := range names {
		w := 0 // watches opened; each informer holds one open
		for k, v := range before[n] {
			if strings.HasPrefix(k, "watch ") {
				w += v
			}
		}
		st := sub(steady[n], before[n])
		stN := 0
		for _, v := range st {
			stN += v
		}
		ch := sub(change[n], steady[n])
		chW, kinds := writes(ch)
		changeWrites += chW
		announcements += ch["create serviceannouncements"]
		events += ch["create events"]
		if stW, k := writes(st); stW != 0 {
			t.Errorf("%s wrote at steady state: %v", n, k)
		}
		fmt.Fprintf(&b, "  %-6s %15d %14.1f   %d (%s)\n", n, w, float64(stN)/mins, chW, strings.Join(kinds, ", "))
		sumWatch += float64(w)
		sumSteady += float64(stN) / mins
	}
	if reporters == 0 {
		fmt.Fprintf(&b, "  1,000 nodes: %.0f watches opened, %.0f req/min steady (per-node mean × 1,000); one new Service: %d writes in the whole cluster (%d ServiceAnnouncements, %d Events), the same at any size\n",
			sumWatch/nodes*1000, sumSteady/nodes*1000, changeWrites, announcements, events)
	} else {
		fmt.Fprintf(&b, "  1,000 nodes: one new Service: %.0f writes in the whole cluster (per-node mean × 1,000)\n", float64(changeWrites)/nodes*1000)
	}
	var opened []string
	for k, v := range before[names[0]] {
		if strings.HasPrefix(k, "watch ") {
			opened = append(opened, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "watch "), v))
		}
	}
	slices.Sort(opened)
	fmt.Fprintf(&b, "  watches opened by %s: %s\n", names[0], strings.Join(opened, ", "))
	if announcements != k {
		t.Errorf("one new Service: %d ServiceAnnouncements created, want %d", announcements, k)
	}
	if changeWrites > 2*k {
		t.Errorf("one new Service: %d writes, want at most %d (a report and an Event per reporter)", changeWrites, 2*k)
	}
	return b.String()
}

// TestAgentStopsWithPendingReports: a speaker that announces many
// addresses at once holds far more reports and Events than its client's
// rate limit lets out for minutes; stopping it must not wait for them.
func TestAgentStopsWithPendingReports(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const (
		services = 300 // a minute of writes at 5 requests/s
		class    = "beaconlb.io/pending"
		ns       = "pending"
		node     = "pending1"
	)
	kube := e.Kube
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	l2Site(ctx, t, e, "pending", "198.18.201.0/24", netip.MustParseAddr("198.18.201.1"), map[string]netip.Addr{node: netip.MustParseAddr("198.51.100.121")})
	for i := range services {
		svc, err := kube.CoreV1().Services(ns).Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%03d", i)},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, LoadBalancerClass: ptrTo(class),
				Ports: []v1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		must(err)
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: fmt.Sprintf("198.18.201.%d", 2+i%250)}}
		if i >= 250 {
			svc.Status.LoadBalancer.Ingress[0].IP = fmt.Sprintf("198.18.202.%d", i-250)
		}
		_, err = kube.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{})
		must(err)
	}
	c := &requestCounter{n: map[string]int{}}
	cfg := rest.CopyConfig(e.Config)
	cfg.WrapTransport = c.wrap
	cs, err := cli.NewClients(cfg, "", "beacon-speaker/"+node, 0, 0)
	must(err)
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	rec, stopEvents, err := cs.Recorder(actx, v1.EventSource{Component: "beacon-speaker", Host: node})
	must(err)
	links := &fakeLinks{ips: map[string][]netip.Addr{}}
	a := newAgent(t, agent.Config{
		Node: node, Clients: *cs, Recorder: rec, Log: logr.Discard(), MemberPort: 7946, LoadBalancerClass: class,
		Liveness: &fakeLiveness{alive: map[string]bool{}, ch: make(chan struct{})}, Links: links,
	})
	done := make(chan struct{})
	var ran, stopped time.Time
	go func() { _ = a.Run(actx); ran = time.Now(); stopEvents(); stopped = time.Now(); close(done) }()
	testenv.Poll(t, ctx, 100*time.Millisecond, time.Minute, "addresses announced and reports being written", func() (bool, string) {
		n := c.snapshot()["create serviceannouncements"]
		return len(links.announced("eth0")) >= services/2 && n >= 5, fmt.Sprintf("%d announced, %d reports", len(links.announced("eth0")), n)
	})
	acancel()
	cancelled := time.Now()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatalf("the speaker did not stop within 3 s with reports pending (%v)", c.snapshot())
	}
	t.Logf("stopped with %d of %d reports and %d Events written: Run returned after %v, the Event recorder %v later",
		c.snapshot()["create serviceannouncements"], services, c.snapshot()["create events"], ran.Sub(cancelled), stopped.Sub(ran))
}
