package member

import (
	"iter"
	"math"
	"slices"
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

// peer is a table entry. A speaker holds one per node of the cluster, so
// it is kept small: the name lives in the sorted list of known peers (or
// as the key of the others), times are offsets from the table's start,
// which keeps the monotonic clock, and the booleans are flags.
type peer struct {
	// seen is when the last accepted message arrived, since Table.start;
	// never when none did.
	seen        time.Duration
	incarnation uint64
	seq         uint64
	state       *State
	flags       uint8
}

const never = time.Duration(math.MinInt64)

const (
	fTracked uint8 = 1 << iota // heard of; a known peer's entry exists before
	fAlive
	fLeft
	fV3
	fWatched
	fProbed // asked to answer within deadAfter (Probe)
)

func (p *peer) is(f uint8) bool { return p.flags&f != 0 }

func (p *peer) set(f uint8, on bool) {
	if on {
		p.flags |= f
	} else {
		p.flags &^= f
	}
}

// Table is the pure liveness state machine: it is fed received messages
// and the time, and answers who is alive. It does no IO and is not safe for
// concurrent use.
type Table struct {
	self      string
	deadAfter time.Duration
	start     time.Time
	settleAt  time.Time
	settled   bool
	// names are the known peers, sorted, and known their entries.
	names []string
	known []peer
	// others are the peers heard from that are not known.
	others map[string]*peer
	// expiring indexes the peers whose silence makes them dead, so that
	// Tick and NextDeadline cost the watched peers, not all of them.
	expiring map[*peer]string
	// pruneAt is when prune has work; zero when unknown.
	pruneAt time.Time
}

// NewTable returns the table of node self, started at now. A peer is dead
// once deadAfter has passed since its last message.
func NewTable(self string, deadAfter time.Duration, now time.Time) *Table {
	return &Table{
		self:      self,
		deadAfter: deadAfter,
		start:     now,
		settleAt:  now.Add(deadAfter),
		others:    map[string]*peer{},
		expiring:  map[*peer]string{},
	}
}

// lookup returns the entry of a tracked peer; nil if none.
func (t *Table) lookup(name string) *peer {
	if i, ok := slices.BinarySearch(t.names, name); ok {
		if p := &t.known[i]; p.is(fTracked) {
			return p
		}
		return nil
	}
	return t.others[name]
}

// knownAt returns the entry of the i-th known peer (in the order of the
// names given to SetPeers, when they were sorted), so that a caller
// iterating over them avoids a search each; nil if it is not tracked.
func (t *Table) knownAt(i int) *peer {
	if p := &t.known[i]; p.is(fTracked) {
		return p
	}
	return nil
}

// entry returns the entry of a peer, tracking it from now on.
func (t *Table) entry(name string) *peer {
	if i, ok := slices.BinarySearch(t.names, name); ok {
		p := &t.known[i]
		if !p.is(fTracked) {
			*p = peer{seen: never, flags: fTracked}
		}
		return p
	}
	p := t.others[name]
	if p == nil {
		p = &peer{seen: never, flags: fTracked}
		t.others[name] = p
	}
	return p
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
//
// The table keeps names when they are sorted and free of duplicates; the
// caller must not modify them afterwards.
func (t *Table) SetPeers(names []string, now time.Time) bool {
	was := t.settled
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		names = slices.Compact(slices.Sorted(slices.Values(names)))
	}
	known := make([]peer, len(names))
	for i, n := range names {
		j, wasKnown := slices.BinarySearch(t.names, n)
		if wasKnown {
			known[i] = t.known[j]
		} else if p := t.others[n]; p != nil {
			known[i] = *p
			delete(t.others, n)
		}
		if !wasKnown && !known[i].is(fTracked) && n != t.self {
			t.settled = false
			if at := now.Add(t.deadAfter); at.After(t.settleAt) {
				t.settleAt = at
			}
		}
	}
	for j, n := range t.names {
		if _, ok := slices.BinarySearch(names, n); !ok && t.known[j].is(fTracked) {
			p := t.known[j]
			t.others[n] = &p
		}
	}
	t.names, t.known = names, known
	clear(t.expiring)
	for i := range t.known {
		t.track(t.names[i], &t.known[i])
	}
	for n, p := range t.others {
		t.track(n, p)
	}
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
	for name, p := range t.others {
		if p.is(fAlive) {
			continue
		}
		if p.seen == never {
			delete(t.others, name)
		} else if at := t.start.Add(p.seen + Retention(t.deadAfter)); !now.Before(at) {
			delete(t.others, name)
		} else if at.Before(t.pruneAt) {
			t.pruneAt = at
		}
	}
}

// track keeps p's place in the expiring index, and schedules pruning when
// p is dead.
func (t *Table) track(name string, p *peer) {
	if !p.is(fTracked) {
		return
	}
	if p.expires() {
		t.expiring[p] = name
	} else {
		delete(t.expiring, p)
	}
	if !p.is(fAlive) {
		t.pruneAt = time.Time{}
	}
}

// Receive applies a message received at now and reports whether the view
// changed (a peer became alive or dead).
func (t *Table) Receive(m Message, now time.Time) bool {
	if m.Name == t.self || m.Name == "" {
		return false
	}
	p := t.entry(m.Name)
	defer t.track(m.Name, p)
	if p.incarnation != 0 || p.seq != 0 {
		switch {
		case m.Incarnation < p.incarnation && p.is(fAlive):
			// A delayed packet of a previous process while the current one
			// lives. Once the peer is dead any incarnation is accepted, so a
			// restart with a clock that went backwards is not ignored forever.
			return false
		case m.Incarnation == p.incarnation && m.Seq <= p.seq:
			// Duplicate, reordered or replayed. A version 3 sender sends
			// version 3 first and older versions after it; when they
			// arrive the other way round, the version 3 message still
			// tells that the sender speaks it, and whether to watch it.
			// Otherwise this node would go on expecting older beats that
			// the sender stops once it hears version 3 back.
			if m.V3 && !p.is(fV3) && m.Kind == Beat {
				p.set(fV3, true)
				p.set(fWatched, m.Watch)
			}
			return false
		}
	}
	stateChanged := false
	if m.Incarnation != p.incarnation {
		// A new process: what the old one reported no longer holds.
		if p.state != nil {
			p.state, stateChanged = nil, true
		}
		p.set(fV3|fWatched, false)
	}
	switch {
	case m.Kind == Dead:
		p.set(fV3, true) // a sign of life that leaves watching as it was
	case m.V3:
		p.set(fV3, true)
		p.set(fWatched, m.Watch)
	case !p.is(fV3):
		// An older speaker beats every peer. A version 3 one sends older
		// versions too only until it hears version 3 back, so once it
		// was heard speaking version 3 they do not make it watched.
		p.set(fWatched, true)
	}
	if m.State != nil && (p.state == nil || !p.state.Equal(*m.State)) {
		st := *m.State
		if st.Equal(State{}) {
			p.state = emptyState // shared: thousands of peers report nothing
		} else {
			p.state = &st
		}
		stateChanged = true
	}
	p.incarnation, p.seq = m.Incarnation, m.Seq
	p.set(fProbed, false) // answered
	wasAlive := p.is(fAlive)
	switch m.Kind {
	case Beat, Dead:
		p.set(fAlive, true)
		p.set(fLeft, false)
		p.seen = now.Sub(t.start)
	case Leave:
		p.set(fAlive, false)
		p.set(fLeft, true)
		p.seen = now.Sub(t.start)
	default:
		return false
	}
	return wasAlive != p.is(fAlive) || (stateChanged && p.is(fAlive))
}

// ReceiveDead applies a watcher's notice that a peer went silent, and
// reports whether the view changed. A notice about an older process than
// the one known is stale. So is one that predates what this node heard
// from the peer within deadAfter: the peer spoke after the watcher's last
// news, and if it is dead after all, its watchers' next notice says so.
func (t *Table) ReceiveDead(s Subject, now time.Time) bool {
	p := t.lookup(s.Name)
	if s.Name == t.self || p == nil || !p.is(fAlive) || s.Incarnation < p.incarnation {
		return false
	}
	if s.Incarnation == p.incarnation && s.Seq < p.seq && now.Sub(t.start)-p.seen < t.deadAfter {
		return false
	}
	p.set(fAlive, false)
	t.track(s.Name, p)
	return true
}

// expires reports whether a peer's silence makes it dead.
func (p *peer) expires() bool {
	return p.is(fAlive) && (p.is(fWatched) || !p.is(fV3) || p.is(fProbed))
}

// Probe makes an alive peer that this node does not watch dead unless it
// sends anything within deadAfter from now: its silence counts from the
// probe. It reports whether a probe started (the peer is known, alive,
// and not expiring already).
func (t *Table) Probe(name string, now time.Time) bool {
	p := t.lookup(name)
	if p == nil || !p.is(fAlive) || p.expires() {
		return false
	}
	p.set(fProbed, true)
	p.seen = max(p.seen, now.Sub(t.start))
	t.track(name, p)
	return true
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
	for p := range t.alivePeers() {
		p.seen += d
	}
}

// Tick expires peers silent for deadAfter, and settles the table once
// deadAfter has passed since it started. It reports whether the view
// changed, and which peers it found dead.
func (t *Table) Tick(now time.Time) (changed bool, died []string) {
	if !t.settled && !now.Before(t.settleAt) {
		t.settled, changed = true, true
	}
	at := now.Sub(t.start)
	for p, name := range t.expiring {
		if at-p.seen >= t.deadAfter {
			p.set(fAlive, false)
			changed = true
			died = append(died, name)
			t.track(name, p)
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
	for p := range t.expiring {
		if d := t.start.Add(p.seen + t.deadAfter); !ok || d.Before(at) {
			at, ok = d, true
		}
	}
	return at, ok
}

// probed reports whether a probe of the named peer awaits its answer.
func (t *Table) probed(name string) bool {
	p := t.lookup(name)
	return p != nil && p.is(fAlive) && p.is(fProbed)
}

// SpeaksState reports whether the named peer's current process sends
// version 2 messages.
func (t *Table) SpeaksState(name string) bool {
	p := t.lookup(name)
	return p != nil && p.state != nil
}

// Peer returns what the table knows about a peer; ok is false if nothing.
func (t *Table) Peer(name string) (st PeerState, ok bool) {
	p := t.lookup(name)
	if p == nil {
		return PeerState{}, false
	}
	return t.view(name, p), true
}

func (t *Table) view(name string, p *peer) PeerState {
	st := PeerState{Name: name, Alive: p.is(fAlive), Left: p.is(fLeft), Incarnation: p.incarnation, Seq: p.seq,
		State: p.state, V3: p.is(fV3), Watched: p.is(fWatched)}
	if p.seen != never {
		st.LastSeen = t.start.Add(p.seen)
	}
	return st
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
	p := t.lookup(name)
	return p != nil && p.is(fAlive)
}

// AliveNames returns the alive nodes, including the table's own, sorted.
func (t *Table) AliveNames() []string {
	out := []string{t.self}
	for i := range t.known {
		if t.known[i].is(fAlive) {
			out = append(out, t.names[i])
		}
	}
	for name, p := range t.others {
		if p.is(fAlive) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Credit counts every alive peer as heard at now: this node could not
// judge their silence until now (see Engine.Rejoining).
func (t *Table) Credit(now time.Time) {
	at := now.Sub(t.start)
	for p := range t.alivePeers() {
		p.seen = max(p.seen, at)
	}
}

// anyPeerAlive reports whether a peer other than the table's own node is
// alive.
func (t *Table) anyPeerAlive() bool {
	for range t.alivePeers() {
		return true
	}
	return false
}

// alivePeers yields every alive peer other than the table's own node.
func (t *Table) alivePeers() iter.Seq[*peer] {
	return func(yield func(*peer) bool) {
		for i := range t.known {
			if p := &t.known[i]; p.is(fAlive) && !yield(p) {
				return
			}
		}
		for _, p := range t.others {
			if p.is(fAlive) && !yield(p) {
				return
			}
		}
	}
}

// Peers returns every tracked peer, sorted by name.
func (t *Table) Peers() []PeerState {
	var out []PeerState
	for i := range t.known {
		if p := &t.known[i]; p.is(fTracked) {
			out = append(out, t.view(t.names[i], p))
		}
	}
	for name, p := range t.others {
		out = append(out, t.view(name, p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
