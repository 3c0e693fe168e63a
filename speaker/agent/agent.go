// Package agent is the speaker's IO shell on one node. It watches Services,
// EndpointSlices, Nodes, IPPools, L2Advertisements and, in BGP mode,
// BGPPeers, BGPAdvertisements and BFDProfiles; it tracks which speakers are
// alive (package member) and lists this node's interfaces. On every change
// it hands these facts to the planner (package plan), which decides what
// this node announces, in L2 and by BGP, and which reports and Events say
// so. The agent then applies the result: flow hand-off for taken-over
// addresses (package handoff), the ARP/NDP responders (package l2), the BGP
// speaker (package bgp), and, from goroutines of their own so that an
// unreachable API server never holds up an announcement, the
// ServiceAnnouncement and BGPSessionState reports and the Events. It never
// writes Service spec or status.
//
// The loop is level-triggered: every watched change marks the agent dirty
// and one sync plans the whole node again.
package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/register"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/handoff"
	"github.com/beaconlb/beacon/speaker/l2"
	"github.com/beaconlb/beacon/speaker/plan"
)

// Liveness reports which speakers are alive (package member).
type Liveness interface {
	Alive(node string) bool
	Settled() bool
	// Rejoining reports that this node is back from a stall its peers
	// took for its death and they may not know yet.
	Rejoining() bool
	Changes() <-chan struct{}
	SetPeers(map[string]netip.AddrPort)
	// Left reports a peer that stopped gracefully.
	Left(node string) bool
}

// Suspects is the optional part of Liveness that learns which nodes
// Kubernetes reports not ready, the fallback for a node that died with
// all its watchers (package member).
type Suspects interface {
	SetSuspects(nodes []string)
}

// Handoff programs where unknown mid-stream flows of taken-over addresses
// go (package handoff).
type Handoff interface {
	Apply([]handoff.Route) error
}

// Responder answers ARP/NDP for a set of addresses on one interface.
type Responder interface {
	SetAnnounced([]netip.Addr)
	// Announce is SetAnnounced, probing the addresses of probe that are
	// new to the set before answering for them.
	Announce(ips, probe []netip.Addr)
	// Conflicts lists the addresses other hosts use.
	Conflicts() []l2.Conflict
	// Announced lists the addresses answered for: those set, minus those
	// being probed for the first time and those a probe found in use.
	Announced() []netip.Addr
	// Reannounce repeats the gratuitous burst for every announced address.
	Reannounce()
	// Check sets the addresses probed without being announced; Checked
	// lists those whose probe passed.
	Check(ips []netip.Addr)
	Checked() []netip.Addr
}

// Links opens responders and lists interfaces (the netlink/socket edge).
type Links interface {
	// Responder returns the running responder of an interface, starting it
	// on first use.
	Responder(ctx context.Context, iface string) (Responder, error)
	// Interfaces lists this node's interfaces with their connected prefixes.
	Interfaces() ([]plan.Link, error)
	// Retain stops the responders of interfaces that links (a listing by
	// Interfaces) no longer holds, or holds made again.
	Retain(links []plan.Link)
}

// Config wires an Agent.
type Config struct {
	Node string
	// Namespace is the speaker's own namespace, where BGPPeer password
	// Secrets live.
	Namespace string
	// LoadBalancerClass as the controller's: "" = Services without a class.
	LoadBalancerClass string
	// MemberPort is where the member layer of other nodes listens.
	MemberPort uint16
	// Clients reach the API server; Clients.Informers, if set, serve the
	// informers (they wait out outages).
	Clients  cli.Clients
	Liveness Liveness
	Links    Links
	Recorder record.EventRecorder
	Log      logr.Logger
	// Registerer, if set, receives the agent's metrics.
	Registerer prometheus.Registerer
	// Dataplane, if set, is marked dirty on every watched change.
	Dataplane Dirtier
	// Forwarding is the dataplane's mode. With ModeOff the caches keep
	// only what announcing reads, and NodeportInput serves ModeOff only;
	// empty keeps what any mode reads.
	Forwarding nodeport.Mode
	// Handoff, if set, keeps connections alive when addresses move
	// between live nodes, for HandoffWindow after each takeover.
	Handoff       Handoff
	HandoffWindow time.Duration
	// BGP, if set, enables BGP mode. Nil: L2 only.
	BGP BGP
	// DrainDelay is how long a draining node sends its BGP routes with the
	// GRACEFUL_SHUTDOWN community before it withdraws them (package drain).
	DrainDelay time.Duration
	// PrefixesRefresh bounds how long a change of a BGPSessionState's
	// prefix count alone waits to be written; 0 means 5 minutes.
	PrefixesRefresh time.Duration
	// BGPReporters is how many nodes report each BGP address; 0 means
	// plan.BGPReporters. Benchmarks set it to every node for their
	// baseline.
	BGPReporters int
}

// Agent is the speaker of one node. Run owns its goroutines.
type Agent struct {
	cfg       Config
	dirty     chan struct{}
	elections prometheus.Counter
	synced    atomic.Bool // the caches synced (NodeportInput may read them)
	ready     atomic.Bool // a plan was applied (see Ready)
	// Run sets w before any goroutine that reads it starts.
	w *watches
	// Latest reports for the writers, replacing any not yet picked up.
	reportsCh  chan []plan.Report
	sessionsCh chan []plan.Session

	// Owned by the sync loop.
	state      plan.State
	peers      map[string]netip.AddrPort // member layer's peers as last set
	handoffs   *handoff.Tracker
	secrets    map[string]cachedSecret // by name, in cfg.Namespace
	drainClock drainClock

	// mu guards decisions, which Plan reads from any goroutine.
	mu        sync.Mutex
	decisions []announce.Decision

	// kube converts Services for the dataplane, reusing unchanged ones;
	// only NodeportInput (the dataplane's sync goroutine) uses it.
	kube nodeport.KubeConverter

	// conflictWarned: address -> the conflict last sent as Event.
	conflictWarned map[netip.Addr]string
	// announcing holds the Announcing Events of addresses not answered
	// for yet (being probed, or found in use): they are recorded once the
	// address is answered for, and dropped if this node stops announcing
	// it first.
	announcing map[netip.Addr]plan.Event
	// kernel follows what the node's kernel answers ARP/NDP for itself.
	kernel *kernelWatch
	// checking maps the interfaces given addresses to check at the last
	// sync to them (only sync touches it).
	checking map[string][]netip.Addr
}

// New returns an Agent; it starts nothing.
func New(cfg Config) (*Agent, error) {
	a := &Agent{cfg: cfg, dirty: make(chan struct{}, 1),
		handoffs:   handoff.NewTracker(cfg.HandoffWindow),
		secrets:    map[string]cachedSecret{},
		reportsCh:  make(chan []plan.Report, 1),
		sessionsCh: make(chan []plan.Session, 1),
		elections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "beacon_l2_election_changes_total",
			Help: "Addresses whose elected announcer changed (seen by this speaker).",
		})}
	a.conflictWarned = map[netip.Addr]string{}
	a.announcing = map[netip.Addr]plan.Event{}
	a.kernel = newKernelWatch()
	if err := register.Metrics(cfg.Registerer, a.elections, a.kernel.gauge); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return a, nil
}

// Plan returns the last L2 plan, every node's announcers (for status and
// tests).
func (a *Agent) Plan() []announce.Decision {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.decisions)
}

// Ready reports whether the speaker has applied an announcement plan: its
// caches synced and its peers had time to be heard. A rolling restart must
// wait for this, or it stops the node holding this node's addresses before
// this node has taken them back.
func (a *Agent) Ready() bool { return a.ready.Load() }

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
	w := a.newWatches()
	if err := w.onChange(a.changed); err != nil {
		return err
	}
	a.w = w

	var wg sync.WaitGroup
	defer wg.Wait()
	w.factory.Start(ctx.Done())
	defer w.factory.Shutdown()
	waits := []cache.InformerSynced{w.services.HasSynced, w.slices.HasSynced, w.nodes.HasSynced}
	for _, inf := range w.own() {
		wg.Go(func() { inf.Run(ctx.Done()) })
		waits = append(waits, inf.HasSynced)
	}
	wg.Go(func() { a.reportLoop(ctx) })
	if a.cfg.BGP != nil {
		wg.Go(func() { a.sessionReportLoop(ctx) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), waits...) {
		return nil
	}
	a.synced.Store(true)
	a.changed()
	a.cfg.Log.Info("speaker running", "node", a.cfg.Node)
	// A safety net: re-sync every few seconds even without events, so a
	// responder that failed to start is retried, and addresses that appear
	// on the node's interfaces (kube-ipvs0), which no Kubernetes event
	// announces, are found (checkKernel).
	var responderChanges <-chan struct{}
	if n, ok := a.cfg.Links.(interface{ ResponderChanges() <-chan struct{} }); ok {
		responderChanges = n.ResponderChanges()
	}
	resync := time.NewTicker(5 * time.Second)
	defer resync.Stop()
	a.markDirty()
	for {
		select {
		case <-ctx.Done():
		case <-a.dirty:
		case <-a.cfg.Liveness.Changes():
		case <-responderChanges:
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
	if a.drainClock.wake != nil {
		a.drainClock.wake.Stop()
	}
	if a.cfg.Handoff != nil {
		if err := a.cfg.Handoff.Apply(nil); err != nil {
			a.cfg.Log.Error(err, "cannot clear hand-offs on stop")
		}
	}
}
