// Package agent is the speaker's IO shell on one node: it watches Services,
// EndpointSlices, Nodes, IPPools and L2Advertisements, tracks which speakers
// are alive (package member), asks the pure planner (package announce) who
// announces each address, and drives this node's ARP/NDP responders
// (package l2). It never writes Service spec or status; it records an Event
// when it starts (Announcing) and stops (Withdrawn) announcing an address.
//
// The loop is level-triggered: every watched change marks the agent dirty
// and one sync recomputes the whole plan.
package agent

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// EventAnnouncing is the reason of the Event a speaker records on a Service
// when it starts announcing one of its addresses.
const EventAnnouncing = "Announcing"

// Liveness reports which speakers are alive (package member).
type Liveness interface {
	Alive(node string) bool
	Settled() bool
	Changes() <-chan struct{}
	SetPeers(map[string]netip.AddrPort)
	// Left reports a peer that stopped gracefully.
	Left(node string) bool
}

// Handoff programs where unknown mid-stream flows of taken-over addresses
// go (package handoff).
type Handoff interface {
	Apply([]handoff.Route) error
}

// Responder answers ARP/NDP for a set of addresses on one interface.
type Responder interface {
	SetAnnounced([]netip.Addr)
	// Reannounce repeats the gratuitous burst for every announced address.
	Reannounce()
}

// Links opens responders and finds interfaces (the netlink/socket edge).
type Links interface {
	// Responder returns the running responder of an interface, starting it
	// on first use.
	Responder(ctx context.Context, iface string) (Responder, error)
	// OnLink returns the interfaces whose connected prefixes contain ip.
	OnLink(ip netip.Addr) ([]string, error)
	// Exists reports whether the interface exists.
	Exists(iface string) bool
}

// Config wires an Agent.
type Config struct {
	Node   string
	Kube   kubernetes.Interface
	Beacon *client.Client
	// InformerKube and InformerBeacon, if set, serve the informers instead
	// of Kube and Beacon (cli.Clients.Informers: they wait out outages).
	InformerKube   kubernetes.Interface
	InformerBeacon *client.Client
	Liveness       Liveness
	Links          Links
	Recorder       record.EventRecorder
	Log            logr.Logger
	MemberPort     uint16
	// LoadBalancerClass as the controller's: "" = Services without a class.
	LoadBalancerClass string
	// Registerer, if set, receives the agent's metrics.
	Registerer prometheus.Registerer
	// Dataplane, if set, is marked dirty on every watched change.
	Dataplane Dirtier
	// Handoff, if set, keeps connections alive when addresses move
	// between live nodes, for HandoffWindow after each takeover.
	Handoff       Handoff
	HandoffWindow time.Duration
	// BGP, if set, enables BGP mode: the agent watches BGPPeers,
	// BGPAdvertisements and BFDProfiles and drives it. Nil: L2 only.
	BGP BGP
	// Namespace is the speaker's own namespace, where BGPPeer password
	// Secrets live.
	Namespace string
	// DrainDelay is how long a draining node sends its BGP routes with the
	// GRACEFUL_SHUTDOWN community before it withdraws them (package drain).
	DrainDelay time.Duration
}

// Agent is the speaker of one node. Run owns its goroutines.
type Agent struct {
	cfg   Config
	dirty chan struct{}

	services  cache.Indexer
	slices    cache.Indexer
	nodes     cache.Indexer
	pools     cache.Store
	l2ads     cache.Store
	reports   cache.Store
	peers     map[string]netip.AddrPort
	alive     map[string]bool
	elections prometheus.Counter
	synced    atomic.Bool
	ready     atomic.Bool       // a plan was applied (see Ready)
	l2warned  map[string]string // L2Advertisement key -> last problem sent as Event
	reportsCh chan map[string]*report
	announced map[netip.Addr]string // address -> interface list, as last applied
	mu        sync.Mutex
	plan      []announce.Decision
	planned   bool // a plan was applied by this process
	handoffs  *handoff.Tracker
	bgp       *bgpState // nil without BGP
	drainSt   drainState
	drainSeen map[string]time.Time // draining peers -> when first seen (nil before the first sync)
	// kube converts Services for the dataplane, reusing unchanged ones;
	// only NodeportInput (the dataplane's sync goroutine) uses it.
	kube nodeport.KubeConverter
}

// New returns an Agent; it starts nothing.
func New(cfg Config) *Agent {
	a := &Agent{cfg: cfg, dirty: make(chan struct{}, 1), announced: map[netip.Addr]string{}, l2warned: map[string]string{},
		handoffs:  handoff.NewTracker(cfg.HandoffWindow),
		reportsCh: make(chan map[string]*report, 1),
		elections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beacon_l2_election_changes_total",
			Help: "Addresses whose elected announcer changed (seen by this speaker).",
		})}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(a.elections)
	}
	if cfg.BGP != nil {
		a.bgp = newBGPState()
	}
	return a
}

// Plan returns the last computed plan (for status and tests).
func (a *Agent) Plan() []announce.Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.plan)
}

func (a *Agent) changed() {
	a.markDirty()
	if a.cfg.Dataplane != nil && a.synced.Load() {
		a.cfg.Dataplane.MarkDirty()
	}
}

func (a *Agent) markDirty() {
	select {
	case a.dirty <- struct{}{}:
	default:
	}
}

// Run watches and announces until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(cmp.Or(a.cfg.InformerKube, a.cfg.Kube), 0)
	svcInf := factory.Core().V1().Services().Informer()
	sliceInf := factory.Discovery().V1().EndpointSlices().Informer()
	nodeInf := factory.Core().V1().Nodes().Informer()
	b := cmp.Or(a.cfg.InformerBeacon, a.cfg.Beacon)
	poolInf := b.IPPoolInformer()
	l2Inf := b.L2AdvertisementInformer()
	reportInf := b.ServiceAnnouncementInformer(a.cfg.Node)
	mark := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { a.changed() },
		UpdateFunc: func(any, any) { a.changed() },
		DeleteFunc: func(any) { a.changed() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf, sliceInf, nodeInf, poolInf, l2Inf} {
		if _, err := inf.AddEventHandler(mark); err != nil {
			return fmt.Errorf("event handler: %w", err)
		}
	}
	if err := sliceInf.AddIndexers(cache.Indexers{byService: sliceServiceIndex}); err != nil {
		return fmt.Errorf("slice index: %w", err)
	}
	a.services, a.slices, a.nodes = svcInf.GetIndexer(), sliceInf.GetIndexer(), nodeInf.GetIndexer()
	a.pools, a.l2ads, a.reports = poolInf.GetStore(), l2Inf.GetStore(), reportInf.GetStore()
	own := []cache.SharedIndexInformer{poolInf, l2Inf, reportInf}
	if a.bgp != nil {
		infs := a.bgpInformers()
		for _, inf := range infs[:3] { // not the session reports
			if _, err := inf.AddEventHandler(mark); err != nil {
				return fmt.Errorf("event handler: %w", err)
			}
		}
		own = append(own, infs...)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	waits := []cache.InformerSynced{svcInf.HasSynced, sliceInf.HasSynced, nodeInf.HasSynced}
	for _, inf := range own {
		wg.Go(func() { inf.Run(ctx.Done()) })
		waits = append(waits, inf.HasSynced)
	}
	wg.Go(func() { a.reportLoop(ctx) })
	if a.bgp != nil {
		wg.Go(func() { a.sessionReportLoop(ctx) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), waits...) {
		return nil
	}
	a.synced.Store(true)
	a.changed()
	a.cfg.Log.Info("speaker running", "node", a.cfg.Node)
	// A safety net: re-sync every few seconds even without events, so a
	// responder that failed to start is retried.
	resync := time.NewTicker(5 * time.Second)
	defer resync.Stop()
	a.markDirty()
	for {
		select {
		case <-ctx.Done():
		case <-a.dirty:
		case <-a.cfg.Liveness.Changes():
		case <-resync.C:
		}
		// select picks at random among ready cases: a stopping speaker
		// must not sync again, or it would announce (and send gratuitous
		// ARP for) addresses its peers are taking over.
		if ctx.Err() != nil {
			a.stop()
			return nil
		}
		if err := a.sync(ctx); err != nil {
			a.cfg.Log.Error(err, "sync")
		}
	}
}

// stop runs when the speaker stops. Responders stop with ctx and the
// member layer tells peers this node leaves, so they take over at once. A
// stopped node announces nothing, so it hands nothing off either: the next
// announcer may hand flows to this node, and they must not bounce back.
func (a *Agent) stop() {
	if a.cfg.Handoff != nil {
		if err := a.cfg.Handoff.Apply(nil); err != nil {
			a.cfg.Log.Error(err, "cannot clear hand-offs on stop")
		}
	}
}

// Ready reports whether the speaker has applied an announcement plan: its
// caches synced and its peers had time to be heard. A rolling restart must
// wait for this, or it stops the node holding this node's addresses before
// this node has taken them back.
func (a *Agent) Ready() bool { return a.ready.Load() }

const byService = "service"

func sliceServiceIndex(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := s.Labels[discoveryv1.LabelServiceName]
	if name == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + name}, nil
}

func (a *Agent) handles(svc *v1.Service) bool {
	return lbservice.Handled(svc, a.cfg.LoadBalancerClass)
}

// input snapshots the caches into the planner's plain data.
func (a *Agent) input() (announce.Input, map[string]*v1.Service) {
	var in announce.Input
	peers := map[string]netip.AddrPort{}
	for _, o := range a.nodes.List() {
		n := o.(*v1.Node)
		in.Nodes = append(in.Nodes, election.Node{
			Name:               n.Name,
			Labels:             n.Labels,
			NetworkUnavailable: nodeCondition(n, v1.NodeNetworkUnavailable),
			Alive:              n.Name == a.cfg.Node || a.cfg.Liveness.Alive(n.Name),
		})
		// Heartbeats go to the node's IPv4 InternalIP, else its IPv6 one.
		ip, ok := internalIP(n, true)
		if !ok {
			ip, ok = internalIP(n, false)
		}
		if ok && n.Name != a.cfg.Node {
			peers[n.Name] = netip.AddrPortFrom(ip, a.cfg.MemberPort)
		}
	}
	a.cfg.Liveness.SetPeers(peers)
	a.peers = peers

	var poolObjs []v1alpha1.IPPool
	for _, o := range a.pools.List() {
		poolObjs = append(poolObjs, *o.(*v1alpha1.IPPool))
	}
	in.Pools = config.ParsePools(poolObjs)
	var adObjs []v1alpha1.L2Advertisement
	for _, o := range a.l2ads.List() {
		adObjs = append(adObjs, *o.(*v1alpha1.L2Advertisement))
	}
	in.L2 = config.ParseL2Advertisements(adObjs, in.Pools)
	a.reportL2Config(in.L2)

	svcs := map[string]*v1.Service{}
	for _, o := range a.services.List() {
		svc := o.(*v1.Service)
		ips := lbservice.IngressIPs(svc)
		if !a.handles(svc) || len(ips) == 0 {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		svcs[key] = svc
		in.Services = append(in.Services, announce.Service{
			Key:            key,
			IPs:            ips,
			Local:          svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
			ReadyEndpoints: a.readyEndpoints(key),
		})
	}
	return in, svcs
}

// readyEndpoints counts ready endpoints per node over the Service's slices.
func (a *Agent) readyEndpoints(key string) map[string]int {
	objs, _ := a.slices.ByIndex(byService, key)
	out := map[string]int{}
	for _, o := range objs {
		for _, ep := range o.(*discoveryv1.EndpointSlice).Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			out[*ep.NodeName]++
		}
	}
	return out
}

func (a *Agent) sync(ctx context.Context) error {
	before := a.peers
	in, svcs := a.input()
	// BGP needs no election: every eligible node announces itself, so it
	// does not wait for the member layer.
	var self *v1.Node
	if o, ok, _ := a.nodes.GetByKey(a.cfg.Node); ok {
		self = o.(*v1.Node)
	}
	phase := a.drainPhase(self)
	var bgpReports map[string]*report
	if a.bgp != nil {
		bgpReports = a.syncBGP(ctx, in, svcs, self, phase)
	}
	if !maps.Equal(before, a.peers) && hasNew(before, a.peers) {
		// A peer never heard from: the member layer needs a moment before
		// its silence means anything; it signals Changes when settled.
		return nil
	}
	if !a.cfg.Liveness.Settled() {
		// Until peers have had a chance to be heard, every peer looks dead
		// and this node would claim every address.
		return nil
	}
	plan := announce.Plan(in)
	a.mu.Lock()
	a.elections.Add(float64(changedAnnouncers(a.plan, plan)))
	prev, planned := a.plan, a.planned
	a.plan, a.planned = plan, true
	a.mu.Unlock()
	// A node that comes back (a healed partition, a restarted speaker)
	// may have answered for our addresses meanwhile, and clients may still
	// point at it.
	rejoined := map[string]bool{}
	alive := map[string]bool{}
	for _, n := range in.Nodes {
		alive[n.Name] = n.Alive
		if n.Alive && a.alive != nil && !a.alive[n.Name] {
			rejoined[n.Name] = true
		}
	}
	// Hand-off goes in before any announcement: clients move at once.
	var errs []string
	if err := a.applyHandoff(prev, planned, plan, in.Nodes, rejoined, a.drainHandoffs(in.Nodes, time.Now())); err != nil {
		errs = append(errs, err.Error())
	}

	perIface := map[string][]netip.Addr{}
	now := map[netip.Addr]string{}
	reports := map[string]*report{}
	for _, d := range announce.For(a.cfg.Node, plan) {
		ifaces, err := a.interfaces(d)
		if err != nil || len(ifaces) == 0 {
			errs = append(errs, fmt.Sprintf("%s: no interface to announce on (%v)", d.IP, err))
			continue
		}
		r := reports[d.Service]
		if r == nil {
			ns, name, _ := strings.Cut(d.Service, "/")
			r = &report{namespace: ns, service: name}
			reports[d.Service] = r
		}
		r.addresses = append(r.addresses, d.IP)
		for _, i := range ifaces {
			if !slices.Contains(r.interfaces, i) {
				r.interfaces = append(r.interfaces, i)
			}
		}
		for _, i := range ifaces {
			perIface[i] = append(perIface[i], d.IP)
		}
		now[d.IP] = strings.Join(ifaces, ",")
		if a.announced[d.IP] != now[d.IP] {
			if svc := svcs[d.Service]; svc != nil && a.cfg.Recorder != nil {
				a.cfg.Recorder.Eventf(svc, v1.EventTypeNormal, EventAnnouncing,
					"Announcing %s from node %s via L2 (interface %s)", d.IP, a.cfg.Node, now[d.IP])
			}
		}
	}
	a.recordWithdrawn(withdrawnL2(in, a.cfg.Node, prev, plan, a.announced, now), v1alpha1.ViaL2)
	// Clients that a returning node drew away come back with our
	// gratuitous announcements, repeated.
	a.alive = alive
	// Responders that announced something before but nothing now are
	// emptied; new ones are started.
	for _, iface := range a.knownIfaces(perIface) {
		r, err := a.cfg.Links.Responder(ctx, iface)
		if err != nil {
			errs = append(errs, fmt.Sprintf("responder on %s: %v", iface, err))
			continue
		}
		ips := perIface[iface]
		sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
		r.SetAnnounced(ips)
		if len(rejoined) > 0 {
			r.Reannounce()
		}
	}
	a.announced = now
	a.ready.Store(true)
	for k, r := range bgpReports {
		reports["bgp:"+k] = r
	}
	// Reports are written by their own goroutine: an unreachable API server
	// must never hold up an announcement.
	a.wantReports(reports)
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// knownIfaces lists the interfaces to set: those announcing now and those
// that announced at the last sync.
func (a *Agent) knownIfaces(now map[string][]netip.Addr) []string {
	set := map[string]bool{}
	for i := range now {
		set[i] = true
	}
	for _, list := range a.announced {
		for _, i := range strings.Split(list, ",") {
			set[i] = true
		}
	}
	out := make([]string, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	sort.Strings(out)
	return out
}

// interfaces resolves where an address is announced: the advertisement's
// named interfaces that exist, or, when any interface is allowed, those on
// whose connected subnet the address lies.
func (a *Agent) interfaces(d announce.Decision) ([]string, error) {
	if d.Interfaces.All {
		return a.cfg.Links.OnLink(d.IP)
	}
	var out []string
	for _, n := range d.Interfaces.Names {
		if a.cfg.Links.Exists(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// changedAnnouncers counts addresses announced before and now by different
// nodes (appearing and vanishing addresses do not count).
func changedAnnouncers(old, cur []announce.Decision) int {
	prev := make(map[netip.Addr]string, len(old))
	for _, d := range old {
		prev[d.IP] = d.Node
	}
	n := 0
	for _, d := range cur {
		if p, ok := prev[d.IP]; ok && p != d.Node {
			n++
		}
	}
	return n
}

func hasNew(before, after map[string]netip.AddrPort) bool {
	for n := range after {
		if _, ok := before[n]; !ok {
			return true
		}
	}
	return false
}

func nodeCondition(n *v1.Node, t v1.NodeConditionType) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// internalIP returns the node's first InternalIP of one family.
func internalIP(n *v1.Node, v4 bool) (netip.Addr, bool) {
	for _, ad := range n.Status.Addresses {
		if ad.Type != v1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(ad.Address); err == nil && ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
