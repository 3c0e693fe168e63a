// Package sim runs many speakers' member.Engine (the real protocol code)
// over an in-memory network with a virtual clock: packet loss, latency,
// scheduling stalls and crashes, at thousands of nodes in one process.
//
// Each simulated node is driven the way member.Run drives its engine: a
// tick every Interval, received messages as they arrive, a timer at the
// table's next deadline, and on every wake-up Engine.Wake, then the queued
// messages, then Engine.Expire (after ticks and deadlines only: expiring on
// every message would cost the simulator O(watched) per packet and changes
// no outcome, since no deadline passes between a node's events). A stalled
// node runs nothing: its ticks collapse into one, and the messages that
// arrive meanwhile are read, stamped with the time, when the stall ends.
//
// Nodes of the older version (Config.Legacy) run the engine with Watchers
// 0 and drop version 3 messages, as their parser does.
package sim

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/member"
)

// Config describes a simulated cluster.
type Config struct {
	Nodes int
	// Watchers per node (member.EngineConfig.Watchers); 0 runs the
	// all-to-all protocol.
	Watchers  int
	Interval  time.Duration
	DeadAfter time.Duration
	// Legacy is how many nodes (the first ones) run the all-to-all version
	// 2 protocol whatever Watchers says, for mixed-version runs.
	Legacy int
	// Loss is the probability that a packet is lost.
	Loss float64
	// Latency is the one-way delay; each packet gets up to as much again
	// at random.
	Latency time.Duration
	// StallEvery is the mean time between a node's scheduling stalls
	// (exponentially distributed); 0 means none. Each lasts StallFor.
	StallEvery time.Duration
	StallFor   time.Duration
	// StartOver spreads the nodes' starts over this long; at least one
	// Interval.
	StartOver time.Duration
	// HelloBurst overrides member.HelloBurst when positive (see
	// member.EngineConfig).
	HelloBurst int
	Seed       uint64
	// Trace, if set, sees every packet sent (lost or not) and every
	// delivery; for following one pair of nodes through a run.
	Trace func(at time.Duration, from, to string, m *member.Message, ev string)
}

// Sim is one simulated cluster. It is not safe for concurrent use.
type Sim struct {
	cfg   Config
	rng   *rand.Rand
	base  time.Time
	now   time.Duration
	seq   uint64
	q     events
	nodes []*node
	index map[string]int
	names []string

	suspects []string // nodes whose Kubernetes Node is not ready

	countFrom time.Duration
	failovers []time.Duration
	pending   []*failover
	// FalseDeaths counts each time a node saw a running peer die (silence
	// or a dead notice).
	FalseDeaths int
	// FalseSilences counts the false deaths a node found by a peer's
	// silence itself (not told by a notice): each is one event, which
	// notices may spread to every node.
	FalseSilences int
	// FalseLog describes the first false deaths (up to MaxFalseLog), so
	// that a run can say why each happened; the nodes that a notice told
	// are counted in the notifier's entry.
	FalseLog []FalseDeath
	// Stalls counts the stalls that started.
	Stalls int
	// Events counts processed events.
	Events int
}

// MaxFalseLog bounds Sim.FalseLog.
const MaxFalseLog = 20

// FalseDeath is one node seeing a running peer dead.
type FalseDeath struct {
	At       time.Duration
	Observer string
	Subject  string
	// Notifier is the watcher whose dead notice it was; empty when the
	// observer expired the subject itself.
	Notifier string
	// V3 and Watched are what the observer's table said of the subject,
	// and Silent how long it had not heard from it.
	V3, Watched bool
	Silent      time.Duration
	// Watcher is whether the observer is among the subject's watchers.
	Watcher bool
	// Told is how many nodes saw the subject dead by this observer's
	// notices.
	Told int
	// StallEnd is when the subject's last stall ended (0 if none).
	StallEnd time.Duration
}

func (f FalseDeath) String() string {
	how := "its silence"
	if f.Notifier != "" {
		how = "a notice from " + f.Notifier
	}
	return fmt.Sprintf("at %v %s saw %s dead by %s (table: version 3 %v, watched %v, silent %v; among its watchers %v; its last stall ended at %v), and told %d",
		f.At, f.Observer, f.Subject, how, f.V3, f.Watched, f.Silent, f.Watcher, f.StallEnd, f.Told)
}

type node struct {
	name     string
	legacy   bool
	engine   *member.Engine
	crashed  bool
	stalled  bool
	stallEnd time.Duration
	tickDue  bool
	queue    []*member.Message
	deadline time.Duration // the pending deadline event's time; -1 if none
	sent     int
	sentBy   [nKinds]int // sent by kind, see Sent
	received int
	// epoch counts the node's processes: timers of an earlier one are
	// dropped (its packets in flight still arrive).
	epoch uint32
}

type failover struct {
	ip        netip.Addr
	dead      int
	successor int
	at        time.Duration
}

// New builds the cluster; nothing runs until Start.
func New(cfg Config) *Sim {
	s := &Sim{
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		base:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		index: map[string]int{},
	}
	for i := range cfg.Nodes {
		name := fmt.Sprintf("node-%05d", i)
		s.names = append(s.names, name)
		s.index[name] = i
	}
	for i, name := range s.names {
		s.nodes = append(s.nodes, &node{name: name, legacy: i < cfg.Legacy, deadline: -1})
	}
	return s
}

// Start starts every node within StartOver, in random order.
func (s *Sim) Start() {
	over := max(s.cfg.StartOver, s.cfg.Interval)
	for i := range s.nodes {
		s.startNode(i, time.Duration(s.rng.Int64N(int64(over))))
	}
}

func (s *Sim) startNode(i int, after time.Duration) {
	s.push(event{at: s.now + after, kind: evStart, node: int32(i)})
}

func (s *Sim) time(d time.Duration) time.Time { return s.base.Add(d) }

// Now is the virtual time since the start.
func (s *Sim) Now() time.Duration { return s.now }

// Names returns the nodes' names.
func (s *Sim) Names() []string { return s.names }

// Engine returns node i's engine (nil before it starts).
func (s *Sim) Engine(i int) *member.Engine { return s.nodes[i].engine }

// RunFor processes events for d of virtual time.
func (s *Sim) RunFor(d time.Duration) {
	end := s.now + d
	for s.q.Len() > 0 && s.q[0].at <= end {
		e := heap.Pop(&s.q).(event)
		s.now = e.at
		s.Events++
		s.handle(e)
	}
	s.now = end
}

// ResetCounts starts counting packets now.
func (s *Sim) ResetCounts() {
	s.countFrom = s.now
	for _, n := range s.nodes {
		n.sent, n.received, n.sentBy = 0, 0, [nKinds]int{}
	}
}

// What a node sent, by kind.
const (
	SentWatch  = iota // version 3 beats with the watch flag, no greeting
	SentGreet         // hellos and their answers (version 3)
	SentNotice        // dead notices
	SentPlain         // version 3 beats without flags: releases, state, refutations
	SentOlder         // version 2 and 1 copies
	SentLeave
	nKinds
)

// SentKinds names the kinds of Busiest.
var SentKinds = [nKinds]string{"watch beats", "greetings", "dead notices", "plain beats", "older copies", "leaves"}

// Sender is what one node sent since ResetCounts.
type Sender struct {
	Name   string
	Total  int
	ByKind [nKinds]int
}

func (b Sender) String() string {
	s := fmt.Sprintf("%s sent %d:", b.Name, b.Total)
	for k, n := range b.ByKind {
		if n > 0 {
			s += fmt.Sprintf(" %d %s", n, SentKinds[k])
		}
	}
	return s
}

// Busiest returns the running node that sent the most since ResetCounts.
func (s *Sim) Busiest() Sender {
	var b Sender
	for _, nd := range s.nodes {
		if !nd.crashed && nd.engine != nil && nd.sent > b.Total {
			b = Sender{Name: nd.name, Total: nd.sent, ByKind: nd.sentBy}
		}
	}
	return b
}

func sentKind(m *member.Message) int {
	switch {
	case m.Kind == member.Leave:
		return SentLeave
	case m.Kind == member.Dead:
		return SentNotice
	case !m.V3:
		return SentOlder
	case m.Hello || m.Ack:
		return SentGreet
	case m.Watch:
		return SentWatch
	}
	return SentPlain
}

// Rates are liveness packets per second per node since ResetCounts:
// sent, received, and both, as the mean and the maximum over running nodes.
type Rates struct {
	SentAvg, SentMax, RecvAvg, RecvMax, BothAvg, BothMax float64
}

// Rates returns the packet rates since ResetCounts.
func (s *Sim) Rates() Rates {
	var r Rates
	secs := (s.now - s.countFrom).Seconds()
	n := 0
	for _, nd := range s.nodes {
		if nd.crashed || nd.engine == nil {
			continue
		}
		n++
		sent, recv := float64(nd.sent)/secs, float64(nd.received)/secs
		r.SentAvg += sent
		r.RecvAvg += recv
		r.BothAvg += sent + recv
		r.SentMax = max(r.SentMax, sent)
		r.RecvMax = max(r.RecvMax, recv)
		r.BothMax = max(r.BothMax, sent+recv)
	}
	if n > 0 {
		r.SentAvg /= float64(n)
		r.RecvAvg /= float64(n)
		r.BothAvg /= float64(n)
	}
	return r
}

// Crash stops node i at once, without a leave message, and measures the
// failover of an address it announces: from now until the node that takes
// it over (by election over every node) elects itself over its own view.
// It returns that address.
func (s *Sim) Crash(i int) netip.Addr {
	cands := make([]election.Candidate, len(s.names))
	for j, n := range s.names {
		cands[j] = election.Candidate{Name: n, Eligible: !s.nodes[j].crashed}
	}
	var ip netip.Addr
	var standby string
	for k := 0; ; k++ {
		ip = netip.AddrFrom4([4]byte{198, 18, byte(k >> 8), byte(k)})
		var a string
		a, standby, _ = election.Standby(ip, cands)
		if a == s.names[i] || k == 1<<16-1 {
			break
		}
	}
	s.nodes[i].crashed = true
	if standby != "" {
		s.pending = append(s.pending, &failover{ip: ip, dead: i, successor: s.index[standby], at: s.now})
	}
	return ip
}

// Stop stops node i cleanly: it sends its leave messages first.
func (s *Sim) Stop(i int) {
	n := s.nodes[i]
	if n.engine != nil && !n.crashed {
		s.send(i, n.engine.Leave())
	}
	n.crashed = true
}

// Restart starts stopped or crashed node i again as a new process, of the
// older version when legacy is set.
func (s *Sim) Restart(i int, legacy bool) {
	n := s.nodes[i]
	n.crashed, n.stalled, n.tickDue, n.queue, n.engine, n.deadline = false, false, false, nil, nil, -1
	n.legacy = legacy
	n.epoch++
	s.startNode(i, 0)
}

// NotReady marks node i's Kubernetes Node not ready, as the node
// lifecycle controller does once its kubelet has been silent for the
// grace period: every running node's speaker learns it now (Engine.
// SetSuspects).
func (s *Sim) NotReady(i int) {
	s.suspects = append(s.suspects, s.names[i])
	now := s.time(s.now)
	for _, n := range s.nodes {
		if n.engine != nil && !n.crashed {
			n.engine.SetSuspects(s.suspects, now)
		}
	}
}

// AllSeeAll reports whether every running node sees every running node
// alive, and otherwise one disagreement.
func (s *Sim) AllSeeAll() (bool, string) {
	for _, n := range s.nodes {
		if n.crashed || n.engine == nil {
			continue
		}
		for j, m := range s.nodes {
			if !m.crashed && !n.engine.Table().Alive(s.names[j]) {
				return false, fmt.Sprintf("%s sees %s dead", n.name, m.name)
			}
			if m.crashed && n.engine.Table().Alive(s.names[j]) {
				return false, fmt.Sprintf("%s sees stopped %s alive", n.name, m.name)
			}
		}
	}
	return true, ""
}

// Failovers returns the measured failover times.
func (s *Sim) Failovers() []time.Duration { return slices.Clone(s.failovers) }

// PendingFailovers is how many crashes have not failed over yet.
func (s *Sim) PendingFailovers() int { return len(s.pending) }

// Crashed reports whether node i is crashed.
func (s *Sim) Crashed(i int) bool { return s.nodes[i].crashed }

const (
	evStart = iota
	evTick
	evDeliver
	evDeadline
	evStallStart
	evStallEnd
)

type event struct {
	at    time.Duration
	seq   uint64
	kind  uint8
	node  int32
	epoch uint32
	msg   *member.Message
}

type events []event

func (q events) Len() int { return len(q) }
func (q events) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q events) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *events) Push(x any)   { *q = append(*q, x.(event)) }
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (s *Sim) push(e event) {
	s.seq++
	e.seq = s.seq
	e.epoch = s.nodes[e.node].epoch
	heap.Push(&s.q, e)
}

func (s *Sim) handle(e event) {
	i := int(e.node)
	n := s.nodes[i]
	if n.crashed || (e.kind != evDeliver && e.epoch != n.epoch) {
		return
	}
	now := s.time(s.now)
	switch e.kind {
	case evStart:
		cfg := member.EngineConfig{Name: n.name, Interval: s.cfg.Interval, DeadAfter: s.cfg.DeadAfter, Watchers: s.cfg.Watchers, HelloBurst: s.cfg.HelloBurst}
		if n.legacy {
			cfg.Watchers = 0
		}
		n.engine = member.NewEngine(cfg, now)
		n.engine.SetPeers(s.names, now)
		n.engine.SetSuspects(s.suspects, now)
		s.send(i, n.engine.Tick(now))
		s.push(event{at: s.now + s.cfg.Interval, kind: evTick, node: e.node})
		s.scheduleStall(i)
		s.afterWake(i, true)
	case evTick:
		s.push(event{at: s.now + s.cfg.Interval, kind: evTick, node: e.node})
		if n.stalled {
			n.tickDue = true
			return
		}
		s.send(i, n.engine.Tick(now))
		n.engine.Wake(now)
		s.afterWake(i, true)
	case evDeliver:
		if n.engine == nil {
			return
		}
		n.received++
		if s.cfg.Trace != nil {
			s.cfg.Trace(s.now, e.msg.Name, n.name, e.msg, fmt.Sprintf("delivered (stalled %v)", n.stalled))
		}
		if n.stalled {
			n.queue = append(n.queue, e.msg)
			return
		}
		n.engine.Wake(now)
		s.receive(i, e.msg, now)
		s.afterWake(i, false)
	case evDeadline:
		if e.at != n.deadline {
			return // superseded
		}
		n.deadline = -1
		if n.stalled {
			return
		}
		n.engine.Wake(now)
		s.afterWake(i, true)
	case evStallStart:
		if n.engine == nil {
			return
		}
		n.stalled, n.stallEnd = true, s.now+s.cfg.StallFor
		s.Stalls++
		s.push(event{at: n.stallEnd, kind: evStallEnd, node: e.node})
	case evStallEnd:
		if !n.stalled || e.at != n.stallEnd {
			return
		}
		n.stalled = false
		n.engine.Wake(now)
		if n.tickDue {
			n.tickDue = false
			s.send(i, n.engine.Tick(now))
		}
		queue := n.queue
		n.queue = nil
		for _, m := range queue {
			s.receive(i, m, now)
		}
		s.afterWake(i, true)
		s.scheduleStall(i)
	}
}

func (s *Sim) scheduleStall(i int) {
	if s.cfg.StallEvery <= 0 {
		return
	}
	after := time.Duration(s.rng.ExpFloat64() * float64(s.cfg.StallEvery))
	s.push(event{at: s.now + after, kind: evStallStart, node: int32(i)})
}

func (s *Sim) receive(i int, m *member.Message, now time.Time) {
	n := s.nodes[i]
	t := n.engine.Table()
	before := m.Kind == member.Dead && t.Alive(m.Subject.Name)
	_, out := n.engine.Receive(*m, now)
	if before && !t.Alive(m.Subject.Name) {
		s.died(i, m.Subject.Name, m.Name)
	}
	s.send(i, out)
}

// died counts a death that node i saw, if the peer runs, and logs the
// first ones.
func (s *Sim) died(i int, name, notifier string) {
	subj := s.nodes[s.index[name]]
	if subj.crashed {
		return
	}
	s.FalseDeaths++
	if notifier == "" {
		s.FalseSilences++
	}
	obs := s.nodes[i]
	if notifier != "" {
		for k := len(s.FalseLog) - 1; k >= 0; k-- {
			if f := &s.FalseLog[k]; f.Observer == notifier && f.Subject == name {
				f.Told++
				return
			}
		}
	}
	if len(s.FalseLog) >= MaxFalseLog {
		return
	}
	f := FalseDeath{At: s.now, Observer: obs.name, Subject: name, Notifier: notifier}
	if st, ok := obs.engine.Table().Peer(name); ok {
		f.V3, f.Watched = st.V3, st.Watched
		if !st.LastSeen.IsZero() {
			f.Silent = s.time(s.now).Sub(st.LastSeen)
		}
	}
	if subj.engine != nil {
		f.Watcher = slices.Contains(subj.engine.Watchers(), obs.name)
	}
	if subj.stalled || subj.stallEnd > 0 {
		f.StallEnd = subj.stallEnd
	}
	s.FalseLog = append(s.FalseLog, f)
}

// afterWake expires peers (when expire is set), re-arms the deadline
// timer, records deaths and completed failovers.
func (s *Sim) afterWake(i int, expire bool) {
	n := s.nodes[i]
	t := n.engine.Table()
	if expire {
		now := s.time(s.now)
		_, died, out := n.engine.Expire(now)
		for _, d := range died {
			s.died(i, d, "")
		}
		s.send(i, out)
		if at, ok := t.NextDeadline(); ok {
			d := max(at.Sub(s.base), s.now)
			if d < s.now+s.cfg.Interval && d != n.deadline {
				n.deadline = d
				s.push(event{at: d, kind: evDeadline, node: int32(i)})
			}
		}
	}
	s.track(i)
}

// track records the failovers that node i finished.
func (s *Sim) track(i int) {
	n := s.nodes[i]
	t := n.engine.Table()
	for k := 0; k < len(s.pending); k++ {
		f := s.pending[k]
		if f.successor != i || t.Alive(s.names[f.dead]) {
			continue
		}
		cands := make([]election.Candidate, len(s.names))
		for j, name := range s.names {
			cands[j] = election.Candidate{Name: name, Eligible: t.Alive(name)}
		}
		if a, ok := election.Announcer(f.ip, cands); ok && a == n.name {
			s.failovers = append(s.failovers, s.now-f.at)
			s.pending = slices.Delete(s.pending, k, k+1)
			k--
		}
	}
}

func (s *Sim) send(from int, outs []member.Out) {
	n := s.nodes[from]
	for _, o := range outs {
		m := o.Msg
		kind := sentKind(&m)
		for _, to := range o.To {
			j, ok := s.index[to]
			if !ok {
				continue
			}
			n.sent++
			n.sentBy[kind]++
			if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
				if s.cfg.Trace != nil {
					s.cfg.Trace(s.now, n.name, to, &m, "lost")
				}
				continue
			}
			if s.cfg.Trace != nil {
				s.cfg.Trace(s.now, n.name, to, &m, "sent")
			}
			if s.nodes[j].legacy && m.V3 {
				continue // an older parser drops version 3
			}
			d := s.cfg.Latency + time.Duration(s.rng.Int64N(int64(s.cfg.Latency)+1))
			s.push(event{at: s.now + d, kind: evDeliver, node: int32(j), msg: &m})
		}
	}
}
