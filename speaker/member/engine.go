package member

import (
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/beaconlb/beacon/speaker/election"
)

// HelloBackoff is how often a peer that was never heard, or an older
// speaker that went silent, gets a hello once the startup grace period is
// over.
const HelloBackoff = time.Second

// HelloBurst bounds the greetings of silent peers per tick, so that a
// node starting among thousands does not overflow its peers' and its own
// socket buffers with the greetings and their answers at once.
const HelloBurst = 256

// ProbeEvery is how often a peer whose Node stays not ready is probed
// again (SetSuspects): it may have been unknown at the first probe, or
// die with its watchers later.
const ProbeEvery = 10 * time.Second

// EngineConfig configures an Engine.
type EngineConfig struct {
	Name      string
	Interval  time.Duration
	DeadAfter time.Duration
	// Watchers is how many peers watch this node (version 3); 0 keeps the
	// all-to-all version 2 protocol.
	Watchers int
	// HelloBurst overrides the package's HelloBurst when positive: the
	// simulator shrinks it to start a small cluster the way a large one
	// starts.
	HelloBurst int
}

// Out is one message to send to some peers, by name.
type Out struct {
	Msg Message
	To  []string
}

// Engine is the protocol without IO: Member.Run feeds it the clock's
// ticks, the received messages and the caller's settings, and sends what
// it returns; a simulator drives it the same way over a virtual network
// and clock. It is not safe for concurrent use.
type Engine struct {
	cfg         EngineConfig
	table       *Table
	incarnation uint64
	seq         uint64
	peers       []string // known, sorted
	local       State
	stateOK     bool // local encodes within the message limits
	lastWake    time.Time

	// Version 3 only.
	start       time.Time
	ranked      []string             // the peers by WatchScore, highest first, as far as pickWatchers looks
	greet       []greeting           // by index in peers; nil when unknown is 0
	unknown     int                  // peers that did not answer a greeting, or speak an older version
	watchers    []string             // this node's watchers, in rank order
	dirty       bool                 // watchers need recomputing
	release     map[string]time.Time // former watchers, told until then
	notices     []Subject            // dead notices to repeat on the next tick
	stateRounds int                  // ticks that still send the state to every peer
	refuted     time.Time            // when this node last said it is not dead
	rejoinUntil time.Time            // zero unless rejoining after a stall
	suspects    map[string]*suspect  // peers whose Node is not ready (SetSuspects)
	probing     []string             // suspects probed, until they answer or die
}

// NewEngine returns the engine of a process started at now.
func NewEngine(cfg EngineConfig, now time.Time) *Engine {
	return &Engine{
		cfg:         cfg,
		table:       NewTable(cfg.Name, cfg.DeadAfter, now),
		incarnation: uint64(now.UnixNano()),
		stateOK:     true,
		lastWake:    now,
		start:       now,
		dirty:       true,
		release:     map[string]time.Time{},
	}
}

// greeting is the state of a known peer not heard speaking version 3
// (unknown), kept by index in Engine.peers: a node starting among
// thousands holds one for each until they answer. Times are offsets from
// the engine's start.
type greeting struct {
	nextHello time.Duration // for peers not heard speaking version 3
	fastUntil time.Duration // hello every interval until then
	unknown   bool
	helloed   bool // had a hello round: older versions next
}

// greeting returns the greeting state of a known peer; nil if p is not
// known or was greeted to the end.
func (e *Engine) greeting(p string) *greeting {
	if e.greet == nil {
		return nil
	}
	if i, ok := slices.BinarySearch(e.peers, p); ok && e.greet[i].unknown {
		return &e.greet[i]
	}
	return nil
}

// setUnknown marks known peer i as one to greet, or not.
func (e *Engine) setUnknown(i int, on bool) {
	if e.cfg.Watchers == 0 {
		return // version 2 greets nobody
	}
	if e.greet == nil {
		if !on {
			return
		}
		e.greet = make([]greeting, len(e.peers))
	}
	g := &e.greet[i]
	switch {
	case on && !g.unknown:
		g.unknown = true
		e.unknown++
	case !on && g.unknown:
		*g = greeting{}
		e.unknown--
		if e.unknown == 0 {
			// A cluster of thousands of peers that all answered would
			// otherwise keep a greeting for each.
			e.greet = nil
		}
	}
}

func (e *Engine) since(now time.Time) time.Duration { return now.Sub(e.start) }

// Table is the liveness table; callers read it between calls.
func (e *Engine) Table() *Table { return e.table }

// Incarnation identifies this process.
func (e *Engine) Incarnation() uint64 { return e.incarnation }

// Watchers returns the peers this node asks to watch it (version 3).
func (e *Engine) Watchers() []string { return slices.Clone(e.watchers) }

// SetPeers sets the known peers (the own name is ignored) and reports
// whether the view changed.
func (e *Engine) SetPeers(names []string, now time.Time) bool {
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == e.cfg.Name })
	sort.Strings(names)
	names = slices.Clip(slices.Compact(names))
	if slices.Equal(names, e.peers) {
		return false // the caller tells on every sync of its own
	}
	old, oldGreet := e.peers, e.greet
	e.peers, e.greet, e.unknown = names, nil, 0
	for i, n := range names {
		j, ok := slices.BinarySearch(old, n)
		switch {
		case e.cfg.Watchers == 0:
		case !ok:
			e.setUnknown(i, true)
			e.greet[i].nextHello, e.greet[i].fastUntil = e.since(now), e.since(now)+e.cfg.DeadAfter
		case oldGreet != nil && oldGreet[j].unknown:
			e.setUnknown(i, true)
			e.greet[i] = oldGreet[j]
		}
	}
	maps.DeleteFunc(e.release, func(n string, _ time.Time) bool { _, ok := slices.BinarySearch(names, n); return !ok })
	e.ranked = RankWatchers(e.cfg.Name, names, 4*e.cfg.Watchers)
	e.dirty = true
	for _, s := range e.suspects {
		s.candidate = 0 // the rankings changed
	}
	// The table shares names (neither changes them), so the index of a
	// peer in e.peers is its index there (Table.knownAt).
	return e.table.SetPeers(names, now)
}

// suspect is a peer whose Node is not ready.
type suspect struct {
	next time.Duration // the next probe, since the engine's start
	// candidate caches whether this node is among the peer's 4k
	// watcher candidates; 0 unknown, 1 yes, -1 no.
	candidate int8
}

// SetSuspects sets the peers whose Kubernetes Node is not ready: a slow
// fallback for a node that died together with all its watchers, which
// nobody else watches. A peer in the set is probed by the nodes among its
// 4k watcher candidates (its rendezvous order, as it computes it) that do
// not watch it already, when it enters the set and every ProbeEvery
// while it stays: each greets it every Interval, and declares it dead,
// with notices as a watcher does, unless it answers within DeadAfter. A
// node whose speaker runs answers, so a Node that is not ready for other
// reasons (a stopped kubelet) moves nothing.
func (e *Engine) SetSuspects(names []string, now time.Time) {
	prev := e.suspects
	e.suspects = make(map[string]*suspect, len(names))
	for _, n := range names {
		if n == e.cfg.Name {
			continue
		}
		if s := prev[n]; s != nil {
			e.suspects[n] = s
		} else {
			e.suspects[n] = &suspect{next: e.since(now)}
		}
	}
	e.probeSuspects(now)
}

// probeSuspects starts the probes that are due.
func (e *Engine) probeSuspects(now time.Time) {
	if !e.v3() {
		return
	}
	at := e.since(now)
	var everyone []string
	for n, s := range e.suspects {
		if at < s.next {
			continue
		}
		s.next = at + ProbeEvery
		if st, ok := e.table.Peer(n); !ok || !st.V3 || st.Watched || !st.Alive {
			continue // an older speaker is watched by all; a dead one is no news
		}
		if s.candidate == 0 {
			if everyone == nil {
				everyone = append(slices.Clone(e.peers), e.cfg.Name)
			}
			s.candidate = -1
			if slices.Contains(RankWatchers(n, everyone, 4*e.cfg.Watchers), e.cfg.Name) {
				s.candidate = 1
			}
		}
		if s.candidate == 1 && e.table.Probe(n, now) {
			e.probing = append(e.probing, n)
		}
	}
	slices.Sort(e.probing)
	e.probing = slices.Compact(e.probing) // probed again before a tick
}

// SetLocal sets this node's state; the caller then sends StateChanged's
// messages. It reports whether the state changed.
func (e *Engine) SetLocal(st State) bool {
	if st.Equal(e.local) {
		return false
	}
	e.local = st
	_, err := st.append(nil)
	e.stateOK = err == nil
	return true
}

// StateOK reports whether the local state fits in a message; when it does
// not, this node sends version 1 only, and peers elect as with an older
// speaker.
func (e *Engine) StateOK() bool { return e.stateOK }

// StateChanged returns the messages that tell peers the new state at once.
func (e *Engine) StateChanged(now time.Time) []Out {
	e.stateRounds = 3
	return e.Tick(now)
}

func (e *Engine) v3() bool { return e.cfg.Watchers > 0 && e.stateOK }

func (e *Engine) next() uint64 {
	e.seq++
	return e.seq
}

func (e *Engine) msg(kind Kind, v int) Message {
	m := Message{Kind: kind, Name: e.cfg.Name, Incarnation: e.incarnation, Seq: e.next()}
	if v >= 2 {
		st := e.local
		m.State = &st
	}
	m.V3 = v == 3
	return m
}

// Wake records that the caller's loop woke at now, and returns how long it
// had stalled (0 if not). The loop wakes at least every Interval, so a
// longer gap is a stall of this process, not the peers' silence: it is
// not counted against them.
func (e *Engine) Wake(now time.Time) time.Duration {
	silent := now.Sub(e.lastWake)
	gap := silent - e.cfg.Interval
	e.lastWake = now
	if gap <= e.cfg.Interval {
		return 0
	}
	e.table.Stalled(gap)
	if silent >= e.cfg.DeadAfter && e.table.Settled() && e.table.anyPeerAlive() {
		// This node sent nothing for DeadAfter: its watchers declared it
		// dead and its addresses moved, which its own view, forgiven above,
		// does not show. See Rejoining.
		e.rejoinUntil = now.Add(e.cfg.DeadAfter)
	}
	return gap
}

// Rejoining reports whether this node is back from a stall of DeadAfter or
// longer and its peers may not know yet. Its peers took its addresses over
// while it was silent; were it to announce them at once, as its view says
// it should, it would pull clients back before its peers hear from it and
// the two would claim the addresses against each other. So it takes part
// in no election until its peers know it lives: until the first notice
// of its death arrives (a watcher sends one as soon as it hears from it
// again, and its answer tells every other peer within a round trip), or
// DeadAfter after it woke if none does (none of its peers took it for dead,
// or it speaks to older ones, which send no notices). Its peers elect it
// as soon as they hear from it, so it must not wait longer: the address
// would then have no announcer. Meanwhile it declares no peer dead: those
// that took it for dead stopped beating it.
func (e *Engine) Rejoining() bool { return !e.rejoinUntil.IsZero() }

// NextDeadline returns when Expire may next change the view: the table's
// next deadline or the end of a rejoin.
func (e *Engine) NextDeadline() (at time.Time, ok bool) {
	at, ok = e.table.NextDeadline()
	if e.Rejoining() && (!ok || e.rejoinUntil.Before(at)) {
		at, ok = e.rejoinUntil, true
	}
	return at, ok
}

// Tick returns the heartbeats of one interval.
func (e *Engine) Tick(now time.Time) []Out {
	if !e.v3() {
		return e.allToAll(Beat)
	}
	e.probeSuspects(now)
	w := e.watcherSet(now)
	var watch, hello, legacy, older, release, state []string
	for _, p := range e.watchers {
		if e.greeting(p) == nil {
			watch = append(watch, p) // answered a greeting
		} else {
			hello = append(hello, p)
		}
	}
	budget := HelloBurst
	if e.cfg.HelloBurst > 0 {
		budget = e.cfg.HelloBurst
	}
	// First greetings first: a start among thousands of peers finishes in
	// len(peers)/HelloBurst ticks whoever does not answer.
	for _, helloed := range [...]bool{false, true} {
		for i := range e.greet {
			g := &e.greet[i]
			if !g.unknown || g.helloed != helloed {
				continue
			}
			p := e.peers[i]
			if _, inW := w[p]; inW {
				continue
			}
			if st := e.table.knownAt(i); st != nil && st.is(fAlive) && !st.is(fV3) {
				// An older speaker: beats every interval, and greetings
				// while it may yet answer them (see Receive).
				if g.helloed && e.since(now) >= g.fastUntil {
					older = append(older, p)
				} else {
					legacy = append(legacy, p)
				}
			} else if budget > 0 && e.helloDue(p, g, now) {
				legacy = append(legacy, p)
				budget--
			}
		}
	}
	for p, until := range e.release {
		if _, inW := w[p]; !inW && now.Before(until) {
			if e.greeting(p) == nil {
				release = append(release, p)
			}
		}
	}
	if e.stateRounds > 0 {
		for _, p := range e.v3Alive("") {
			if _, inW := w[p]; !inW && !now.Before(e.release[p]) {
				state = append(state, p)
			}
		}
	}
	slices.Sort(legacy)
	slices.Sort(older)
	slices.Sort(release)
	for p, until := range e.release {
		if !now.Before(until) {
			delete(e.release, p)
		}
	}
	if e.stateRounds > 0 {
		e.stateRounds--
	}
	var out []Out
	add := func(m Message, to []string) {
		if len(to) > 0 {
			out = append(out, Out{Msg: m, To: to})
		}
	}
	beat := func(watch, hello bool, to []string) {
		m := e.msg(Beat, 3)
		m.Watch, m.Hello = watch, hello
		add(m, to)
	}
	beat(true, false, watch)
	beat(true, true, hello)
	beat(false, true, legacy)
	beat(false, false, append(release, state...))
	// Older speakers drop version 3: they get version 2, then version 1 if
	// not heard speaking version 2, in that order so that a newer
	// receiver learns liveness and state together. A peer's first hello
	// goes alone: a version 3 peer answers it within a round trip, so a
	// cluster of this version starts without a round of older beats.
	old := older
	for _, p := range append(hello, legacy...) {
		g := e.greeting(p)
		if st, ok := e.table.Peer(p); !ok || !st.V3 {
			if g.helloed || (ok && st.Alive) {
				old = append(old, p)
			}
		}
		g.helloed = true
	}
	slices.Sort(old)
	add(e.msg(Beat, 2), old)
	add(e.msg(Beat, 1), slices.DeleteFunc(slices.Clone(old), e.table.SpeaksState))
	// Probes want an answer, so they are greetings whatever else the
	// peer gets.
	var probeW, probe []string
	e.probing = slices.DeleteFunc(e.probing, func(p string) bool { return !e.table.probed(p) })
	for _, p := range e.probing {
		if _, inW := w[p]; inW {
			probeW = append(probeW, p)
		} else {
			probe = append(probe, p)
		}
	}
	beat(true, true, probeW)
	beat(false, true, probe)
	for _, s := range e.notices {
		add(Message{Kind: Dead, V3: true, Name: e.cfg.Name, Incarnation: e.incarnation, Seq: e.next(), Subject: s}, e.v3Alive(s.Name))
	}
	e.notices = nil
	return out
}

// helloDue reports whether a silent peer not heard speaking version 3
// gets a greeting now: every interval for DeadAfter after its first, then
// every HelloBackoff. Until DeadAfter after the first greeting of a peer
// never heard from, the table stays unsettled: its silence means nothing
// yet.
func (e *Engine) helloDue(p string, g *greeting, now time.Time) bool {
	at := e.since(now)
	if at < g.nextHello {
		return false
	}
	if !g.helloed {
		g.fastUntil = at + e.cfg.DeadAfter
		if _, ok := e.table.Peer(p); !ok {
			e.table.Hold(now.Add(e.cfg.DeadAfter))
		}
	}
	if at < g.fastUntil {
		g.nextHello = at
	} else {
		g.nextHello = at + HelloBackoff
	}
	return true
}

// allToAll is the version 2 protocol: every peer gets version 2, and
// version 1 too until heard speaking version 2.
func (e *Engine) allToAll(kind Kind) []Out {
	var out []Out
	if e.stateOK {
		out = append(out, Out{Msg: e.msg(kind, 2), To: e.peers})
	}
	v1 := Out{Msg: e.msg(kind, 1), To: e.peers}
	if e.stateOK {
		v1.To = slices.DeleteFunc(slices.Clone(e.peers), e.table.SpeaksState)
	}
	if len(v1.To) > 0 {
		out = append(out, v1)
	}
	return out
}

// v3Known returns the known peers heard speaking version 3, alive or not:
// a refutation must reach those that think this node dead.
func (e *Engine) v3Known() []string {
	var to []string
	for i, p := range e.peers {
		if st := e.table.knownAt(i); st != nil && st.is(fV3) {
			to = append(to, p)
		}
	}
	return to
}

// v3Alive returns the alive peers that speak version 3, except one.
func (e *Engine) v3Alive(except string) []string {
	var to []string
	for i, p := range e.peers {
		if st := e.table.knownAt(i); p != except && st != nil && st.is(fV3) && st.is(fAlive) {
			to = append(to, p)
		}
	}
	return to
}

// Receive applies a message received at now. It reports whether the view
// changed and returns the messages to send in answer.
func (e *Engine) Receive(m Message, now time.Time) (bool, []Out) {
	if m.V3 && !e.v3() {
		// Without watchers this node speaks version 2 and takes version 3
		// for what it is to a version 2 speaker: nothing. Its peers then
		// keep beating it in the older versions, and it watches them all.
		return false, nil
	}
	var wasDead, wasAlive bool
	if p, ok := e.table.Peer(m.Name); ok {
		wasDead = !p.Alive && !p.Left && p.Incarnation == m.Incarnation
		wasAlive = p.Alive
	}
	changed := e.table.Receive(m, now)
	e.learn(m.Name, m)
	if g := e.greeting(m.Name); g != nil && !wasAlive && e.table.Alive(m.Name) && !m.V3 && e.v3() {
		// Heard in an older version only: an older speaker, or a version
		// 3 one whose version 3 messages were lost and whose older copies
		// arrived. This node now expects the peer's beats every interval;
		// a version 3 peer stops sending them once it hears this node's
		// greeting, so it is greeted every interval for DeadAfter from
		// now, whenever the first greeting was: one of its answers must
		// arrive before its silence counts.
		g.fastUntil = e.since(now) + e.cfg.DeadAfter
	}
	var out []Out
	if wasDead && e.table.Alive(m.Name) && e.v3() {
		// This node declared the peer dead (its silence, or a watcher's
		// notice), but its process lives on: after a partition or a long
		// stall. The peers that do not watch it may think so too, so it
		// is told, and refutes to everyone.
		p, _ := e.table.Peer(m.Name)
		out = append(out, Out{Msg: Message{Kind: Dead, V3: true, Name: e.cfg.Name, Incarnation: e.incarnation, Seq: e.next(),
			Subject: Subject{Name: m.Name, Incarnation: p.Incarnation, Seq: p.Seq}}, To: []string{m.Name}})
	}
	if m.Kind == Dead {
		if m.Subject.Name == e.cfg.Name {
			if m.Subject.Incarnation == e.incarnation && e.v3() && e.Rejoining() {
				e.rejoinUntil = now // Expire ends it
			}
			if m.Subject.Incarnation == e.incarnation && e.v3() && now.Sub(e.refuted) >= e.cfg.Interval {
				// A watcher declared this node dead: everyone hears
				// otherwise at once, but once per interval however many
				// tell it, and notices older than the refutation are
				// then stale.
				e.refuted = now
				w := e.watcherSet(now)
				var watch, others []string
				for _, p := range e.v3Known() {
					if _, ok := w[p]; ok {
						watch = append(watch, p)
					} else {
						others = append(others, p)
					}
				}
				r := e.msg(Beat, 3)
				r.Watch = true
				out = append(out, Out{Msg: r, To: watch}, Out{Msg: e.msg(Beat, 3), To: others})
			}
		} else if e.table.ReceiveDead(m.Subject, now) {
			changed = true
		}
	}
	if m.V3 && m.Hello && e.v3() {
		// At most one per sender's beat.
		r := e.msg(Beat, 3)
		e.updateWatchers(now)
		r.Watch = slices.Contains(e.watchers, m.Name)
		r.Ack = true
		out = append(out, Out{Msg: r, To: []string{m.Name}})
	}
	if changed {
		e.dirty = true
	}
	return changed, out
}

// Expire declares silent watched peers dead, settles the table and ends a
// rejoin that is due. It reports whether the view changed and who died,
// and returns the dead notices to send.
func (e *Engine) Expire(now time.Time) (bool, []string, []Out) {
	rejoined := false
	if e.Rejoining() {
		// Peers that took this node for dead beat it no more, and resume
		// only once they know it lives: their silence means nothing
		// until then, nor for DeadAfter after.
		e.table.Credit(now)
		if !now.Before(e.rejoinUntil) {
			e.rejoinUntil = time.Time{}
			rejoined = true
		}
	}
	changed, died := e.table.Tick(now)
	changed = changed || rejoined
	if changed {
		e.dirty = true
	}
	if !e.v3() {
		return changed, died, nil
	}
	var out []Out
	for _, name := range died {
		p, ok := e.table.Peer(name)
		if !ok || !p.V3 {
			continue // older speakers watch every peer themselves
		}
		s := Subject{Name: name, Incarnation: p.Incarnation, Seq: p.Seq}
		// Sent twice: the peers that take over must not miss it.
		e.notices = append(e.notices, s)
		out = append(out, Out{Msg: Message{Kind: Dead, V3: true, Name: e.cfg.Name, Incarnation: e.incarnation, Seq: e.next(), Subject: s}, To: e.v3Alive(name)})
	}
	return changed, died, out
}

// Leave returns the goodbye messages of a clean stop.
func (e *Engine) Leave() []Out {
	if !e.v3() {
		return e.allToAll(Leave)
	}
	var v3, old []string
	for i, p := range e.peers {
		if st := e.table.knownAt(i); st != nil && st.is(fV3) {
			v3 = append(v3, p)
		} else {
			old = append(old, p)
		}
	}
	var out []Out
	for _, o := range []Out{
		{Msg: e.msg(Leave, 3), To: v3},
		{Msg: e.msg(Leave, 2), To: old},
		{Msg: e.msg(Leave, 1), To: slices.DeleteFunc(slices.Clone(old), e.table.SpeaksState)},
	} {
		if len(o.To) > 0 {
			out = append(out, o)
		}
	}
	return out
}

// learn keeps a known peer's place among those to greet: until it
// answers a greeting (a peer that speaks version 3 may still think this
// process unknown, or dead in its previous incarnation), or again once it
// speaks an older version (a rollback).
func (e *Engine) learn(name string, m Message) {
	i, known := slices.BinarySearch(e.peers, name)
	if !known {
		return
	}
	st, ok := e.table.Peer(name)
	unknown := e.greeting(name) != nil
	switch {
	case (m.Ack || m.Hello) && ok && st.V3 && unknown:
		// An answer, or the peer's own greeting, which this node answers:
		// either way the peer hears this process.
		e.setUnknown(i, false)
	case ok && !st.V3 && !unknown:
		e.setUnknown(i, true)
	}
}

// watcherSet returns this node's watchers: its known peers in rendezvous
// order of WatchScore, down to the Watchers-th one that may be alive (seen
// alive, or not heard from yet during startup). Dead peers ranked above
// them are included, so that they hear from this node when they (or a
// partition) come back. Former watchers are told to stop for DeadAfter.
func (e *Engine) watcherSet(now time.Time) map[string]struct{} {
	e.updateWatchers(now)
	w := make(map[string]struct{}, len(e.watchers))
	for _, p := range e.watchers {
		w[p] = struct{}{}
	}
	return w
}

// updateWatchers recomputes the watchers if the view changed.
func (e *Engine) updateWatchers(now time.Time) {
	if e.dirty {
		e.dirty = false
		prev := e.watchers
		e.watchers = pickWatchers(e.ranked, e.cfg.Watchers, func(p string) bool {
			_, heard := e.table.Peer(p)
			return e.table.Alive(p) || (!e.table.Settled() && !heard)
		})
		for _, p := range prev {
			if !slices.Contains(e.watchers, p) {
				e.release[p] = now.Add(e.cfg.DeadAfter)
			}
		}
		for _, p := range e.watchers {
			delete(e.release, p)
		}
	}
}

// RankWatchers returns node's k watchers among peers when every peer is
// alive: the first k of its rendezvous order, found in one pass.
func RankWatchers(node string, peers []string, k int) []string {
	type scored struct {
		name  string
		score uint64
	}
	top := make([]scored, 0, k+1)
	for _, p := range peers {
		if p == node {
			continue
		}
		s := scored{p, WatchScore(node, p)}
		i := sort.Search(len(top), func(i int) bool {
			return top[i].score < s.score || (top[i].score == s.score && top[i].name > s.name)
		})
		if i >= k {
			continue
		}
		top = slices.Insert(top, i, s)
		if len(top) > k {
			top = top[:k]
		}
	}
	out := make([]string, len(top))
	for i, s := range top {
		out[i] = s.name
	}
	return out
}

// pickWatchers takes ranked peers down to the k-th candidate (see
// watcherSet), at most 4k names, so that a mostly dead cluster does not
// make a node beat everyone.
func pickWatchers(ranked []string, k int, candidate func(string) bool) []string {
	var out []string
	for _, p := range ranked {
		if k == 0 || len(out) == 4*k {
			break
		}
		out = append(out, p)
		if candidate(p) {
			k--
		}
	}
	return out
}

// WatchScore is the rendezvous weight of watcher for node: FNV-1a-64 over
// both names, separated by a zero byte, finalised with fmix64. Only the
// watched node computes it, so speakers need not agree on it.
func WatchScore(node, watcher string) uint64 {
	h := uint64(14695981039346656037)
	mix := func(s string) {
		for i := 0; i < len(s); i++ {
			h ^= uint64(s[i])
			h *= 1099511628211
		}
	}
	mix(node)
	h *= 1099511628211 // the zero separator
	mix(watcher)
	return election.Mix64(h)
}
