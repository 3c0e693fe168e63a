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
}

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
	return was && !t.settled
}

// Retention is how long a dead peer that is not known is remembered. It
// must outlast any delayed packet, so that a late beat cannot revive a
// peer that left.
func Retention(deadAfter time.Duration) time.Duration {
	return max(100*deadAfter, time.Minute)
}

// prune forgets dead peers that are not known and were last heard from
// before the retention period.
func (t *Table) prune(now time.Time) bool {
	changed := false
	for name, p := range t.peers {
		if !p.Alive && !t.known[name] && now.Sub(p.LastSeen) >= Retention(t.deadAfter) {
			delete(t.peers, name)
			changed = true
		}
	}
	return changed
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
	if p.Incarnation != 0 || p.Seq != 0 {
		switch {
		case m.Incarnation < p.Incarnation && p.Alive:
			// A delayed packet of a previous process while the current one
			// lives. Once the peer is dead any incarnation is accepted, so a
			// restart with a clock that went backwards is not ignored forever.
			return false
		case m.Incarnation == p.Incarnation && m.Seq <= p.Seq:
			return false // duplicate, reordered or replayed
		}
	}
	stateChanged := false
	if m.Incarnation != p.Incarnation && p.State != nil {
		// A new process: what the old one reported no longer holds.
		p.State, stateChanged = nil, true
	}
	if m.State != nil && (p.State == nil || !p.State.Equal(*m.State)) {
		st := *m.State
		p.State, stateChanged = &st, true
	}
	p.Incarnation, p.Seq = m.Incarnation, m.Seq
	wasAlive := p.Alive
	switch m.Kind {
	case Beat:
		p.Alive, p.Left, p.LastSeen = true, false, now
	case Leave:
		p.Alive, p.Left, p.LastSeen = false, true, now
	default:
		return false
	}
	return wasAlive != p.Alive || (stateChanged && p.Alive)
}

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
	for _, p := range t.peers {
		if p.Alive && now.Sub(p.LastSeen) >= t.deadAfter {
			p.Alive, changed = false, true
			died = append(died, p.Name)
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
	for _, p := range t.peers {
		if !p.Alive {
			continue
		}
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
