package member

import (
	"slices"
	"sort"
	"time"
)

// HelloBackoff is how often a peer that was never heard, or an older
// speaker that went silent, gets a hello once the startup grace period is
// over.
const HelloBackoff = time.Second

// EngineConfig configures an Engine.
type EngineConfig struct {
	Name      string
	Interval  time.Duration
	DeadAfter time.Duration
	// Watchers is how many peers watch this node (version 3); 0 keeps the
	// all-to-all version 2 protocol.
	Watchers int
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
	watchers    []string             // this node's watchers, in rank order
	dirty       bool                 // watchers need recomputing
	release     map[string]time.Time // former watchers, told until then
	nextHello   map[string]time.Time // for peers not heard speaking version 3
	fastUntil   map[string]time.Time // hello every interval until then
	lastReply   map[string]time.Time
	notices     []Subject // dead notices to repeat on the next tick
	stateRounds int       // ticks that still send the state to every peer
}

// NewEngine returns the engine of a process started at now.
func NewEngine(cfg EngineConfig, now time.Time) *Engine {
	return &Engine{
		cfg:         cfg,
		table:       NewTable(cfg.Name, cfg.DeadAfter, now),
		incarnation: uint64(now.UnixNano()),
		stateOK:     true,
		lastWake:    now,
		dirty:       true,
		release:     map[string]time.Time{},
		nextHello:   map[string]time.Time{},
		fastUntil:   map[string]time.Time{},
		lastReply:   map[string]time.Time{},
	}
}

// Table is the liveness table; callers read it between calls.
func (e *Engine) Table() *Table { return e.table }

// Incarnation identifies this process.
func (e *Engine) Incarnation() uint64 { return e.incarnation }

// Watchers returns the peers this node asks to watch it (version 3).
func (e *Engine) Watchers() []string { return slices.Clone(e.watchers) }

// SetPeers sets the known peers and reports whether the view changed.
func (e *Engine) SetPeers(names []string, now time.Time) bool {
	names = slices.Clone(names)
	sort.Strings(names)
	for _, n := range names {
		if _, ok := slices.BinarySearch(e.peers, n); !ok {
			e.nextHello[n], e.fastUntil[n] = now, now.Add(e.cfg.DeadAfter)
		}
	}
	e.peers = names
	e.dirty = true
	return e.table.SetPeers(names, now)
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
	gap := now.Sub(e.lastWake) - e.cfg.Interval
	e.lastWake = now
	if gap > e.cfg.Interval {
		e.table.Stalled(gap)
		return gap
	}
	return 0
}

// Tick returns the heartbeats of one interval.
func (e *Engine) Tick(now time.Time) []Out {
	if !e.v3() {
		return e.allToAll(Beat)
	}
	var (
		w       = e.watcherSet(now)
		watch   []string // speak version 3
		hello   []string // watchers not heard speaking version 3
		legacy  []string // others not heard speaking version 3
		release []string
		state   []string
	)
	for _, p := range e.peers {
		st := e.table.Peer(p)
		v3 := st != nil && st.V3
		_, inW := w[p]
		switch {
		case inW && v3:
			watch = append(watch, p)
		case inW:
			hello = append(hello, p)
		case !v3 && e.helloDue(p, st, now):
			legacy = append(legacy, p)
		case v3 && now.Before(e.release[p]):
			release = append(release, p)
		case v3 && e.stateRounds > 0 && st.Alive:
			state = append(state, p)
		}
	}
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
	m := e.msg(Beat, 3)
	m.Watch = true
	add(m, watch)
	m = e.msg(Beat, 3)
	m.Watch, m.Hello = true, true
	add(m, hello)
	m = e.msg(Beat, 3)
	m.Hello = true
	add(m, legacy)
	add(e.msg(Beat, 3), append(release, state...))
	// Older speakers drop version 3: they get version 2, then version 1 if
	// not heard speaking version 2, in that order so that a newer
	// receiver learns liveness and state together.
	old := append(hello, legacy...)
	add(e.msg(Beat, 2), old)
	add(e.msg(Beat, 1), slices.DeleteFunc(slices.Clone(old), e.table.SpeaksState))
	for _, s := range e.notices {
		add(Message{Kind: Dead, V3: true, Name: e.cfg.Name, Incarnation: e.incarnation, Seq: e.next(), Subject: s}, e.v3Alive(s.Name))
	}
	e.notices = nil
	return out
}

// helloDue reports whether a peer not heard speaking version 3 gets
// beats now: an alive older speaker every interval; a silent peer every
// interval for DeadAfter after it became known, then every HelloBackoff.
func (e *Engine) helloDue(p string, st *PeerState, now time.Time) bool {
	if st != nil && st.Alive {
		return true
	}
	if now.Before(e.nextHello[p]) {
		return false
	}
	if now.Before(e.fastUntil[p]) {
		e.nextHello[p] = now
	} else {
		e.nextHello[p] = now.Add(HelloBackoff)
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

// v3Alive returns the alive peers that speak version 3, except one.
func (e *Engine) v3Alive(except string) []string {
	var to []string
	for _, p := range e.peers {
		if st := e.table.Peer(p); p != except && st != nil && st.V3 && st.Alive {
			to = append(to, p)
		}
	}
	return to
}

// Receive applies a message received at now. It reports whether the view
// changed and returns the messages to send in answer.
func (e *Engine) Receive(m Message, now time.Time) (bool, []Out) {
	changed := e.table.Receive(m, now)
	var out []Out
	if m.Kind == Dead {
		if m.Subject.Name == e.cfg.Name {
			if m.Subject.Incarnation == e.incarnation && e.v3() {
				// A watcher declared this node dead: everyone hears
				// otherwise at once.
				w := e.watcherSet(now)
				var watch, others []string
				for _, p := range e.v3Alive("") {
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
	if m.V3 && m.Hello && e.v3() && now.Sub(e.lastReply[m.Name]) >= e.cfg.Interval/2 {
		e.lastReply[m.Name] = now
		r := e.msg(Beat, 3)
		_, r.Watch = e.watcherSet(now)[m.Name]
		out = append(out, Out{Msg: r, To: []string{m.Name}})
	}
	if changed {
		e.dirty = true
	}
	return changed, out
}

// Expire declares silent watched peers dead, and settles the table. It
// reports whether the view changed and who died, and returns the dead
// notices to send.
func (e *Engine) Expire(now time.Time) (bool, []string, []Out) {
	changed, died := e.table.Tick(now)
	if changed {
		e.dirty = true
	}
	if !e.v3() {
		return changed, died, nil
	}
	var out []Out
	for _, name := range died {
		p := e.table.Peer(name)
		if p == nil || !p.V3 {
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
	for _, p := range e.peers {
		if st := e.table.Peer(p); st != nil && st.V3 {
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

// watcherSet returns this node's watchers: its known peers in rendezvous
// order of WatchScore, down to the Watchers-th one that may be alive (seen
// alive, or not heard from yet during startup). Dead peers ranked above
// them are included, so that they hear from this node when they (or a
// partition) come back. Former watchers are told to stop for DeadAfter.
func (e *Engine) watcherSet(now time.Time) map[string]struct{} {
	if e.dirty {
		e.dirty = false
		prev := e.watchers
		e.watchers = rankWatchers(e.cfg.Name, e.peers, e.cfg.Watchers, func(p string) bool {
			return e.table.Alive(p) || (!e.table.Settled() && e.table.Peer(p) == nil)
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
	w := make(map[string]struct{}, len(e.watchers))
	for _, p := range e.watchers {
		w[p] = struct{}{}
	}
	return w
}

// rankWatchers picks node's watchers from peers (see watcherSet): at most
// 4k names, so that a mostly dead cluster does not make it beat everyone.
func rankWatchers(node string, peers []string, k int, candidate func(string) bool) []string {
	type scored struct {
		name  string
		score uint64
	}
	ss := make([]scored, 0, len(peers))
	for _, p := range peers {
		if p != node {
			ss = append(ss, scored{p, WatchScore(node, p)})
		}
	}
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].score != ss[j].score {
			return ss[i].score > ss[j].score
		}
		return ss[i].name < ss[j].name
	})
	var out []string
	for _, s := range ss {
		if k == 0 || len(out) == 4*k {
			break
		}
		out = append(out, s.name)
		if candidate(s.name) {
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
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
