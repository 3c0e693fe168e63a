// Command alloc is `make bench-alloc`: it starts a real API server and
// measures how fast beacon-controller gives 1,000 LoadBalancer Services an
// address, next to baselines in the same run:
//
//   - backlog: 1,000 Services wait; time from the controller's cache sync
//     until all have ingress, against 20 goroutines patching /status of
//     1,000 other Services directly (the API server's own write rate);
//   - burst: time from the first create until all 1,000 have ingress,
//     against a trivial watch-and-patch controller on the same burst.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

const trivialClass = "bench.beaconlb.io/trivial"

func main() {
	n := flag.Int("services", 1000, "Services per measurement")
	burst := flag.Bool("burst", true, "also measure the burst (creates as many Services again, twice)")
	flag.Parse()
	if ok, why := testenv.Available(); !ok {
		fmt.Fprintln(os.Stderr, why)
		os.Exit(2)
	}
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start API server:", err)
		os.Exit(1)
	}
	code := 0
	if err := run(env, *n, *burst); err != nil {
		fmt.Fprintln(os.Stderr, "bench-alloc:", err)
		code = 1
	}
	_ = env.Stop()
	os.Exit(code)
}

func run(env *testenv.Env, n int, withBurst bool) error {
	// 15 minutes per 1,000 Services: creating 10,000 on a loaded 2-core
	// machine alone takes more than 15 minutes.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(1, n/1000))*15*time.Minute)
	defer cancel()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1000, 2000
	kube := kubernetes.NewForConfigOrDie(cfg)
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "bench"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.18.0.0/16"}
	if err := env.Beacon.Create(ctx, client.IPPools, pool); err != nil {
		return err
	}
	w := newWatcher(ctx, kube)

	fmt.Printf("bench-alloc: %d LoadBalancer Services, real kube-apiserver + etcd, client QPS 1000\n\n", n)

	// Backlog.
	for _, ns := range []string{"backlog", "baseline"} {
		if err := createNS(ctx, kube, ns); err != nil {
			return err
		}
	}
	if _, err := createAll(ctx, kube, "backlog", n, nil); err != nil {
		return err
	}
	if _, err := createAll(ctx, kube, "baseline", n, ptr.To(trivialClass)); err != nil {
		return err
	}
	base := patchAll(ctx, kube, "baseline", n)
	fmt.Printf("baseline  20 goroutines patching /status of %d Services: %v\n", n, base.Round(time.Millisecond))

	synced := make(chan time.Time, 1)
	cctx, stopCtrl := context.WithCancel(ctx)
	defer stopCtrl()
	ctrlDone := make(chan error, 1)
	go func() {
		ctrlDone <- app.Run(cctx, logr.Discard(), app.Options{
			RestConfig: env.Config, Workers: 16, QPS: 1000, Burst: 2000,
			MetricsAddr: "0", HealthAddr: "0",
			Ready: func(*controller.Controller) { synced <- time.Now() },
		})
	}()
	var t0 time.Time
	select {
	case t0 = <-synced:
	case err := <-ctrlDone:
		return fmt.Errorf("controller: %w", err)
	}
	tEnd, lat, err := w.waitAll(ctx, "backlog", n, func(string) time.Time { return t0 })
	if err != nil {
		return err
	}
	backlog := tEnd.Sub(t0)
	fmt.Printf("beacon    backlog of %d Services, cache sync -> all have ingress: %v  (p50 %v, p99 %v)\n",
		n, backlog.Round(time.Millisecond), pct(lat, 50), pct(lat, 99))
	fmt.Printf("ratio     backlog / baseline = %.2f  (target <= 1.5)\n\n", backlog.Seconds()/base.Seconds())
	if !withBurst {
		stopCtrl()
		return <-ctrlDone
	}

	// Burst: the trivial controller first, then Beacon, each on a fresh namespace.
	tctx, stopTrivial := context.WithCancel(ctx)
	defer stopTrivial()
	go trivialController(tctx, kube)
	if err := createNS(ctx, kube, "burst-trivial"); err != nil {
		return err
	}
	created, err := createAll(ctx, kube, "burst-trivial", n, ptr.To(trivialClass))
	if err != nil {
		return err
	}
	tEnd, lat, err = w.waitAll(ctx, "burst-trivial", n, created.get)
	stopTrivial()
	if err != nil {
		return err
	}
	trivial := tEnd.Sub(created.first)
	fmt.Printf("trivial   watch-and-patch controller, burst of %d creates -> all have ingress: %v  (p50 %v, p99 %v)\n",
		n, trivial.Round(time.Millisecond), pct(lat, 50), pct(lat, 99))

	if err := createNS(ctx, kube, "burst"); err != nil {
		return err
	}
	created, err = createAll(ctx, kube, "burst", n, nil)
	if err != nil {
		return err
	}
	tEnd, lat, err = w.waitAll(ctx, "burst", n, created.get)
	if err != nil {
		return err
	}
	burst := tEnd.Sub(created.first)
	fmt.Printf("beacon    burst of %d creates -> all have ingress: %v  (p50 %v, p99 %v)\n",
		n, burst.Round(time.Millisecond), pct(lat, 50), pct(lat, 99))
	fmt.Printf("ratio     burst / trivial = %.2f\n", burst.Seconds()/trivial.Seconds())
	stopCtrl()
	return <-ctrlDone
}

func createNS(ctx context.Context, kube kubernetes.Interface, name string) error {
	_, err := kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return err
}

type createTimes struct {
	mu    sync.Mutex
	first time.Time
	at    map[string]time.Time
}

func (c *createTimes) get(name string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at[name]
}

// createAll creates n Services with 20 goroutines and records when each was
// sent.
func createAll(ctx context.Context, kube kubernetes.Interface, ns string, n int, class *string) (*createTimes, error) {
	ct := &createTimes{at: map[string]time.Time{}, first: time.Now()}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				name := fmt.Sprintf("svc-%04d", i)
				ct.mu.Lock()
				ct.at[name] = time.Now()
				ct.mu.Unlock()
				_, err := kube.CoreV1().Services(ns).Create(ctx, &v1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: v1.ServiceSpec{
						Type: v1.ServiceTypeLoadBalancer, LoadBalancerClass: class,
						// 4,000 Services would exhaust the NodePort range.
						AllocateLoadBalancerNodePorts: ptr.To(false),
						Selector:                      map[string]string{"app": name},
						Ports:                         []v1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(5000)}},
					},
				}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return ct, <-errs
}

// patchAll is the baseline: 20 goroutines writing one status patch each.
func patchAll(ctx context.Context, kube kubernetes.Interface, ns string, n int) time.Duration {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				patch := fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":"198.19.%d.%d","ipMode":"VIP"}]}}}`, i/250, i%250+1)
				_, _ = kube.CoreV1().Services(ns).Patch(ctx, fmt.Sprintf("svc-%04d", i), types.StrategicMergePatchType,
					[]byte(patch), metav1.PatchOptions{}, "status")
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}

// trivialController patches every Service of its class with the next
// address, with 20 workers: the least any controller must do.
func trivialController(ctx context.Context, kube kubernetes.Interface) {
	f := informers.NewSharedInformerFactory(kube, 0)
	q := make(chan *v1.Service, 4096)
	_, _ = f.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if s := obj.(*v1.Service); s.Spec.LoadBalancerClass != nil && *s.Spec.LoadBalancerClass == trivialClass &&
				s.Namespace == "burst-trivial" && len(s.Status.LoadBalancer.Ingress) == 0 {
				q <- s
			}
		},
	})
	f.Start(ctx.Done())
	var next atomic.Int64
	for range 20 {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case s := <-q:
					i := next.Add(1)
					patch := fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":"198.18.%d.%d","ipMode":"VIP"}]}}}`, 200+i/250, i%250+1)
					_, _ = kube.CoreV1().Services(s.Namespace).Patch(ctx, s.Name, types.StrategicMergePatchType,
						[]byte(patch), metav1.PatchOptions{}, "status")
				}
			}
		}()
	}
}

// watcher records when each Service is first seen with ingress.
type watcher struct {
	mu   sync.Mutex
	seen map[string]time.Time // ns/name
	kick chan struct{}
}

func newWatcher(ctx context.Context, kube kubernetes.Interface) *watcher {
	w := &watcher{seen: map[string]time.Time{}, kick: make(chan struct{}, 1)}
	f := informers.NewSharedInformerFactory(kube, 0)
	note := func(obj any) {
		s, ok := obj.(*v1.Service)
		if !ok || len(s.Status.LoadBalancer.Ingress) == 0 {
			return
		}
		now := time.Now()
		w.mu.Lock()
		if _, ok := w.seen[s.Namespace+"/"+s.Name]; !ok {
			w.seen[s.Namespace+"/"+s.Name] = now
		}
		w.mu.Unlock()
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	_, _ = f.Core().V1().Services().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: note, UpdateFunc: func(_, o any) { note(o) },
	})
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	return w
}

// waitAll waits until n Services of ns have ingress; returns when the last
// got it and each one's latency from since(name).
func (w *watcher) waitAll(ctx context.Context, ns string, n int, since func(string) time.Time) (time.Time, []time.Duration, error) {
	for {
		w.mu.Lock()
		var last time.Time
		var lat []time.Duration
		for i := range n {
			name := fmt.Sprintf("svc-%04d", i)
			at, ok := w.seen[ns+"/"+name]
			if !ok {
				break
			}
			if at.After(last) {
				last = at
			}
			lat = append(lat, at.Sub(since(name)))
		}
		w.mu.Unlock()
		if len(lat) == n {
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			return last, lat, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, nil, fmt.Errorf("%s: only %d of %d Services got ingress", ns, len(lat), n)
		case <-w.kick:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i].Round(time.Millisecond)
}
