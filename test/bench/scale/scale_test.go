package scale

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

const (
	benchNS   = "bench"
	endpoints = 5
	// apiServices is the size of the API-load phase: small enough that the
	// speakers' reports settle (the speaker's client allows 5 writes/s).
	apiServices = 100
	// poolRange holds more than 10,000 addresses outside every lab network
	// (announced on the LAN interface by name).
	poolRange = "198.18.192.0-198.18.231.255"
)

// size is the number of Services (default 10,000; SCALE_SERVICES for a
// quicker run).
func size(t *testing.T) int {
	n := 10000
	if s := os.Getenv("SCALE_SERVICES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= apiServices || v > 10240 {
			t.Fatalf("SCALE_SERVICES=%q: want %d < n ≤ 10240", s, apiServices)
		}
		n = v
	}
	return n
}

// window is the steady-state counting window (default 60 s; SCALE_WINDOW).
func window(t *testing.T) time.Duration {
	if s := os.Getenv("SCALE_WINDOW"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 10*time.Second {
			t.Fatalf("SCALE_WINDOW=%q: want a duration ≥ 10s", s)
		}
		return d
	}
	return time.Minute
}

type bench struct {
	t   *testing.T
	ctx context.Context
	l   *lab.Lab
	cs  kubernetes.Interface
	bc  *client.Client
	bin string
	kp  string
	out strings.Builder // every section so far
}

func TestBenchScale(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "scale" {
		t.Skip("runs with BEACON_BENCH=scale (make bench-scale): it takes many minutes and the machine's one lab")
	}
	kubeProxy := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-proxy")
	if _, err := os.Stat(kubeProxy); err != nil {
		t.Fatalf("kube-proxy is not built: run WITH_KUBE_PROXY=1 hack/testbin.sh (%v)", err)
	}
	n, win := size(t), window(t)
	b := newBench(t, 80*time.Minute)
	b.kp = kubeProxy
	b.emit(fmt.Sprintf("\nbench-scale (%s; lab: 2 nodes, API server kube-apiserver v1.36.3)\n", time.Now().UTC().Format("2006-01-02")))

	b.apiLoad(win)
	start := time.Now()
	b.createServices(apiServices, n)
	t.Logf("%d Services × %d endpoints in the API server (%v)", n, endpoints, time.Since(start).Round(time.Second))
	b.memoryFull(n)
	b.memoryAnnounce(n)
	b.emit("goals: speaker (full) / kube-proxy RSS ≤ 1.0; speaker (external, off) ≤ 60 MiB at 10,000 addresses\n")
	t.Log(b.out.String())
}

// emit prints a finished section at once (a later failure keeps it) and
// keeps it for the summary.
func (b *bench) emit(section string) {
	fmt.Print(section)
	b.out.WriteString(section)
}

// ---- API load ----

// apiLoad runs both speakers through the counting proxy with apiServices
// announced Services, counts a steady window and one Service change.
func (b *bench) apiLoad(win time.Duration) {
	t := b.t
	b.createServices(0, apiServices)
	b.poolAndAdvertisement()
	b.startController()
	b.waitIngress(apiServices)

	var ln net.Listener
	host := b.l.Topology().Host.IPv4
	if err := b.l.InNetns(lab.Host, func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(host.String(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	p, err := startProxy(ln, b.l.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	kc, err := p.kubeconfig(b.l.StateDir())
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{"node1", "node2"}
	for _, node := range nodes {
		b.startSpeaker(node, "external", kc)
	}
	// Settled: every Service reported by its announcer.
	testenv.Poll(t, b.ctx, time.Second, 5*time.Minute, "announcement reports", func() (bool, string) {
		got := b.reports()
		return got >= apiServices, fmt.Sprintf("%d of %d", got, apiServices)
	})
	settled := testenv.Poll(t, b.ctx, time.Second, 2*time.Minute, "speakers quiet", b.quiet(p, 5*time.Second))
	t.Logf("speakers quiet after %v more", settled)

	before := p.snapshot("beacon-speaker/")
	start := time.Now()
	time.Sleep(win) // a counting window, not synchronisation
	steady := diff(p.snapshot("beacon-speaker/"), before)
	mins := time.Since(start).Minutes()

	// One change: a new LoadBalancer Service with its endpoints.
	before = p.snapshot("beacon-speaker/")
	start = time.Now()
	b.createServices(10239, 10240) // a name no other phase uses
	testenv.Poll(t, b.ctx, 200*time.Millisecond, time.Minute, "report of the new Service", func() (bool, string) {
		got := b.reports()
		return got >= apiServices+1, fmt.Sprint(got)
	})
	testenv.Poll(t, b.ctx, time.Second, time.Minute, "speakers quiet after the change", b.quiet(p, 5*time.Second))
	change := diff(p.snapshot("beacon-speaker/"), before)
	changeMins := time.Since(start).Minutes()
	for _, node := range nodes {
		b.stop("speaker-" + node)
	}
	b.stop("beacon-controller")

	w := &strings.Builder{}
	defer func() { b.emit(w.String()) }()
	fmt.Fprintf(w, "API load (L2, %d Services announced, 2 speakers through a counting proxy; steady window %v)\n", apiServices, win)
	fmt.Fprintf(w, "  %-14s %8s %14s %14s %22s %22s\n", "speaker", "watches", "req/min steady", "watch KiB/min", "one change: requests", "one change: watch KiB")
	var sumReq, sumWatch float64
	var sumChange int
	for _, node := range nodes {
		a := "beacon-speaker/" + node
		s, c := steady[a], change[a]
		// Requests of the change window beyond the steady rate.
		extra := c.Requests - int(float64(s.Requests)/mins*changeMins+0.5)
		fmt.Fprintf(w, "  %-14s %8d %14.1f %14.1f %22s %22.1f\n", node, before[a].OpenWatch,
			float64(s.Requests)/mins, float64(s.WatchBytes)/1024/mins, fmt.Sprintf("%d (%s)", max(extra, 0), verbs(c.ByVerb)), float64(c.WatchBytes)/1024)
		sumReq += float64(s.Requests) / mins
		sumWatch += float64(before[a].OpenWatch)
		sumChange += max(extra, 0)
	}
	perNode := sumReq / float64(len(nodes))
	fmt.Fprintf(w, "  1,000 nodes (per-node figures × 1,000; no speaker request names another node): %.0f watches, %.0f req/min steady\n",
		sumWatch/float64(len(nodes))*1000, perNode*1000)
	fmt.Fprintf(w, "  one L2 Service change, whole cluster: %d requests from 2 nodes (the announcer's report and Event); every node receives the watch events\n", sumChange)
}

// quiet holds once no speaker request arrived for d.
func (b *bench) quiet(p *countingProxy, d time.Duration) func() (bool, string) {
	last, lastAt := -1, time.Now()
	return func() (bool, string) {
		total := 0
		for _, c := range p.snapshot("beacon-speaker/") {
			total += c.Requests
		}
		if total != last {
			last, lastAt = total, time.Now()
		}
		return time.Since(lastAt) >= d, fmt.Sprintf("%d requests, last %v ago", total, time.Since(lastAt).Round(time.Second))
	}
}

func diff(after, before map[string]counts) map[string]counts {
	out := map[string]counts{}
	for a, c := range after {
		p := before[a]
		d := counts{Requests: c.Requests - p.Requests, OpenWatch: c.OpenWatch, WatchBytes: c.WatchBytes - p.WatchBytes, ByVerb: map[string]int{}}
		for k, v := range c.ByVerb {
			if v-p.ByVerb[k] != 0 {
				d.ByVerb[k] = v - p.ByVerb[k]
			}
		}
		out[a] = d
	}
	return out
}

func verbs(m map[string]int) string {
	var parts []string
	for _, k := range []string{"watch", "list", "get", "create", "update", "patch", "delete"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (b *bench) reports() int {
	var list v1alpha1.ServiceAnnouncementList
	if err := b.bc.List(b.ctx, benchNS, client.ServiceAnnouncements, &list); err != nil {
		return -1
	}
	return len(list.Items)
}

// ---- memory ----

// memoryFull compares beacon-speaker --dataplane=full in node1 with
// kube-proxy (nftables) in node2, both programmed with every Service.
func (b *bench) memoryFull(n int) {
	t := b.t
	sp := b.startSpeaker("node1", "full", b.l.Kubeconfig())
	kp, err := b.l.StartProcess(lab.ProcessSpec{Name: "kube-proxy", Netns: "node2", Argv: []string{
		b.kp, "--kubeconfig", b.l.Kubeconfig(), "--proxy-mode=nftables", "--hostname-override=node2",
		"--metrics-bind-address=198.51.100.12:10249", "--healthz-bind-address=198.51.100.12:10256",
		"--cluster-cidr=198.18.0.0/16", "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
		"--oom-score-adj=0",
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop("kube-proxy")
	bd := testenv.Poll(t, b.ctx, time.Second, 15*time.Minute, "beacon full sync", b.metricAtLeast("node1", "http://198.51.100.11:9473/metrics",
		`beacon_nodeport_sync_duration_seconds_count{kind="full"}`, 1))
	kd := testenv.Poll(t, b.ctx, time.Second, 15*time.Minute, "kube-proxy full sync", b.metricAtLeast("node2", "http://198.51.100.12:10249/metrics",
		`kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"}`, 1))
	t.Logf("programmed: beacon after %v, kube-proxy after %v more", bd, kd)
	m := sampleRSS(t, b.ctx, 20*time.Second, sp.Pid, kp.Pid)
	bm, km := m[0], m[1]
	heap := b.heapInuse("node1")
	b.stop("speaker-node1")
	w := &strings.Builder{}
	defer func() { b.emit(w.String()) }()
	fmt.Fprintf(w, "memory, %d Services × %d endpoints (RSS MiB: now / max over 20 s / peak (max RssAnon); Go heap in use)\n", n, endpoints)
	fmt.Fprintf(w, "  %-44s %s  %s\n", "beacon-speaker --dataplane=full", bm, heap)
	fmt.Fprintf(w, "  %-44s %s\n", "kube-proxy v1.36.3 --proxy-mode=nftables", km)
	fmt.Fprintf(w, "  %-44s %.2f (max over 20 s; goal ≤ 1.0); anon %.2f\n", "ratio speaker / kube-proxy", bm.max/km.max, bm.anon/km.anon)
	if om, oheap, ok := b.baseline("full", "beacon full sync", "http://198.51.100.11:9473/metrics",
		`beacon_nodeport_sync_duration_seconds_count{kind="full"}`, 1); ok {
		fmt.Fprintf(w, "  %-44s %s  %s\n", "beacon-speaker --dataplane=full, baseline", om, oheap)
		fmt.Fprintf(w, "  %-44s %.2f (max over 20 s), anon %.2f; baseline / kube-proxy %.2f\n", "ratio speaker / baseline", bm.max/om.max, bm.anon/om.anon, om.max/km.max)
	}
}

// baseline runs BEACON_SPEAKER_BASELINE, another speaker build (say, of
// an older commit), in node1 with the given dataplane mode until series
// reaches want, and measures it the same way, for the effect of a change.
func (b *bench) baseline(mode, what, url, series string, want float64) (rss, string, bool) {
	other := os.Getenv("BEACON_SPEAKER_BASELINE")
	if other == "" {
		return rss{}, "", false
	}
	t := b.t
	p, err := b.l.StartProcess(lab.ProcessSpec{Name: "speaker-node1", Netns: "node1", Argv: []string{
		other, "--kubeconfig", b.l.Kubeconfig(), "--node-name", "node1", "--dataplane=" + mode, "--namespace=default",
	}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, b.ctx, time.Second, 15*time.Minute, "baseline: "+what, b.metricAtLeast("node1", url, series, want))
	m := sampleRSS(t, b.ctx, 20*time.Second, p.Pid)[0]
	heap := b.heapInuse("node1")
	b.stop("speaker-node1")
	return m, heap, true
}

// heapInuse reads the speaker's go_memstats_heap_inuse_bytes, in MiB.
func (b *bench) heapInuse(ns string) string {
	const series = "go_memstats_heap_inuse_bytes"
	_, msg := b.metricAtLeast(ns, "http://198.51.100.11:9473/metrics", series, 0)()
	v, ok := strings.CutPrefix(msg, series+" = ")
	if !ok {
		return "heap ?"
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return "heap ?"
	}
	return fmt.Sprintf("heap %.1f MiB", f/(1<<20))
}

// memoryAnnounce allocates every Service an address (controller RSS), then
// runs the speaker alone in node1 (it announces them all) with
// --dataplane=external and off.
func (b *bench) memoryAnnounce(n int) {
	t := b.t
	start := time.Now()
	ctl := b.startController()
	b.waitIngress(n)
	backlog := time.Since(start)
	cm := sampleRSS(t, b.ctx, 10*time.Second, ctl.Pid)[0]
	w := &strings.Builder{}
	defer func() { b.emit(w.String()) }()
	fmt.Fprintf(w, "  %-44s %s   (%d LoadBalancer Services; start to all ingress %v; backlog vs baseline: bench-alloc below)\n",
		"beacon-controller", cm, n, backlog.Round(time.Second))
	for _, mode := range []string{"external", "off"} {
		sp := b.startSpeaker("node1", mode, b.l.Kubeconfig())
		const series = `beacon_l2_announced_ips{family="ipv4",interface="eth0"}`
		d := testenv.Poll(t, b.ctx, time.Second, 10*time.Minute, "every address announced by node1", b.metricAtLeast("node1", "http://198.51.100.11:9473/metrics",
			series, float64(n)))
		last := b.ingress(svcName(n - 1))
		if out, err := b.l.Exec(b.ctx, lab.ClientLAN, "arping", "-c", "1", "-w", "2", "-I", lab.LANInterface, last); err != nil {
			t.Fatalf("%s not answered on the LAN: %v\n%s", last, err, out)
		}
		m := sampleRSS(t, b.ctx, 20*time.Second, sp.Pid)[0]
		heap := b.heapInuse("node1")
		b.stop("speaker-node1")
		fmt.Fprintf(w, "  %-44s %s  %s   (announcing %d addresses; answered %v after start; goal ≤ 60 MiB)\n", "beacon-speaker --dataplane="+mode, m, heap, n, d.Round(time.Second))
		if om, oheap, ok := b.baseline(mode, "every address announced by node1", "http://198.51.100.11:9473/metrics", series, float64(n)); ok {
			fmt.Fprintf(w, "  %-44s %s  %s   ratio speaker / baseline %.2f (max over 20 s), anon %.2f\n", "beacon-speaker --dataplane="+mode+", baseline", om, oheap, m.max/om.max, m.anon/om.anon)
		}
	}
	b.stop("beacon-controller")
}

// rss is in MiB. anon is the process's own memory (RssAnon): VmRSS adds
// the binary's mapped pages (RssFile), which the kernel may map whole
// (large folios) and can drop under pressure.
type rss struct{ now, max, peak, anon float64 }

func (r rss) String() string {
	return fmt.Sprintf("%6.1f / %6.1f / %6.1f (anon %5.1f)", r.now, r.max, r.peak, r.anon)
}

// sampleRSS reads the processes' VmRSS and RssAnon every second for d,
// and VmHWM at the end; anon is the maximum seen.
func sampleRSS(t *testing.T, ctx context.Context, d time.Duration, pids ...int) []rss {
	t.Helper()
	out := make([]rss, len(pids))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.Now().Add(d)
	for {
		for i, pid := range pids {
			m, err := procMem(pid)
			if err != nil {
				t.Fatalf("memory of pid %d: %v", pid, err)
			}
			out[i].now, out[i].peak = m["VmRSS"], m["VmHWM"]
			out[i].max = max(out[i].max, m["VmRSS"])
			out[i].anon = max(out[i].anon, m["RssAnon"])
		}
		if !time.Now().Before(end) {
			return out
		}
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
	}
}

// procMem returns VmRSS, VmHWM, RssAnon and RssFile in MiB.
func procMem(pid int) (map[string]float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM" && k != "RssAnon" && k != "RssFile") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = kb / 1024
	}
	return out, sc.Err()
}

// metricAtLeast reads url from inside lab namespace ns (the lab's
// addresses are not routed from the root namespace).
func (b *bench) metricAtLeast(ns, url, series string, want float64) func() (bool, string) {
	return func() (bool, string) {
		req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err.Error()
		}
		resp, err := b.l.HTTPClient(ns).Do(req)
		if err != nil {
			return false, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		f, ok, err := labtest.Metric(resp.Body, series)
		if err != nil || !ok {
			return false, fmt.Sprintf("%s not exported yet (%v)", series, err)
		}
		return f >= want, fmt.Sprintf("%s = %v", series, f)
	}
}

// ---- lab objects and processes ----

func (b *bench) startSpeaker(node, dataplane, kubeconfig string) *lab.Process {
	b.t.Helper()
	p, err := b.l.StartProcess(lab.ProcessSpec{Name: "speaker-" + node, Netns: node, Argv: []string{
		filepath.Join(b.bin, "beacon-speaker"), "--kubeconfig", kubeconfig, "--node-name", node,
		"--dataplane=" + dataplane, "--namespace=default",
	}})
	if err != nil {
		b.t.Fatal(err)
	}
	return p
}

func (b *bench) startController() *lab.Process {
	b.t.Helper()
	p, err := b.l.StartProcess(lab.ProcessSpec{Name: "beacon-controller", Netns: lab.Host, Argv: []string{
		filepath.Join(b.bin, "beacon-controller"), "--kubeconfig", b.l.Kubeconfig(), "--leader-elect-namespace", "default",
	}})
	if err != nil {
		b.t.Fatal(err)
	}
	return p
}

func (b *bench) stop(name string) {
	if err := b.l.StopProcess(name); err != nil {
		b.t.Errorf("stop %s: %v", name, err)
	}
}

// poolAndAdvertisement creates the IPPool "scale" and its L2Advertisement
// on the nodes' LAN interface (the pool is not on-link anywhere).
func (b *bench) poolAndAdvertisement() {
	t := b.t
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "scale"}}
	p.Spec.Addresses = []v1alpha1.AddressBlock{poolRange}
	if err := b.bc.Create(b.ctx, client.IPPools, p); err != nil {
		t.Fatal(err)
	}
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "scale"}}
	ad.Spec.IPPools = []string{"scale"}
	ad.Spec.Interfaces = []v1alpha1.InterfaceName{lab.LANInterface}
	if err := b.bc.Create(b.ctx, client.L2Advertisements, ad); err != nil {
		t.Fatal(err)
	}
}

func (b *bench) ingress(name string) string {
	svc, err := b.cs.CoreV1().Services(benchNS).Get(b.ctx, name, metav1.GetOptions{})
	if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
		b.t.Fatalf("service %s has no ingress (%v)", name, err)
	}
	return svc.Status.LoadBalancer.Ingress[0].IP
}

func (b *bench) waitIngress(n int) {
	testenv.Poll(b.t, b.ctx, 2*time.Second, 20*time.Minute, "ingress on every Service", func() (bool, string) {
		list, err := b.cs.CoreV1().Services(benchNS).List(b.ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false, err.Error()
		}
		got := 0
		for _, s := range list.Items {
			if len(s.Status.LoadBalancer.Ingress) > 0 {
				got++
			}
		}
		return got >= n, fmt.Sprintf("%d of %d", got, n)
	})
}

func svcName(i int) string { return fmt.Sprintf("s%05d", i) }

// endpointAddr is endpoint j of Service i: made-up pod addresses (nothing
// answers; the dataplanes only program them).
func endpointAddr(i, j int) string {
	k := i*endpoints + j
	return fmt.Sprintf("198.18.%d.%d", 64+(k>>8)%128, k&255)
}

// createServices creates LoadBalancer Services from..to-1 without node
// ports (no selector: the lab's endpoint writer leaves them alone) and one
// EndpointSlice each, endpoints spread over node1 and node2.
func (b *bench) createServices(from, to int) {
	b.t.Helper()
	g, gctx := errgroup.WithContext(b.ctx)
	g.SetLimit(24)
	for i := from; i < to; i++ {
		g.Go(func() error {
			svc := &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: svcName(i)},
				Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
					Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}},
			}
			if _, err := b.cs.CoreV1().Services(benchNS).Create(gctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("service %d: %w", i, err)
			}
			sl := &discoveryv1.EndpointSlice{
				ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: svcName(i) + "-a", Labels: map[string]string{
					discoveryv1.LabelServiceName: svcName(i), discoveryv1.LabelManagedBy: "bench.beaconlb.io",
				}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
			}
			for j := range endpoints {
				sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
					Addresses: []string{endpointAddr(i, j)}, NodeName: ptr.To(fmt.Sprintf("node%d", 1+j%2)),
					Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
				})
			}
			if _, err := b.cs.DiscoveryV1().EndpointSlices(benchNS).Create(gctx, sl, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("slice %d: %w", i, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.t.Fatal(err)
	}
}

// newBench brings up a 2-node lab (queued behind other lab suites), fast
// clients of its API server, the daemons' binaries and the bench
// namespace; the bench's context ends after timeout or with the test.
func newBench(t *testing.T, timeout time.Duration) *bench {
	t.Helper()
	l := labtest.UpWithin(t, lab.Config{Nodes: 2, PodsPerNode: 1}, 30*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cfg := l.RESTConfig()
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bc, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{t: t, ctx: ctx, l: l, cs: cs, bc: bc,
		bin: testenv.BuildOnce(t, "./cmd/beacon-controller", "./cmd/beacon-speaker")}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return b
}
