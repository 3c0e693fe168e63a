package member

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// Defaults of Config.
const (
	DefaultPort      = 7946
	DefaultInterval  = 60 * time.Millisecond
	DefaultDeadAfter = 240 * time.Millisecond
	// The version 3 defaults (Config.Watchers > 0): with only k peers to
	// beat, a node can beat more often and wait longer, which rides out a
	// 100 ms stall of either side and 2% loss (see the package doc).
	DefaultWatchers       = 3
	DefaultWatchInterval  = 32 * time.Millisecond
	DefaultWatchDeadAfter = 280 * time.Millisecond
)

// Config configures a Member.
type Config struct {
	// Name is this node's name. Required.
	Name string
	// ListenAddress is the UDP address to listen on; default ":7946" (every
	// address, both families). Ignored when Conn is set.
	ListenAddress string
	// Conn, if set, is used instead of listening; Run closes it.
	Conn net.PacketConn
	// Interval between heartbeats; default DefaultInterval, or
	// DefaultWatchInterval with Watchers.
	Interval time.Duration
	// DeadAfter is how long a silent watched peer stays alive; default
	// DefaultDeadAfter, or DefaultWatchDeadAfter with Watchers. It must
	// be at least twice Interval.
	DeadAfter time.Duration
	// Key, if set, authenticates messages (HMAC-SHA256); every speaker must
	// use the same key.
	Key []byte
	// Logger receives peer transitions (V(0)) and dropped packets (V(2)).
	Logger logr.Logger
	// Metrics may be nil.
	Metrics *Metrics
	// Clock is for tests; default the real clock.
	Clock clock.WithTicker
	// Watchers selects the protocol: 0 beats every peer (version 2); k > 0
	// beats only k watchers, which tell everyone when this node goes
	// silent (version 3; see the package doc).
	Watchers int
}

// Member tracks the liveness of peer speakers. Create it with New, feed it
// peers with SetPeers, and run it with Run. Its queries are safe from any
// goroutine.
type Member struct {
	cfg   Config
	log   logr.Logger
	clock clock.WithTicker

	mu        sync.Mutex
	peerAddrs map[string]netip.AddrPort // replaced, never changed
	peersSet  chan struct{}
	suspects  []string // sorted; replaced, never changed
	suspSet   chan struct{}
	local     State // guarded by mu
	localSet  chan struct{}

	view    atomic.Pointer[view]
	changes chan struct{}
}

// view is an immutable snapshot published to readers.
type view struct {
	settled   bool
	rejoining bool
	alive     map[string]bool
	left      map[string]bool
	names     []string
	peers     []PeerState
	states    map[string]*State // nil entry: the peer does not report one
}

// New validates the configuration. It starts nothing.
func New(cfg Config) (*Member, error) {
	if cfg.Name == "" || len(cfg.Name) > maxNameLen {
		return nil, fmt.Errorf("member: node name must be 1 to %d bytes", maxNameLen)
	}
	if cfg.ListenAddress == "" {
		cfg.ListenAddress = fmt.Sprintf(":%d", DefaultPort)
	}
	switch {
	case cfg.Watchers < 0:
		return nil, fmt.Errorf("member: Watchers %d must not be negative", cfg.Watchers)
	case cfg.Interval <= 0 && cfg.Watchers > 0:
		cfg.Interval = DefaultWatchInterval
	case cfg.Interval <= 0:
		cfg.Interval = DefaultInterval
	}
	switch {
	case cfg.DeadAfter <= 0 && cfg.Watchers > 0:
		cfg.DeadAfter = DefaultWatchDeadAfter
	case cfg.DeadAfter <= 0:
		cfg.DeadAfter = DefaultDeadAfter
	}
	if cfg.DeadAfter < 2*cfg.Interval {
		return nil, fmt.Errorf("member: DeadAfter %v must be at least twice Interval %v", cfg.DeadAfter, cfg.Interval)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	m := &Member{
		cfg:       cfg,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		peerAddrs: map[string]netip.AddrPort{},
		peersSet:  make(chan struct{}, 1),
		suspSet:   make(chan struct{}, 1),
		localSet:  make(chan struct{}, 1),
		changes:   make(chan struct{}, 1),
	}
	m.view.Store(&view{alive: map[string]bool{cfg.Name: true}, names: []string{cfg.Name}, states: map[string]*State{cfg.Name: {}}})
	return m, nil
}

// SetPeers replaces the set of peers to send heartbeats to: node name →
// address (its node IP and the member port). The own name is ignored.
func (m *Member) SetPeers(peers map[string]netip.AddrPort) {
	m.mu.Lock()
	m.peerAddrs = make(map[string]netip.AddrPort, len(peers))
	for name, ap := range peers {
		if name != m.cfg.Name {
			m.peerAddrs[name] = ap
		}
	}
	m.mu.Unlock()
	select {
	case m.peersSet <- struct{}{}:
	default:
	}
}

// SetSuspects sets the nodes whose Kubernetes Node is not ready; the
// nodes among a suspect's watcher candidates probe it (Engine.SetSuspects).
func (m *Member) SetSuspects(names []string) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	m.mu.Lock()
	same := slices.Equal(names, m.suspects)
	m.suspects = names
	m.mu.Unlock()
	if same {
		return
	}
	select {
	case m.suspSet <- struct{}{}:
	default:
	}
}

// SetNoCarrier sets this node's interfaces without carrier, sent to every
// peer at once and with every heartbeat. Changes signals when it changed.
func (m *Member) SetNoCarrier(links []Link) {
	links = slices.Clone(links)
	slices.SortFunc(links, func(a, b Link) int { return strings.Compare(a.Name, b.Name) })
	m.setLocal(func(s *State) { s.NoCarrier = links })
}

// SetClaims sets the addresses this node announces that do not fail back,
// sent like SetNoCarrier's links.
func (m *Member) SetClaims(ips []netip.Addr) {
	ips = slices.Clone(ips)
	slices.SortFunc(ips, netip.Addr.Compare)
	ips = slices.Compact(ips)
	m.setLocal(func(s *State) { s.Claims = ips })
}

func (m *Member) setLocal(f func(*State)) {
	m.mu.Lock()
	next := m.local
	f(&next)
	same := next.Equal(m.local)
	m.local = next
	m.mu.Unlock()
	if same {
		return
	}
	select {
	case m.localSet <- struct{}{}:
	default:
	}
}

// State returns what a node reports about its links and claims; ok is
// false when its speaker does not report a state (an older version, or
// nothing heard from its current process yet). This node's own state is
// the last one it sent.
func (m *Member) State(name string) (st State, ok bool) {
	p := m.view.Load().states[name]
	if p == nil {
		return State{}, false
	}
	return *p, true
}

// Changes signals (coalesced) whenever Settled, the set of alive nodes or
// the State of an alive node changes. Read the new state with AliveNames,
// Alive, Settled and State.
func (m *Member) Changes() <-chan struct{} { return m.changes }

// Settled reports whether the startup grace period is over; see the
// package doc.
func (m *Member) Settled() bool { return m.view.Load().settled }

// Rejoining reports whether this node is back from a stall its peers took
// for its death and they may not know yet: it must announce nothing
// meanwhile. See Engine.Rejoining.
func (m *Member) Rejoining() bool { return m.view.Load().rejoining }

// Alive reports whether a node's speaker is alive; this node always is.
func (m *Member) Alive(name string) bool { return m.view.Load().alive[name] }

// Left reports whether a node's speaker said goodbye (a graceful stop) and
// has not been heard from since.
func (m *Member) Left(name string) bool { return m.view.Load().left[name] }

// AliveNames returns the alive nodes, this one included, sorted.
func (m *Member) AliveNames() []string { return append([]string(nil), m.view.Load().names...) }

// Peers returns the state of every tracked peer, sorted by name.
func (m *Member) Peers() []PeerState { return append([]PeerState(nil), m.view.Load().peers...) }

type received struct {
	msg Message
	at  time.Time
}

// Run listens, sends heartbeats and tracks peers until ctx is done; then it
// sends a leave message to every peer, closes the socket and returns nil.
// It returns an error if it cannot listen or if reading fails: a member
// that hears nothing would see every peer dead, so it must not go on.
func (m *Member) Run(ctx context.Context) error {
	conn := m.cfg.Conn
	if conn == nil {
		var err error
		if conn, err = (&net.ListenConfig{}).ListenPacket(ctx, "udp", m.cfg.ListenAddress); err != nil {
			return fmt.Errorf("member: listen on %s: %w", m.cfg.ListenAddress, err)
		}
	}
	e := NewEngine(EngineConfig{Name: m.cfg.Name, Interval: m.cfg.Interval, DeadAfter: m.cfg.DeadAfter, Watchers: m.cfg.Watchers}, m.clock.Now())
	l := &loop{Member: m, conn: conn, engine: e, msgs: make(chan received, 256)}
	m.log.Info("member started", "address", conn.LocalAddr().String(), "interval", m.cfg.Interval, "deadAfter", m.cfg.DeadAfter, "watchers", m.cfg.Watchers, "incarnation", e.Incarnation())

	readErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { readErr <- m.receive(ctx, conn, l.msgs) })
	defer wg.Wait()
	defer func() { _ = conn.Close() }() // unblocks receive

	ticker := m.clock.NewTicker(m.cfg.Interval)
	defer ticker.Stop()
	deadline := m.clock.NewTimer(m.cfg.DeadAfter)
	defer deadline.Stop()
	e.SetPeers(l.peerNames(), m.clock.Now())
	l.setLocal()
	l.send(e.Tick(m.clock.Now()))
	for {
		changed := false
		select {
		case <-ctx.Done():
			l.send(e.Leave())
			m.log.Info("member stopped; sent leave")
			return nil
		case err := <-readErr:
			// Without input every peer would look dead and this node would
			// take over every address: stop instead, and say goodbye. The
			// reader also stops without an error when it sees ctx done
			// before this loop does.
			l.send(e.Leave())
			if err == nil {
				m.log.Info("member stopped; sent leave")
				return nil
			}
			return fmt.Errorf("member: %w", err)
		case <-ticker.C():
			l.send(e.Tick(m.clock.Now()))
		case <-m.peersSet:
			changed = e.SetPeers(l.peerNames(), m.clock.Now())
		case <-m.suspSet:
			m.mu.Lock()
			suspects := m.suspects
			m.mu.Unlock()
			e.SetSuspects(suspects, m.clock.Now())
		case <-m.localSet:
			// Peers learn a lost carrier or a new claim now, not a beat later.
			if l.setLocal() {
				l.send(e.StateChanged(m.clock.Now()))
				changed = true
			}
		case r := <-l.msgs:
			changed = l.receive(r)
		case <-deadline.C():
		}
		if l.wake(m.clock.Now()) || changed {
			l.publish()
		}
		deadline.Stop()
		if at, ok := e.NextDeadline(); ok {
			deadline.Reset(max(at.Sub(m.clock.Now()), 0))
		}
	}
}

// loop is the IO shell of one Run around its Engine: only its goroutine
// touches it.
type loop struct {
	*Member
	conn   net.PacketConn
	engine *Engine
	msgs   chan received
}

// setLocal hands the caller's latest state to the engine and reports
// whether it changed.
func (l *loop) setLocal() bool {
	l.mu.Lock()
	st := l.local
	l.mu.Unlock()
	if !l.engine.SetLocal(st) {
		return false
	}
	if !l.engine.StateOK() {
		// Too many claims or links: peers then see no state from
		// this node and elect as older speakers do.
		l.log.Error(nil, "cannot encode state; sending version 1 only", "links", len(st.NoCarrier), "claims", len(st.Claims))
	}
	return true
}

// send sends the engine's messages.
func (l *loop) send(outs []Out) {
	if len(outs) == 0 {
		return
	}
	l.mu.Lock()
	peers := l.peerAddrs // SetPeers replaces the map, never changes it
	l.mu.Unlock()
	for _, o := range outs {
		b, err := o.Msg.Marshal(l.cfg.Key)
		if err != nil {
			l.log.Error(err, "cannot encode message", "kind", o.Msg.Kind)
			continue
		}
		n := 0
		for _, name := range o.To {
			ap, ok := peers[name]
			if !ok {
				continue // not a known node: nowhere to send to
			}
			n++
			if _, err := l.conn.WriteTo(b, net.UDPAddrFromAddrPort(ap)); err != nil {
				l.cfg.Metrics.sendError()
				l.log.V(2).Info("cannot send", "to", ap, "kind", o.Msg.Kind, "err", err)
			}
		}
		l.cfg.Metrics.sent(o.Msg.Kind, n)
	}
}

// publish makes the table's view the one readers see, and signals Changes.
func (l *loop) publish() {
	t := l.engine.Table()
	v := &view{settled: t.Settled(), rejoining: l.engine.Rejoining(), names: t.AliveNames(), peers: t.Peers()}
	own := l.engine.local
	if !l.engine.StateOK() {
		own = State{}
	}
	v.states = map[string]*State{l.cfg.Name: &own}
	v.alive = make(map[string]bool, len(v.names))
	for _, n := range v.names {
		v.alive[n] = true
	}
	v.left = map[string]bool{}
	for _, p := range v.peers {
		v.states[p.Name] = p.State
		if p.Left {
			v.left[p.Name] = true
		}
	}
	l.view.Store(v)
	l.cfg.Metrics.setAlive(len(v.names))
	select {
	case l.changes <- struct{}{}:
	default:
	}
}

func (l *loop) peerNames() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	names := make([]string, 0, len(l.peerAddrs))
	for n := range l.peerAddrs {
		names = append(names, n)
	}
	return names
}

// receive applies one received message and reports whether the view changed.
func (l *loop) receive(r received) bool {
	l.cfg.Metrics.received(r.msg.Kind)
	t := l.engine.Table()
	before, subjectBefore := t.Alive(r.msg.Name), t.Alive(r.msg.Subject.Name)
	changed, out := l.engine.Receive(r.msg, r.at)
	l.send(out)
	if after := t.Alive(r.msg.Name); before != after {
		l.log.Info("peer "+aliveWord(after), "node", r.msg.Name, "kind", r.msg.Kind, "incarnation", r.msg.Incarnation)
	}
	if r.msg.Kind == Dead && subjectBefore && !t.Alive(r.msg.Subject.Name) {
		l.log.Info("peer dead", "node", r.msg.Subject.Name, "watcher", r.msg.Name)
	}
	return changed
}

// wake does what every wake-up does at now: it forgives this process's own
// stall, reads the beats queued meanwhile, and expires silent peers (cheap,
// and robust to a missed timer). It reports whether the view changed.
func (l *loop) wake(now time.Time) bool {
	rejoining := l.engine.Rejoining()
	if gap := l.engine.Wake(now); gap > 0 {
		l.cfg.Metrics.stalled()
		l.log.V(1).Info("member loop stalled; not counting it against peers", "stall", gap)
	}
	changed := false
	if !rejoining && l.engine.Rejoining() {
		changed = true
		l.cfg.Metrics.rejoin()
		l.log.Info("back from a stall longer than the death timeout: peers took this node's addresses; announcing nothing until they know it lives", "deadAfter", l.cfg.DeadAfter)
	}
	// Beats that arrived before now count before anyone is expired: the
	// deadline and a queued beat can be ready at once after a stall.
	for drained := false; !drained; {
		select {
		case r := <-l.msgs:
			changed = l.receive(r) || changed
		default:
			drained = true
		}
	}
	rejoining = l.engine.Rejoining()
	expired, died, out := l.engine.Expire(now)
	l.send(out)
	if rejoining && !l.engine.Rejoining() {
		l.log.Info("rejoined: peers know this node lives")
	}
	for _, name := range died {
		l.log.Info("peer dead", "node", name, "after", l.cfg.DeadAfter)
	}
	return changed || expired
}

func aliveWord(alive bool) string {
	if alive {
		return "alive"
	}
	return "left"
}

// receive reads messages until the socket is closed (nil) or fails.
func (m *Member) receive(ctx context.Context, conn net.PacketConn, out chan<- received) error {
	buf := make([]byte, MaxMessageLen+1)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		msg, err := Parse(buf[:n], m.cfg.Key)
		if err != nil {
			m.cfg.Metrics.dropped()
			m.log.V(2).Info("dropped packet", "from", from, "err", err)
			continue
		}
		select {
		case out <- received{msg, m.clock.Now()}:
		case <-ctx.Done():
			return nil
		}
	}
}
