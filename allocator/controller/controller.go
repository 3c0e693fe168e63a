package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	servicehelper "k8s.io/cloud-provider/service/helpers"

	"github.com/beaconlb/beacon/allocator"
	"github.com/beaconlb/beacon/allocator/provider"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/register"
	"github.com/beaconlb/beacon/internal/slim"
	"github.com/beaconlb/beacon/lbservice"
)

// Finalizer is the upstream cleanup finalizer: an address is released only
// after the Service that held it is gone.
const Finalizer = "service.kubernetes.io/load-balancer-cleanup"

// Event reasons on Services.
const (
	EventIPAllocated      = "IPAllocated"
	EventIPChanged        = "IPChanged"
	EventIPReleased       = "IPReleased"
	EventAllocationFailed = "AllocationFailed"
	EventInvalidRequest   = "InvalidAnnotation"
	EventIPOutsidePool    = "IPOutsidePool"
)

// Options tune the controller; zero values take defaults.
type Options struct {
	// LoadBalancerClass selects the Services handled: "" handles Services
	// without a class, anything else exactly that class.
	LoadBalancerClass string
	// Workers reconcile Services in parallel (default 16).
	Workers int
	// PoolStatusInterval is how often changed pool and configuration
	// status is written (default 500 ms).
	PoolStatusInterval time.Duration
	// PendingResync re-tries waiting Services as a safety net (default 30 s);
	// freed addresses and pool changes retry them at once.
	PendingResync time.Duration
	// ExternalIPsParam names the ExternalIPsAllowList the controller keeps
	// equal to the CIDRs of the pools with allowExternalIPs, for the
	// externalIPs admission policy (package allocator/externalips). Empty:
	// not maintained.
	ExternalIPsParam string
	// ConflictHold keeps an address that speakers found in use by another
	// host out of automatic choice this long after the last report of it
	// (default DefaultConflictHold).
	ConflictHold time.Duration
	// ProbeTimeout bounds how long a new address of a pool announced in
	// L2 waits for a speaker's probe before it goes into status (default
	// DefaultProbeTimeout).
	ProbeTimeout time.Duration
}

// Controller reconciles LoadBalancer Services. Build it with New; Run owns
// every goroutine.
type Controller struct {
	log      logr.Logger
	kube     kubernetes.Interface
	beacon   *client.Client
	lb       *provider.LoadBalancer
	recorder record.EventRecorder
	opts     Options
	metrics  *metrics

	queue      workqueue.TypedRateLimitingInterface[string]
	services   corelisters.ServiceLister
	namespaces corelisters.NamespaceLister
	pools      cache.Store
	config     configStores
	// statusDirty asks for pool and configuration status to be rewritten.
	statusDirty chan struct{}
	mu          sync.Mutex
	pending     map[string]bool
	warnings    map[string]map[warning]bool
	ready       chan struct{}

	// externalIPsDirty asks for the externalIPs param to be rewritten.
	externalIPsDirty chan struct{}
	// announcements feed the unannounced gauge (announced.go).
	announcements atomic.Pointer[announcementCaches]
	// conflicts are the addresses other hosts use, from the speakers'
	// reports (conflicts.go); guarded by mu.
	conflicts      map[netip.Addr]addressConflict
	conflictsDirty chan struct{}
	// probing: Service key -> its new addresses that wait for a probe,
	// with when they started waiting (probing.go); guarded by mu.
	probing map[string]map[netip.Addr]time.Time
	// annIndex holds the ServiceAnnouncements by Service.
	annIndex cache.Indexer
}

// New builds a controller. It starts nothing.
func New(log logr.Logger, kube kubernetes.Interface, beacon *client.Client, recorder record.EventRecorder, reg prometheus.Registerer, opts Options) (*Controller, error) {
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	if opts.PoolStatusInterval <= 0 {
		opts.PoolStatusInterval = 500 * time.Millisecond
	}
	if opts.PendingResync <= 0 {
		opts.PendingResync = 30 * time.Second
	}
	if opts.ConflictHold <= 0 {
		opts.ConflictHold = DefaultConflictHold
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = DefaultProbeTimeout
	}
	c := &Controller{
		log:         log,
		kube:        kube,
		beacon:      beacon,
		recorder:    recorder,
		opts:        opts,
		statusDirty: make(chan struct{}, 1),
		pending:     map[string]bool{},
		probing:     map[string]map[netip.Addr]time.Time{},
		warnings:    map[string]map[warning]bool{},
		ready:       make(chan struct{}),
	}
	c.externalIPsDirty = make(chan struct{}, 1)
	c.conflictsDirty = make(chan struct{}, 1)
	c.lb = provider.New(c.namespaceLabels)
	var err error
	if c.metrics, err = newMetrics(reg, c.lb); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	if err := register.Metrics(reg, unannouncedCollector{c}); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	return c, nil
}

// LoadBalancer returns the cloud-provider LoadBalancer the controller drives.
func (c *Controller) LoadBalancer() *provider.LoadBalancer { return c.lb }

// Ready is closed once start-up state is restored and workers run.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Run lists everything afresh, restores held addresses, then reconciles
// until ctx ends. Call it only while holding leadership.
func (c *Controller) Run(ctx context.Context) error {
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedMaxOfRateLimiter(
			workqueue.NewTypedItemExponentialFailureRateLimiter[string](50*time.Millisecond, 10*time.Second),
		),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "services"})
	defer c.announcements.Store(nil) // a replica that stops leading has no view
	w, err := c.watch()
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.queue.ShutDown() // runs before wg.Wait: it releases the workers
	w.factory.Start(ctx.Done())
	defer w.factory.Shutdown()
	for _, inf := range w.own {
		wg.Go(func() { inf.Run(ctx.Done()) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), w.synced...) {
		return nil // only ctx ending stops the wait
	}
	c.restore()
	c.startLoops(ctx, &wg, w.announcements.GetStore())
	close(c.ready)
	c.log.Info("allocator controller running", "workers", c.opts.Workers, "loadBalancerClass", c.opts.LoadBalancerClass)
	<-ctx.Done()
	return nil
}

// watches are the informers of one Run: the factory's, and the ones Run
// runs itself.
type watches struct {
	factory       informers.SharedInformerFactory
	own           []cache.SharedIndexInformer
	announcements cache.SharedIndexInformer
	synced        []cache.InformerSynced
}

// watch creates the informers, points the controller's listers and stores
// at their caches and adds the event handlers; it starts nothing.
func (c *Controller) watch() (*watches, error) {
	factory := informers.NewSharedInformerFactoryWithOptions(c.kube, 0, informers.WithTransform(slim.Controller))
	svcInf := factory.Core().V1().Services()
	nsInf := factory.Core().V1().Namespaces()
	poolInf := c.beacon.IPPoolInformer()
	c.services, c.namespaces, c.pools = svcInf.Lister(), nsInf.Lister(), poolInf.GetStore()
	annInf := c.announcementInformer(svcInf.Lister(), svcInf.Informer().HasSynced)
	if err := c.watchConflicts(annInf); err != nil {
		return nil, err
	}
	if err := c.watchProbes(annInf); err != nil {
		return nil, err
	}
	c.annIndex = annInf.GetIndexer()
	configInfs := []cache.SharedIndexInformer{c.beacon.L2AdvertisementInformer(), c.beacon.BGPPeerInformer(),
		c.beacon.BGPAdvertisementInformer(), c.beacon.BFDProfileInformer()}
	sessInf := c.beacon.BGPSessionStateInformer("")
	c.config = configStores{l2ads: configInfs[0].GetStore(), peers: configInfs[1].GetStore(),
		bgpAds: configInfs[2].GetStore(), profiles: configInfs[3].GetStore(), sessions: sessInf.GetStore()}
	synced := []cache.InformerSynced{svcInf.Informer().HasSynced, nsInf.Informer().HasSynced, poolInf.HasSynced, sessInf.HasSynced}
	for _, inf := range configInfs {
		if err := c.watchConfig(inf); err != nil {
			return nil, err
		}
		synced = append(synced, inf.HasSynced)
	}
	if err := c.watchSessions(sessInf); err != nil {
		return nil, err
	}
	if err := c.enqueueOnChanges(svcInf.Informer(), nsInf.Informer(), poolInf); err != nil {
		return nil, err
	}
	return &watches{factory: factory, own: append(configInfs, poolInf, annInf, sessInf),
		announcements: annInf, synced: synced}, nil
}

// enqueueOnChanges queues the Services to reconcile: each changed one, and
// those a namespace or pool change may affect.
func (c *Controller) enqueueOnChanges(svcInf, nsInf, poolInf cache.SharedIndexInformer) error {
	if _, err := svcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueue,
		UpdateFunc: func(_, obj any) { c.enqueue(obj) },
		DeleteFunc: c.enqueue,
	}); err != nil {
		return fmt.Errorf("service handler: %w", err)
	}
	if _, err := nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) { c.namespaceChanged(old, obj) },
	}); err != nil {
		return fmt.Errorf("namespace handler: %w", err)
	}
	if _, err := poolInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.poolsChanged() },
		UpdateFunc: func(old, obj any) { c.poolUpdated(old, obj) },
		DeleteFunc: func(any) { c.poolsChanged() },
	}); err != nil {
		return fmt.Errorf("pool handler: %w", err)
	}
	return nil
}

// startLoops starts the workers and the periodic loops in wg.
func (c *Controller) startLoops(ctx context.Context, wg *sync.WaitGroup, announcements cache.Store) {
	for range c.opts.Workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	wg.Go(func() { c.syncStatusLoop(ctx) })
	wg.Go(func() { c.conflictsLoop(ctx, announcements, c.opts.PoolStatusInterval) })
	if c.opts.ExternalIPsParam != "" {
		wg.Go(func() { c.externalIPsLoop(ctx) })
	}
	wg.Go(func() {
		wait.Until(c.retryPending, c.opts.PendingResync, ctx.Done())
	})
}

// restore loads pools and then every address Services hold, in
// lbservice.SortForRestore order, as the hosted cloud provider does. A
// Service that waits for a probe holds what its probing annotation offers
// (lbservice.OfferedIPs), as it did before the restart: it keeps the offer
// and waits a full probe timeout again, and no other Service gets those
// addresses meanwhile.
// Services of our class go first; then Services we no longer handle that
// carry the cleanup finalizer and only addresses from our pools, which we
// most likely gave out under an earlier class flag or before a type change:
// holding them lets cleanup release them and clear our status. They come
// second so that they never take an address from a Service we handle. (The
// hosted provider has no second pass: its class never changes, and the
// upstream service controller owns the finalizer there.)
func (c *Controller) restore() {
	c.lb.SetPools(c.parsePools())
	c.seedConflicts(time.Now())
	svcs, _ := c.services.List(labels.Everything())
	lbservice.SortForRestore(svcs)
	restored, stale := 0, 0
	for _, pass := range []func(*v1.Service, []netip.Addr) bool{
		func(svc *v1.Service, _ []netip.Addr) bool { return c.handles(svc) },
		func(svc *v1.Service, ips []netip.Addr) bool {
			return !c.handles(svc) && slices.Contains(svc.Finalizers, Finalizer) && c.allInPools(ips)
		},
	} {
		for _, svc := range svcs {
			ips := lbservice.OfferedIPs(svc)
			if len(ips) == 0 || !pass(svc, ips) {
				continue
			}
			if err := c.lb.Restore(svc, ips); err != nil {
				c.log.Info("address in status not restored", "service", lbservice.Key(svc), "handled", c.handles(svc), "err", err)
				continue
			}
			if c.handles(svc) {
				restored++
			} else {
				stale++
			}
		}
	}
	c.log.Info("restored addresses from Service status and offers", "services", restored, "toRelease", stale)
	for _, svc := range svcs {
		c.queue.Add(lbservice.Key(svc))
	}
	c.markStatusDirty()
	c.markExternalIPsDirty()
}

// allInPools reports whether every address lies in one of our pools. All,
// not any: a Service of another implementation that overlaps a pool by
// mistake in one family keeps its status.
func (c *Controller) allInPools(ips []netip.Addr) bool {
	for _, ip := range ips {
		if c.lb.PoolOf(ip) == "" {
			return false
		}
	}
	return true
}

func (c *Controller) enqueue(obj any) {
	k, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(k)
}

// handles reports whether the Service is a LoadBalancer of our class.
func (c *Controller) handles(svc *v1.Service) bool {
	return lbservice.Handled(svc, c.opts.LoadBalancerClass)
}

func (c *Controller) namespaceLabels(ns string) labels.Set {
	if c.namespaces == nil {
		return nil
	}
	n, err := c.namespaces.Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}

func (c *Controller) namespaceChanged(oldObj, obj any) {
	o, ok1 := oldObj.(*v1.Namespace)
	n, ok2 := obj.(*v1.Namespace)
	if !ok1 || !ok2 || labels.Equals(o.Labels, n.Labels) {
		return
	}
	svcs, _ := c.services.Services(n.Name).List(labels.Everything())
	for _, svc := range svcs {
		c.queue.Add(lbservice.Key(svc))
	}
}

func (c *Controller) poolUpdated(oldObj, obj any) {
	o, ok1 := oldObj.(*v1alpha1.IPPool)
	n, ok2 := obj.(*v1alpha1.IPPool)
	if ok1 && ok2 && o.Generation == n.Generation {
		return // only status changed (our own write)
	}
	c.poolsChanged()
}

// poolsChanged re-parses every pool and re-checks every Service: an edit can
// make held addresses invalid or free capacity for waiting Services.
func (c *Controller) poolsChanged() {
	select {
	case <-c.ready:
	default:
		return // restore() reads the pools once caches are synced
	}
	c.lb.SetPools(c.parsePools())
	svcs, _ := c.services.List(labels.Everything())
	for _, svc := range svcs {
		if c.handles(svc) {
			c.queue.Add(lbservice.Key(svc))
		}
	}
	c.markStatusDirty()
	c.markExternalIPsDirty()
}

func (c *Controller) parsePools() *config.Pools {
	objs := c.pools.List()
	items := make([]v1alpha1.IPPool, 0, len(objs))
	unusable := map[string]error{}
	for _, o := range objs {
		p, ok := o.(*v1alpha1.IPPool)
		if !ok {
			continue
		}
		// A pool reaching into loopback, multicast and the like is refused
		// as a whole, before overlaps are resolved, so that it claims
		// nothing from younger pools.
		if err := unusableBlock(p); err != nil {
			unusable[p.Name] = err
			continue
		}
		items = append(items, *p)
	}
	ps := config.ParsePools(items)
	for name, err := range unusable {
		ps.Invalid[name] = err
	}
	return ps
}

// unusableBlock explains why a pool holds addresses no Service may have.
// Blocks that do not parse are left to config.ParsePools to report.
func unusableBlock(p *v1alpha1.IPPool) error {
	for _, b := range p.Spec.Addresses {
		r, err := config.ParseBlock(string(b))
		if err != nil {
			continue
		}
		if err := allocator.CheckUsable(r); err != nil {
			return err
		}
	}
	return nil
}

func (c *Controller) markStatusDirty() {
	select {
	case c.statusDirty <- struct{}{}:
	default:
	}
}

func (c *Controller) setPending(k string, pending bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pending {
		c.pending[k] = true
	} else {
		delete(c.pending, k)
	}
	c.metrics.pending.Set(float64(len(c.pending)))
}

// retryPending re-queues every Service waiting for an address.
func (c *Controller) retryPending() {
	c.mu.Lock()
	keys := make([]string, 0, len(c.pending))
	for k := range c.pending {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		c.queue.Add(k)
	}
}

// capacityFreed is called whenever addresses return to a pool.
func (c *Controller) capacityFreed() {
	c.markStatusDirty()
	c.retryPending()
}

func (c *Controller) processNext(ctx context.Context) bool {
	k, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(k)
	start := time.Now()
	err := c.sync(ctx, k)
	c.metrics.reconcile.Observe(time.Since(start).Seconds())
	if err != nil {
		c.log.V(1).Info("sync failed, retrying", "service", k, "err", err)
		c.queue.AddRateLimited(k)
		return true
	}
	c.queue.Forget(k)
	return true
}

func (c *Controller) sync(ctx context.Context, k string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(k)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(k)
		if len(c.lb.Release(k)) > 0 {
			c.capacityFreed()
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get service %s: %w", k, err)
	}
	if !c.handles(svc) || svc.DeletionTimestamp != nil {
		return c.cleanup(ctx, svc)
	}
	return c.ensure(ctx, svc)
}

func (c *Controller) forget(k string) {
	c.setPending(k, false)
	c.mu.Lock()
	delete(c.warnings, k)
	delete(c.probing, k)
	c.mu.Unlock()
}

func (c *Controller) ensure(ctx context.Context, svc *v1.Service) error {
	k := lbservice.Key(svc)
	out, err := c.lb.Ensure(svc)
	var warnings []warning
	for _, w := range out.Warnings {
		warnings = append(warnings, warning{EventInvalidRequest, w})
	}
	if err != nil {
		// The Service keeps whatever it had; it is retried as soon as an
		// address frees up or a pool or the Service changes.
		c.metrics.failures.WithLabelValues(provider.Reason(err)).Inc()
		c.setPending(k, true)
		c.warn(svc, append(warnings, warning{EventAllocationFailed, err.Error()}))
		return nil
	}
	// Warnings explain kept-but-invalid addresses (retried when space frees
	// up) and families PreferDualStack could not get.
	c.setPending(k, len(out.Result.Warnings) > 0)
	before := lbservice.IngressIPs(svc)
	warnings = append(warnings, c.conflictWarnings(lbservice.OfferedIPs(svc), out.Result)...)
	for _, w := range out.Result.Warnings {
		reason := EventAllocationFailed
		for _, ip := range out.Result.Stale {
			if strings.Contains(w.Msg, ip.String()) {
				reason = EventIPOutsidePool
			}
		}
		warnings = append(warnings, warning{reason, w.Msg})
	}
	c.warn(svc, warnings)

	updated := svc.DeepCopy()
	if !slices.Contains(updated.Finalizers, Finalizer) {
		updated.Finalizers = append(updated.Finalizers, Finalizer)
	}
	// New addresses of pools announced in L2 go into status only once a
	// speaker has probed them: until then the speakers read them from the
	// probing annotation, and status keeps what it had.
	probe := c.probeState(k, before, out.Result, time.Now())
	if len(probe.waiting) > 0 {
		setProbing(updated, out.Result.IPs)
		if err := c.patch(ctx, svc, updated); err != nil {
			return err
		}
		if out.Result.Changed {
			c.capacityFreed()
		}
		c.queue.AddAfter(k, probe.retryIn)
		return nil
	}
	setProbing(updated, nil)
	updated.Status.LoadBalancer = *out.Status
	setAllocatedFrom(updated, c.lb.AllocatedFrom(out.Result.IPs))
	if err := c.patch(ctx, svc, updated); err != nil {
		return err
	}
	c.probed(k)
	if out.Result.Changed {
		c.capacityFreed() // a replaced address went back to its pool
	}
	if len(probe.unprobed) > 0 {
		c.log.Info("address handed out without a probe", "service", k, "ips", probe.unprobed, "timeout", c.opts.ProbeTimeout)
		c.recorder.Eventf(svc, v1.EventTypeWarning, EventAddressNotProbed,
			"No speaker reported %s probed within %s (is a node selected to announce it?); handed out unprobed", joinIPs(probe.unprobed), c.opts.ProbeTimeout)
	}
	after := out.Result.IPs
	switch {
	case slices.Equal(before, after):
		return nil
	case len(before) == 0:
		c.recorder.Eventf(svc, v1.EventTypeNormal, EventIPAllocated, "Allocated %s", c.lb.Describe(after))
	default:
		c.recorder.Eventf(svc, v1.EventTypeWarning, EventIPChanged, "Address changed from %s to %s", joinIPs(before), c.lb.Describe(after))
	}
	c.markStatusDirty()
	return nil
}

// cleanup runs for Services that are being deleted or are no longer ours:
// first the status and finalizer go, then the address returns to the pool.
func (c *Controller) cleanup(ctx context.Context, svc *v1.Service) error {
	k := lbservice.Key(svc)
	held := c.lb.Holding(k)
	w := cleanupWrites(c.handles(svc), svc, held)
	_, annotated := svc.Annotations[provider.AnnotationAllocatedFrom]
	if _, probing := svc.Annotations[lbservice.AnnotationProbing]; probing {
		annotated = true
	}
	if !w.finalizer && !w.status && !annotated && len(held) == 0 {
		c.forget(k)
		return nil
	}
	updated := svc.DeepCopy()
	if w.finalizer {
		updated.Finalizers = slices.DeleteFunc(updated.Finalizers, func(f string) bool { return f == Finalizer })
	}
	if w.status {
		updated.Status.LoadBalancer = v1.LoadBalancerStatus{}
	}
	// The annotations are ours whoever owns the Service now.
	setAllocatedFrom(updated, "")
	setProbing(updated, nil)
	if err := c.patch(ctx, svc, updated); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	c.forget(k)
	freed := c.lb.Release(k)
	if len(held) > 0 && svc.DeletionTimestamp == nil {
		c.recorder.Eventf(svc, v1.EventTypeNormal, EventIPReleased, "Released %s: the Service is no longer a LoadBalancer of this class", joinIPs(held))
	}
	if len(freed) > 0 {
		c.capacityFreed()
	}
	return nil
}

// writes says what cleanup removes from a Service.
type writes struct{ finalizer, status bool }

// cleanupWrites decides what cleanup may remove from a Service that is
// being deleted (ours is true) or that we do not handle (ours is false),
// given the addresses we hold for it.
//
// The cleanup finalizer is generic: every LoadBalancer implementation sets
// it, so it proves nothing about a Service of another class. A LoadBalancer
// Service we do not handle is touched only while we hold addresses for it
// (its class changed from ours, or it was restored from our pools), and
// then only while its status still shows just our addresses: once the other
// implementation has written its own, status and finalizer are its.
// Services that are no LoadBalancer keep the old rule, where the finalizer
// proves the status is ours: they carry no class to tell owners apart.
func cleanupWrites(ours bool, svc *v1.Service, held []netip.Addr) writes {
	hasFinalizer := slices.Contains(svc.Finalizers, Finalizer)
	hasStatus := len(svc.Status.LoadBalancer.Ingress) > 0
	if !ours && svc.Spec.Type == v1.ServiceTypeLoadBalancer {
		if len(held) == 0 {
			return writes{}
		}
		for _, ip := range lbservice.IngressIPs(svc) {
			if !slices.Contains(held, ip) {
				return writes{}
			}
		}
		if len(lbservice.IngressIPs(svc)) != len(svc.Status.LoadBalancer.Ingress) {
			return writes{} // a hostname or unparsable entry: not ours
		}
	} else if !hasFinalizer && len(held) == 0 {
		return writes{}
	}
	return writes{finalizer: hasFinalizer, status: hasStatus}
}

// setAllocatedFrom sets the allocated-from-pool annotation, or removes it
// when pools is empty.
func setAllocatedFrom(svc *v1.Service, pools string) {
	if pools == "" {
		delete(svc.Annotations, provider.AnnotationAllocatedFrom)
		return
	}
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations[provider.AnnotationAllocatedFrom] = pools
}

// patch writes finalizers, the allocated-from-pool and probing annotations
// and status in one strategic-merge patch of the status subresource (which
// accepts metadata changes), skipping no-ops.
func (c *Controller) patch(ctx context.Context, old, updated *v1.Service) error {
	a, p := provider.AnnotationAllocatedFrom, lbservice.AnnotationProbing
	if slices.Equal(old.Finalizers, updated.Finalizers) &&
		old.Annotations[a] == updated.Annotations[a] && old.Annotations[p] == updated.Annotations[p] &&
		servicehelper.LoadBalancerStatusEqual(&old.Status.LoadBalancer, &updated.Status.LoadBalancer) {
		return nil
	}
	oldJSON, err := json.Marshal(old)
	if err != nil {
		return fmt.Errorf("encode service %s: %w", lbservice.Key(old), err)
	}
	newJSON, err := json.Marshal(updated)
	if err != nil {
		return fmt.Errorf("encode service %s: %w", lbservice.Key(old), err)
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldJSON, newJSON, v1.Service{})
	if err != nil {
		return fmt.Errorf("diff service %s: %w", lbservice.Key(old), err)
	}
	c.metrics.writes.WithLabelValues("service-status").Inc()
	_, err = c.kube.CoreV1().Services(old.Namespace).Patch(ctx, old.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch service %s: %w", lbservice.Key(old), err)
	}
	return nil
}

type warning struct{ reason, msg string }

// warn records the Service's current warnings as Warning Events, skipping
// those already recorded while they stay current, so that a waiting Service
// does not flood Events on every retry.
func (c *Controller) warn(svc *v1.Service, current []warning) {
	k := lbservice.Key(svc)
	c.mu.Lock()
	prev := c.warnings[k]
	next := make(map[warning]bool, len(current))
	for _, w := range current {
		next[w] = true
	}
	if len(next) == 0 {
		delete(c.warnings, k)
	} else {
		c.warnings[k] = next
	}
	c.mu.Unlock()
	for _, w := range current {
		if !prev[w] {
			c.recorder.Event(svc, v1.EventTypeWarning, w.reason, w.msg)
		}
	}
}

func joinIPs(ips []netip.Addr) string {
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = ip.String()
	}
	return strings.Join(parts, ", ")
}
