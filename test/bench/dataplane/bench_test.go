package dataplane

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/internal/metricstest"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
	"github.com/beaconlb/beacon/nodeport"
)

const (
	benchNS    = "bench"
	beaconNode = "node1"
	kpNode     = "node2"
	endpoints  = 5
	runs       = 3 // full syncs from empty, per dataplane and size
	changes    = 5 // one-Service changes with 10,000 present
	// kpCap bounds the wait for one kube-proxy sync.
	kpCap = 5 * time.Minute
	// lbIP is the LoadBalancer IP of the throughput Service (client-lan
	// routes it to node1: no speaker runs here).
	lbIP     = "198.51.100.240"
	sinkPort = 9000
)

func TestBenchDataplane(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "dataplane" {
		t.Skip("runs with BEACON_BENCH=dataplane (make bench-dataplane): it takes minutes and the machine's one lab")
	}
	kubeProxy := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kube-proxy")
	if _, err := os.Stat(kubeProxy); err != nil {
		t.Fatalf("kube-proxy is not built: run WITH_KUBE_PROXY=1 hack/testbin.sh (%v)", err)
	}
	l := labtest.Up(t, lab.Config{Nodes: 2, PodsPerNode: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	cfg := l.RESTConfig()
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: benchNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bc := startBeacon(ctx, t, l, cs)
	kp := &kubeProxyRun{t: t, l: l, bin: kubeProxy}
	t.Cleanup(kp.stop)

	type sizeResult struct {
		n              int
		beacon, kproxy []time.Duration
	}
	var sizes []sizeResult
	created := 0
	for _, n := range []int{1000, 10000} {
		start := time.Now()
		created = createServices(ctx, t, cs, created, n)
		t.Logf("%d Services × %d endpoints in the API server (%v)", n, endpoints, time.Since(start).Round(time.Second))
		bc.waitSeen(ctx, t, n)
		r := sizeResult{n: n}
		for i := range runs {
			d := bc.fullFromEmpty(t, n)
			t.Logf("beacon    %5d Services, run %d: %v", n, i+1, d)
			r.beacon = append(r.beacon, d)
		}
		for i := range runs {
			d := kp.fullFromEmpty(ctx, n)
			t.Logf("kube-proxy %5d Services, run %d: %v", n, i+1, d)
			r.kproxy = append(r.kproxy, d)
			if d >= kpCap {
				break // capped: one run says enough
			}
		}
		kp.stop() // not syncing while the next Services are created
		sizes = append(sizes, r)
	}

	// One change with 10,000 present: an endpoint leaves, then comes back,
	// in a different Service each time. Each dataplane is measured alone,
	// so that the other's sync does not share the CPU.
	var beaconOne, kpOne []time.Duration
	bc.run(ctx, t)
	waitHistogram(ctx, t, bc.partial, 0, 0, 30*time.Second) // Run's first sync
	for i := range changes {
		sum, count, _ := bc.partial()
		toggleEndpoint(ctx, t, cs, 100+i*37)
		d := waitHistogram(ctx, t, bc.partial, sum, count, 30*time.Second)
		t.Logf("beacon one change %d: %v", i+1, d)
		beaconOne = append(beaconOne, d)
	}
	bc.stopRun()
	kp.stop()
	kp.fullFromEmpty(ctx, 10000) // running, with everything programmed
	for i := range changes {
		read := func() (float64, float64, error) {
			return kp.histogram(ctx, "kubeproxy_sync_partial_proxy_rules_duration_seconds")
		}
		sum, count, err := read()
		if err != nil {
			t.Fatal(err)
		}
		toggleEndpoint(ctx, t, cs, 200+i*37)
		d := waitHistogram(ctx, t, read, sum, count, kpCap)
		t.Logf("kube-proxy one change %d: %v", i+1, d)
		kpOne = append(kpOne, d)
	}
	kp.stop()

	// Throughput through the LoadBalancer IP against direct to the pod.
	bc.run(ctx, t)
	tp := measureThroughput(ctx, t, l, cs)
	bc.stopRun()

	var b strings.Builder
	fmt.Fprintf(&b, "\nbench-dataplane (%s; medians; Beacon in lab node1, kube-proxy v1.36.3 --proxy-mode=nftables in node2)\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "%-38s %14s %14s %10s\n", "", "Beacon", "kube-proxy", "ratio")
	for _, r := range sizes {
		bm, km := median(r.beacon), median(r.kproxy)
		fmt.Fprintf(&b, "%-38s %14s %14s %9.1fx   (Beacon %s; kube-proxy %s)\n", fmt.Sprintf("full sync, %d Services from empty", r.n),
			bm.Round(time.Millisecond), capped(km), km.Seconds()/bm.Seconds(), list(r.beacon), list(r.kproxy))
	}
	bm, km := median(beaconOne), median(kpOne)
	fmt.Fprintf(&b, "%-38s %14s %14s %9.1fx   (Beacon %s; kube-proxy %s)\n", "one Service change, 10,000 present",
		bm.Round(100*time.Microsecond), capped(km), km.Seconds()/bm.Seconds(), list(beaconOne), list(kpOne))
	fmt.Fprintf(&b, "throughput via LB IP / direct to pod: requests %.3f (%.0f vs %.0f req/s), stream %.3f (%.0f vs %.0f MB/s)\n",
		tp.reqLB/tp.reqDirect, tp.reqLB, tp.reqDirect, tp.mbLB/tp.mbDirect, tp.mbLB, tp.mbDirect)
	fmt.Fprintf(&b, "targets: full sync of 10,000 ≤ 2 s and ≥ 10x kube-proxy; one change ≤ 50 ms; throughput ratio ≥ 0.9\n")
	t.Log(b.String())
	fmt.Print(b.String())
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func capped(d time.Duration) string {
	if d >= kpCap {
		return "> " + kpCap.String()
	}
	return d.Round(time.Millisecond).String()
}

func list(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(100 * time.Microsecond).String()
	}
	return strings.Join(parts, " ")
}

// svcName is the i-th benchmark Service.
func svcName(i int) string { return fmt.Sprintf("s%05d", i) }

// endpointAddr is endpoint j of Service i: made-up pod addresses (nothing
// answers; the dataplanes only program them).
func endpointAddr(i, j int) string {
	k := i*endpoints + j
	return fmt.Sprintf("198.18.%d.%d", 64+(k>>8)%128, k&255)
}

func slice(i int, skip int) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: svcName(i) + "-a", Labels: map[string]string{
			discoveryv1.LabelServiceName: svcName(i),
			discoveryv1.LabelManagedBy:   "bench.beaconlb.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for j := range endpoints {
		if j == skip {
			continue
		}
		node := beaconNode
		if j%2 == 1 {
			node = kpNode
		}
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{endpointAddr(i, j)}, NodeName: ptr.To(node),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	return sl
}

// createServices creates ClusterIP Services from..to-1 (no selector, so the
// lab's endpoint writer leaves them alone) and one EndpointSlice each.
func createServices(ctx context.Context, t *testing.T, cs kubernetes.Interface, from, to int) int {
	t.Helper()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(24)
	for i := from; i < to; i++ {
		g.Go(func() error {
			svc := &v1.Service{
				ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: svcName(i)},
				Spec:       v1.ServiceSpec{Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}},
			}
			if _, err := cs.CoreV1().Services(benchNS).Create(gctx, svc, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("service %d: %w", i, err)
			}
			if _, err := cs.DiscoveryV1().EndpointSlices(benchNS).Create(gctx, slice(i, -1), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("slice %d: %w", i, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	return to
}

// toggleEndpoint removes the first endpoint of Service i's slice, or puts
// it back.
func toggleEndpoint(ctx context.Context, t *testing.T, cs kubernetes.Interface, i int) {
	t.Helper()
	cur, err := cs.DiscoveryV1().EndpointSlices(benchNS).Get(ctx, svcName(i)+"-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	skip := -1
	if len(cur.Endpoints) == endpoints {
		skip = 0
	}
	next := slice(i, skip)
	next.ResourceVersion = cur.ResourceVersion
	if _, err := cs.DiscoveryV1().EndpointSlices(benchNS).Update(ctx, next, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitHistogram waits until a histogram's count grows past before and
// returns the duration of the syncs in between (sum delta; one sync when
// the count grew by one).
func waitHistogram(ctx context.Context, t *testing.T, read func() (sum, count float64, err error), sum0, count0 float64, limit time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		sum, count, err := read()
		if err == nil && count > count0 {
			if count > count0+1 {
				t.Logf("%v syncs in one measurement: their mean is reported", count-count0)
			}
			return time.Duration((sum - sum0) / (count - count0) * float64(time.Second))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no sync within %v", limit)
	return 0
}

// beacon is Beacon's dataplane for node1, driven like the speaker drives
// it: informers, KubeConverter, Syncer (Builder + Applier).
type beacon struct {
	l       *lab.Lab
	ka      *nodeport.KernelApplier
	conv    nodeport.KubeConverter
	svcs    cache.Indexer
	slices  cache.Indexer
	node    *v1.Node
	mu      sync.Mutex
	syncer  atomic.Pointer[nodeport.Syncer]
	reg     *prometheus.Registry
	stopRun func()
}

func startBeacon(ctx context.Context, t *testing.T, l *lab.Lab, cs kubernetes.Interface) *beacon {
	fd, err := os.Open(filepath.Join(lab.NetnsDir, lab.Netns(beaconNode)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fd.Close() })
	ka, err := nodeport.NewKernelApplier(nodeport.KernelConfig{NetNS: int(fd.Fd())}, testr.New(t).WithName("nodeport"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ka.Close() })
	node, err := cs.CoreV1().Nodes().Get(ctx, beaconNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := informers.NewSharedInformerFactory(cs, 0)
	si, ei := f.Core().V1().Services().Informer(), f.Discovery().V1().EndpointSlices().Informer()
	b := &beacon{l: l, ka: ka, svcs: si.GetIndexer(), slices: ei.GetIndexer(), node: node, stopRun: func() {}}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { b.markDirty() },
		UpdateFunc: func(any, any) { b.markDirty() },
		DeleteFunc: func(any) { b.markDirty() },
	}
	for _, i := range []cache.SharedIndexInformer{si, ei} {
		if _, err := i.AddEventHandler(h); err != nil {
			t.Fatal(err)
		}
	}
	ictx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	f.Start(ictx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), si.HasSynced, ei.HasSynced) {
		t.Fatal("informers did not sync")
	}
	return b
}

func (b *beacon) markDirty() {
	if s := b.syncer.Load(); s != nil {
		s.MarkDirty()
	}
}

func (b *beacon) input() (nodeport.Input, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	in := nodeport.Input{Mode: nodeport.ModeFull, NodeName: beaconNode, NodeAddresses: nodeport.NodeAddressesFromKube(b.node)}
	var svcs []*v1.Service
	for _, o := range b.svcs.List() {
		svcs = append(svcs, o.(*v1.Service))
	}
	var eps []*discoveryv1.EndpointSlice
	for _, o := range b.slices.List() {
		eps = append(eps, o.(*discoveryv1.EndpointSlice))
	}
	in.Services = b.conv.Services(svcs, eps, nil)
	return in, nil
}

// waitSeen waits until the informers hold n benchmark Services and slices.
func (b *beacon) waitSeen(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	count := func(ix cache.Indexer) int {
		objs, _ := ix.ByIndex(cache.NamespaceIndex, benchNS)
		return len(objs)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for count(b.svcs) < n || count(b.slices) < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("informers hold %d Services and %d slices, want %d", count(b.svcs), count(b.slices), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fullFromEmpty removes Beacon's tables, then syncs once with a new Syncer
// (a new Builder: nothing remembered) and returns its full-sync duration.
func (b *beacon) fullFromEmpty(t *testing.T, n int) time.Duration {
	t.Helper()
	if _, err := b.ka.Apply(nodeport.Build(nodeport.Input{Mode: nodeport.ModeOff})); err != nil {
		t.Fatal(err)
	}
	if out, _ := b.l.Exec(context.Background(), beaconNode, "nft", "list", "tables"); strings.Contains(string(out), nodeport.TableName) {
		t.Fatalf("tables left before a full sync:\n%s", out)
	}
	reg := prometheus.NewRegistry()
	s, err := nodeport.NewSyncer(nodeport.SyncerConfig{Input: b.input, Applier: b.ka, Registerer: reg, Log: testr.New(t).WithName("syncer")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SyncOnce(); err != nil {
		t.Fatal(err)
	}
	b.syncer.Store(s)
	b.reg = reg
	m := metricstest.Find(t, reg, nodeport.MetricSyncDuration, map[string]string{"kind": "full"})
	if m == nil || m.GetHistogram().GetSampleCount() != 1 {
		t.Fatalf("no full sync observed: %v", m)
	}
	b.checkProgrammed(t, n)
	return time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
}

// checkProgrammed checks that the kernel holds the last Service's ClusterIP
// in its shard's dispatch map.
func (b *beacon) checkProgrammed(t *testing.T, n int) {
	t.Helper()
	o, ok, err := b.svcs.GetByKey(benchNS + "/" + svcName(n-1))
	if err != nil || !ok {
		t.Fatalf("Service %s not in the informer: %v", svcName(n-1), err)
	}
	ip := o.(*v1.Service).Spec.ClusterIP
	table := nodeport.ShardTableName(nodeport.ShardOf(benchNS, svcName(n-1), nodeport.DefaultShards))
	out, err := b.l.Exec(context.Background(), beaconNode, "nft", "list", "map", "ip", table, nodeport.MapServiceIPs)
	if err != nil || !strings.Contains(string(out), ip+" . tcp . 80 : goto svc-"+benchNS+"/"+svcName(n-1)+"/tcp/80") {
		t.Fatalf("the last Service %s (%s) is not programmed in %s: %v\n%.2000s", svcName(n-1), ip, table, err, out)
	}
}

// run starts the current Syncer's loop (informer events mark it dirty).
func (b *beacon) run(ctx context.Context, t *testing.T) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	s := b.syncer.Load()
	go func() { done <- s.Run(rctx) }()
	b.stopRun = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		b.stopRun = func() {}
	}
	t.Cleanup(func() { b.stopRun() })
}

// partial reads the partial-sync histogram.
func (b *beacon) partial() (sum, count float64, err error) {
	mfs, err := b.reg.Gather()
	if err != nil {
		return 0, 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() != nodeport.MetricSyncDuration {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "kind" && lp.GetValue() == "partial" {
					return m.GetHistogram().GetSampleSum(), float64(m.GetHistogram().GetSampleCount()), nil
				}
			}
		}
	}
	return 0, 0, nil
}

// kubeProxyRun is kube-proxy in node2's namespace.
type kubeProxyRun struct {
	t       *testing.T
	l       *lab.Lab
	bin     string
	running bool
}

func (k *kubeProxyRun) metricsAddr() string { return "198.51.100.12:10249" }

func (k *kubeProxyRun) stop() {
	if k.running {
		if err := k.l.StopProcess("kube-proxy"); err != nil {
			k.t.Errorf("stop kube-proxy: %v", err)
		}
		k.running = false
	}
}

// fullFromEmpty (re)starts kube-proxy on empty nftables and returns the
// duration of its first full sync (IPv4), kpCap when it did not finish.
func (k *kubeProxyRun) fullFromEmpty(ctx context.Context, n int) time.Duration {
	t := k.t
	k.stop()
	for _, fam := range []string{"ip", "ip6", "inet"} {
		_, _ = k.l.Exec(ctx, kpNode, "nft", "delete", "table", fam, "kube-proxy")
	}
	if out, _ := k.l.Exec(ctx, kpNode, "nft", "list", "tables"); strings.Contains(string(out), "kube-proxy") {
		t.Fatalf("kube-proxy tables left:\n%s", out)
	}
	_, err := k.l.StartProcess(lab.ProcessSpec{Name: "kube-proxy", Netns: kpNode, Argv: []string{
		k.bin, "--kubeconfig", k.l.Kubeconfig(), "--proxy-mode=nftables", "--hostname-override=" + kpNode,
		"--metrics-bind-address=" + k.metricsAddr(), "--healthz-bind-address=198.51.100.12:10256",
		"--cluster-cidr=198.18.0.0/16", "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
		"--oom-score-adj=0", "--v=2",
	}})
	if err != nil {
		t.Fatal(err)
	}
	k.running = true
	start := time.Now()
	for time.Since(start) < kpCap && ctx.Err() == nil {
		sum, count, err := k.histogram(ctx, "kubeproxy_sync_full_proxy_rules_duration_seconds")
		if err == nil && count >= 1 {
			if fails, _ := k.counter(ctx, "kubeproxy_sync_proxy_rules_nftables_sync_failures_total"); fails > 0 {
				t.Fatalf("kube-proxy reported %v failed nftables syncs (log %s)", fails, filepath.Join(k.l.StateDir(), "logs", "kube-proxy.log"))
			}
			k.checkProgrammed(ctx, n)
			return time.Duration(sum / count * float64(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("kube-proxy: no full sync of %d Services within %v", n, kpCap)
	return kpCap
}

// checkProgrammed looks for the last Service's ClusterIP in kube-proxy's
// service-ips map.
func (k *kubeProxyRun) checkProgrammed(ctx context.Context, n int) {
	t := k.t
	cs := kubernetes.NewForConfigOrDie(k.l.RESTConfig())
	svc, err := cs.CoreV1().Services(benchNS).Get(ctx, svcName(n-1), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := k.l.Exec(ctx, kpNode, "nft", "list", "map", "ip", "kube-proxy", "service-ips")
	if err != nil || !strings.Contains(string(out), svc.Spec.ClusterIP+" . tcp . 80 : goto service-") {
		t.Fatalf("kube-proxy did not program the last Service %s (%s): %v\n%.2000s", svc.Name, svc.Spec.ClusterIP, err, out)
	}
}

func (k *kubeProxyRun) scrape(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+k.metricsAddr()+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := k.l.HTTPClient(kpNode).Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// series returns the IPv4 value of a metric line (name{...ip_family="IPv4"...}).
func series(text, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || len(line) == len(name) || (line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		if strings.Contains(line, "ip_family") && !strings.Contains(line, `ip_family="IPv4"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

func (k *kubeProxyRun) histogram(ctx context.Context, name string) (sum, count float64, err error) {
	text, err := k.scrape(ctx)
	if err != nil {
		return 0, 0, err
	}
	sum, ok1 := series(text, name+"_sum")
	count, ok2 := series(text, name+"_count")
	if !ok1 || !ok2 {
		return 0, 0, nil
	}
	return sum, count, nil
}

func (k *kubeProxyRun) counter(ctx context.Context, name string) (float64, error) {
	text, err := k.scrape(ctx)
	if err != nil {
		return 0, err
	}
	v, _ := series(text, name)
	return v, nil
}

type throughput struct {
	reqLB, reqDirect float64 // requests per second
	mbLB, mbDirect   float64 // MB/s
}

// measureThroughput serves a sink in pod n1-p1 (its socket lives in the
// pod's namespace) and compares, from client-lan, the LoadBalancer IP
// (forwarded by Beacon on node1) with the pod's own address.
func measureThroughput(ctx context.Context, t *testing.T, l *lab.Lab, cs kubernetes.Interface) throughput {
	pod, ok := l.Pod("n1-p1")
	if !ok {
		t.Fatal("no pod n1-p1")
	}
	var ln net.Listener
	if err := lab.InNetns(pod.Name, func() error {
		var err error
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", pod.IPv4, sinkPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go serveSink(ln)

	svc := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: "lb"},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
			Ports: []v1.ServicePort{{Name: "sink", Protocol: v1.ProtocolTCP, Port: sinkPort}}},
	}
	svc, err := cs.CoreV1().Services(benchNS).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: lbIP}}
	if _, err := cs.CoreV1().Services(benchNS).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: benchNS, Name: "lb-a", Labels: map[string]string{discoveryv1.LabelServiceName: "lb", discoveryv1.LabelManagedBy: "bench.beaconlb.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("sink"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](sinkPort)}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{pod.IPv4.String()}, NodeName: ptr.To(beaconNode),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(benchNS).Create(ctx, sl, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// No speaker announces the address here: client-lan routes it to node1.
	node, _ := l.Node(beaconNode)
	if out, err := l.Exec(ctx, "client-lan", "ip", "route", "add", lbIP+"/32", "via", node.IPv4.String()); err != nil {
		t.Fatalf("route the LB IP to node1: %v %s", err, out)
	}
	lb := netip.AddrPortFrom(netip.MustParseAddr(lbIP), sinkPort)
	direct := netip.AddrPortFrom(pod.IPv4, sinkPort)
	dial := l.Dialer("client-lan")
	deadline := time.Now().Add(time.Minute)
	for {
		if err := request(ctx, dial, lb); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the LB IP never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var tp throughput
	var reqLB, reqDirect, mbLB, mbDirect []float64
	for range 3 { // alternate, so that load changes hit both alike
		reqLB = append(reqLB, requests(ctx, t, dial, lb))
		reqDirect = append(reqDirect, requests(ctx, t, dial, direct))
		mbLB = append(mbLB, stream(ctx, t, dial, lb))
		mbDirect = append(mbDirect, stream(ctx, t, dial, direct))
	}
	t.Logf("requests/s LB %v direct %v; MB/s LB %v direct %v", reqLB, reqDirect, mbLB, mbDirect)
	tp.reqLB, tp.reqDirect, tp.mbLB, tp.mbDirect = medianF(reqLB), medianF(reqDirect), medianF(mbLB), medianF(mbDirect)
	return tp
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// serveSink reads to the client's half-close, answers the byte count, and
// waits for the client to close first: the TIME_WAIT stays on the
// client's side, whose ports do not repeat, rather than on the sink's,
// where masqueraded connections arrive from random ports that could meet
// an old connection's TIME_WAIT.
func serveSink(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			_ = c.SetDeadline(time.Now().Add(3 * time.Minute))
			n, _ := io.Copy(io.Discard, c)
			_, _ = fmt.Fprintf(c, "%d", n)
			_, _ = io.Copy(io.Discard, c) // until the client closes
		}()
	}
}

// answer reads the sink's answer (the byte count it received).
func answer(c net.Conn, sent int) error {
	want := strconv.Itoa(sent)
	b := make([]byte, len(want))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != want {
		return fmt.Errorf("sink counted %q, want %s", b, want)
	}
	return nil
}

// request is one short connection: connect, send 64 bytes, half-close,
// read the answer.
func request(ctx context.Context, dial lab.DialFunc, to netip.AddrPort) error {
	c, err := dial(ctx, "tcp4", to.String())
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write(make([]byte, 64)); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	return answer(c, 64)
}

// requests makes 2,000 requests, 16 at a time, and returns requests/s.
func requests(ctx context.Context, t *testing.T, dial lab.DialFunc, to netip.AddrPort) float64 {
	const total, par = 2000, 16
	var next, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range par {
		wg.Go(func() {
			for next.Add(1) <= total {
				if err := request(ctx, dial, to); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	// A request fails after 2 s without an answer; a few under load are
	// reported, more fail the run.
	if f := failed.Load(); f > total/100 {
		t.Errorf("%d of %d requests to %s failed", f, total, to)
	} else if f > 0 {
		t.Logf("%d of %d requests to %s failed", f, total, to)
	}
	return total / time.Since(start).Seconds()
}

// stream sends 4 × 64 MiB in parallel connections and returns MB/s.
func stream(ctx context.Context, t *testing.T, dial lab.DialFunc, to netip.AddrPort) float64 {
	const size, par = 64 << 20, 4
	buf := make([]byte, 256<<10)
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for range par {
		g.Go(func() error {
			c, err := dial(gctx, "tcp4", to.String())
			if err != nil {
				return err
			}
			defer func() { _ = c.Close() }()
			_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
			for sent := 0; sent < size; sent += len(buf) {
				if _, err := c.Write(buf); err != nil {
					return err
				}
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				return err
			}
			return answer(c, size)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("stream to %s: %v", to, err)
	}
	return float64(par*size) / 1e6 / time.Since(start).Seconds()
}
