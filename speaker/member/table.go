package member

import (
	"sort"
	"time"
)

// PeerState is what the table knows about one peer.
type PeerState struct {
	Name  string
	Alive bool
	// Left is true when the peer's last news was a graceful leave.
	Left bool
	// LastSeen is when its last accepted message arrived; zero if never.
	LastSeen    time.Time
	Incarnation uint64
	Seq         uint64
	// State is the peer's last reported State; nil until a version 2
	// message of its current incarnation arrived (an older speaker never
	// sends one).
	State *State
	// V3 is true once a version 3 message of its current incarnation
	// arrived: it then beats only the peers it chose as watchers.
	V3 bool
	// Watched is true when the peer expects this node to watch it: every
	// peer of an older version, and a version 3 peer whose last beat had
	// the watch flag. Only a watched peer's silence makes it dead.
	Watched bool
}

// emptyState is the State of every peer that reports no links and no
// claims. Readers never change a peer's State.
var emptyState = &State{}

// Table is the pure liveness state machine: it is fed received messages
// and the time, and answers who is alive. It does no IO and is not safe for
// concurrent use.
type Table struct {
	self      string
	deadAfter time.Duration
	settleAt  time.Time
	settled   bool
	known     map[string]bool
	peers     map[string]*PeerState
	// expiring indexes the peers whose silence makes them dead, so that
	// Tick and NextDeadline cost the watched peers, not all of them.
	expiring map[string]*PeerState
	// pruneAt is when prune has work; zero when unknown.
	pruneAt time.Time
}

// NewTable returns the table of node self, started at now. A peer is dead
// once deadAfter has passed since its last message.
func NewTable(self string, deadAfter time.Duration, now time.Time) *Table {
	return &Table{
		self:      self,
		deadAfter: deadAfter,
		settleAt:  now.Add(deadAfter),
		known:     map[string]bool{},
		peers:     map[string]*PeerState{},
		expiring:  map[string]*PeerState{},
	}
}

// SetPeers sets the names of the peers the caller knows about (from Node
// objects). Messages from other names are still tracked, because a new
// node's beats may arrive before its Node object does; such entries are
// forgotten once they have been dead for Retention(deadAfter).
//
// A name never heard from makes the table unsettled again for deadAfter:
// until then its silence means "not heard yet", not "dead". Without this,
// a speaker that learns its peers after its own settling time would think
// them all dead and claim every address.
// It reports whether the table became unsettled.
func (t *Table) SetPeers(names []string, now time.Time) bool {
	was := t.settled
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
		if !t.known[n] && t.peers[n] == nil && n != t.self {
			t.settled = false
			if at := now.Add(t.deadAfter); at.After(t.settleAt) {
				t.settleAt = at
			}
		}
	}
	t.known = known
	t.pruneAt = time.Time{}
	return was && !t.settled
}

// Hold keeps an unsettled table unsettled until at least at.
func (t *Table) Hold(at time.Time) {
	if !t.settled && at.After(t.settleAt) {
		t.settleAt = at
	}
}

// Retention is how long a dead peer that is not known is remembered. It
// must outlast any delayed packet, so that a late beat cannot revive a
// peer that left.
func Retention(deadAfter time.Duration) time.Duration {
	return max(100*deadAfter, time.Minute)
}

// prune forgets dead peers that are not known and were last heard from
// before the retention period.
func (t *Table) prune(now time.Time) {
	if now.Before(t.pruneAt) {
		return
	}
	t.pruneAt = now.Add(Retention(t.deadAfter))
	for name, p := range t.peers {
		if p.Alive || t.known[name] {
			continue
		}
		if at := p.LastSeen.Add(Retention(t.deadAfter)); !now.Before(at) {
			delete(t.peers, name)
		} else if at.Before(t.pruneAt) {
			t.pruneAt = at
		}
	}
}

// track keeps p's place in the expiring index, and schedules pruning when
// p is dead.
func (t *Table) track(p *PeerState) {
	if p.expires() {
		t.expiring[p.Name] = p
	} else {
		delete(t.expiring, p.Name)
	}
	if !p.Alive {
		t.pruneAt = time.Time{}
	}
}

// Receive applies a message received at now and reports whether the view
// changed (a peer became alive or dead).
func (t *Table) Receive(m Message, now time.Time) bool {
	if m.Name == t.self || m.Name == "" {
		return false
	}
	p := t.peers[m.Name]
	if p == nil {
		p = &PeerState{Name: m.Name}
		t.peers[m.Name] = p
	}
	defer t.track(p)
	if p.Incarnation != 0 || p.Seq != 0 {
		switch {
		case m.Incarnation < p.Incarnation && p.Alive:
			// A delayed packet of a previous process while the current one
			// lives. Once the peer is dead any incarnation is accepted, so a
			// restart with a clock that went backwards is not ignored forever.
			return false
		case m.Incarnation == p.Incarnation && m.Seq <= p.Seq:
			// Duplicate, reordered or replayed. A version 3 sender sends
			// version 3 first and older versions after it; when they
			// arrive the other way round, the version 3 message still
			// tells that the sender speaks it, and whether to watch it.
			// Otherwise this node would go on expecting older beats that
			// the sender stops once it hears version 3 back.
			if m.V3 && !p.V3 && m.Kind == Beat {
				p.V3, p.Watched = true, m.Watch
			}
			return false
		}
	}
	stateChanged := false
	if m.Incarnation != p.Incarnation {
		// A new process: what the old one reported no longer holds.
		if p.State != nil {
			p.State, stateChanged = nil, true
		}
		p.V3, p.Watched = false, false
	}
	switch {
	case m.Kind == Dead:
		p.V3 = true // a sign of life that leaves watching as it was
	case m.V3:
		p.V3, p.Watched = true, m.Watch
	case !p.V3:
		// An older speaker beats every peer. A version 3 one sends older
		// versions too only until it hears version 3 back, so once it
		// was heard speaking version 3 they do not make it watched.
		p.Watched = true
	}
	if m.State != nil && (p.State == nil || !p.State.Equal(*m.State)) {
		st := *m.State
		if st.Equal(State{}) {
			p.State = emptyState // shared: thousands of peers report nothing
		} else {
			p.State = &st
		}
		stateChanged = true
	}
	p.Incarnation, p.Seq = m.Incarnation, m.Seq
	wasAlive := p.Alive
	switch m.Kind {
	case Beat, Dead:
		p.Alive, p.Left, p.LastSeen = true, false, now
	case Leave:
		p.Alive, p.Left, p.LastSeen = false, true, now
	default:
		return false
	}
	return wasAlive != p.Alive || (stateChanged && p.Alive)
}

// ReceiveDead applies a watcher's notice that a peer went silent, and
// reports whether the view changed. A notice about an older process than
// the one known is stale. So is one that predates what this node heard
// from the peer within deadAfter: the peer spoke after the watcher's last
// news, and if it is dead after all, its watchers' next notice says so.
func (t *Table) ReceiveDead(s Subject, now time.Time) bool {
	p := t.peers[s.Name]
	if s.Name == t.self || p == nil || !p.Alive || s.Incarnation < p.Incarnation {
		return false
	}
	if s.Incarnation == p.Incarnation && s.Seq < p.Seq && now.Sub(p.LastSeen) < t.deadAfter {
		return false
	}
	p.Alive = false
	t.track(p)
	return true
}

// expires reports whether a peer's silence makes it dead.
func (p *PeerState) expires() bool { return p.Alive && (p.Watched || !p.V3) }

// Stalled tells the table that its caller did not run for d (a
// scheduling stall of this process, not silence on the network): beats
// that arrived meanwhile are still queued unread, so d does not count
// towards any alive peer's silence. Without this, a busy node declares
// every peer dead after each stall longer than deadAfter, and addresses
// move for nothing.
func (t *Table) Stalled(d time.Duration) {
	if d <= 0 {
		return
	}
	for _, p := range t.peers {
		if p.Alive {
			p.LastSeen = p.LastSeen.Add(d)
		}
	}
}

// Tick expires peers silent for deadAfter, and settles the table once
// deadAfter has passed since it started. It reports whether the view
// changed, and which peers it found dead.
func (t *Table) Tick(now time.Time) (changed bool, died []string) {
	if !t.settled && !now.Before(t.settleAt) {
		t.settled, changed = true, true
	}
	for _, p := range t.expiring {
		if now.Sub(p.LastSeen) >= t.deadAfter {
			p.Alive, changed = false, true
			died = append(died, p.Name)
			t.track(p)
		}
	}
	// Forgetting a dead peer does not change who is alive.
	t.prune(now)
	sort.Strings(died)
	return changed, died
}

// NextDeadline returns when Tick may next change the view: the settling
// time or the earliest expiry of an alive peer. ok is false when nothing is
// pending.
func (t *Table) NextDeadline() (at time.Time, ok bool) {
	if !t.settled {
		at, ok = t.settleAt, true
	}
	for _, p := range t.expiring {
		if d := p.LastSeen.Add(t.deadAfter); !ok || d.Before(at) {
			at, ok = d, true
		}
	}
	return at, ok
}

// SpeaksState reports whether the named peer's current process sends
// version 2 messages.
func (t *Table) SpeaksState(name string) bool {
	p := t.peers[name]
	return p != nil && p.State != nil
}

// Peer returns what the table knows about a peer; nil if nothing.
// The result must not be modified.
func (t *Table) Peer(name string) *PeerState { return t.peers[name] }

// Settled reports whether deadAfter has passed since the start, after which
// a silent peer is really dead rather than not heard from yet.
func (t *Table) Settled() bool { return t.settled }

// Alive reports whether the named node is alive. The table's own node is
// always alive.
func (t *Table) Alive(name string) bool {
	if name == t.self {
		return true
	}
	p := t.peers[name]
	return p != nil && p.Alive
}

// AliveNames returns the alive nodes, including the table's own, sorted.
func (t *Table) AliveNames() []string {
	out := []string{t.self}
	for name, p := range t.peers {
		if p.Alive {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Peers returns a copy of every tracked peer, sorted by name.
func (t *Table) Peers() []PeerState {
	out := make([]PeerState, 0, len(t.peers))
	for _, p := range t.peers {
		out = append(out, *p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
