// Package nodeporttest simulates packets through a nodeport Ruleset, so
// that tests can check what the rules do rather than how they read.
package nodeporttest

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/beaconlb/beacon/nodeport"
)

// Packet is the first packet of a synthetic connection.
type Packet struct {
	Src, Dst netip.AddrPort
	Proto    nodeport.Protocol
	// FromNode marks packets a process on the node sends: they take the
	// output hook, and "fib saddr type local" holds for them. Others (from
	// pods or the network) take the prerouting hook.
	FromNode bool
}

// Verdict is what happens to a traced packet.
type Verdict string

// Verdicts of a trace.
const (
	// VerdictAccept: no Service matched; the packet passes untouched.
	VerdictAccept Verdict = "accept"
	VerdictDNAT   Verdict = "dnat"
	VerdictDrop   Verdict = "drop"
	VerdictReject Verdict = "reject"
)

// Outcome is one possible fate of a traced packet.
type Outcome struct {
	Verdict Verdict
	// To is the DNAT target.
	To netip.AddrPort
	// Masquerade is true when postrouting masquerades the packet.
	Masquerade bool
	// Probability of this outcome (numgen branches split it).
	Probability float64
	// Updates are the dynamic-set updates on this path, as set name ->
	// source address; Tracer.Commit applies them.
	Updates []SetUpdate
}

// SetUpdate is one "update @set { ip saddr }" on a traced path.
type SetUpdate struct {
	Set  string
	Addr netip.Addr
}

func (o Outcome) String() string {
	s := string(o.Verdict)
	if o.Verdict == VerdictDNAT {
		s += " " + o.To.String()
	}
	if o.Masquerade {
		s += " masquerade"
	}
	return fmt.Sprintf("%s (p=%.3f)", s, o.Probability)
}

// Tracer simulates packets through a nodeport.Ruleset. It keeps the
// contents of the dynamic (session-affinity) sets, which Commit fills as
// the kernel would.
type Tracer struct {
	rs  *nodeport.Ruleset
	dyn map[nodeport.Family]map[string]map[netip.Addr]bool
}

// NewTracer returns a Tracer with empty dynamic sets.
func NewTracer(rs *nodeport.Ruleset) *Tracer {
	return &Tracer{rs: rs, dyn: map[nodeport.Family]map[string]map[netip.Addr]bool{}}
}

// Trace is NewTracer(rs).Trace(p).
func Trace(rs *nodeport.Ruleset, p Packet) []Outcome { return NewTracer(rs).Trace(p) }

// Commit records the set updates of an outcome, as if that connection had
// been made.
func (t *Tracer) Commit(p Packet, o Outcome) {
	fam := familyOf(p.Dst.Addr())
	if t.dyn[fam] == nil {
		t.dyn[fam] = map[string]map[netip.Addr]bool{}
	}
	for _, u := range o.Updates {
		if t.dyn[fam][u.Set] == nil {
			t.dyn[fam][u.Set] = map[netip.Addr]bool{}
		}
		t.dyn[fam][u.Set][u.Addr] = true
	}
}

func familyOf(a netip.Addr) nodeport.Family {
	if a.Unmap().Is4() {
		return nodeport.IPv4
	}
	return nodeport.IPv6
}

type tstate struct {
	src, dst netip.AddrPort
	mark     uint32
	prob     float64
	updates  []SetUpdate
	verdict  Verdict // "" while undecided
	to       netip.AddrPort
	masq     bool
}

type flow int

const (
	flowNext     flow = iota // statement passed: go on
	flowNoMatch              // a match failed: next rule
	flowTerminal             // verdict decided
	flowGoto
	flowJump
)

// Trace returns every possible outcome of the packet, with probabilities,
// merged by (verdict, target, masquerade) and sorted.
func (t *Tracer) Trace(p Packet) []Outcome {
	p.Src = netip.AddrPortFrom(p.Src.Addr().Unmap(), p.Src.Port())
	p.Dst = netip.AddrPortFrom(p.Dst.Addr().Unmap(), p.Dst.Port())
	start := tstate{src: p.Src, dst: p.Dst, prob: 1}
	tabs := t.rs.TablesOf(familyOf(p.Dst.Addr()))
	if len(tabs) == 0 {
		return []Outcome{{Verdict: VerdictAccept, Probability: 1}}
	}
	hook := nodeport.HookPrerouting
	if p.FromNode {
		hook = nodeport.HookOutput
	}
	states := t.runHook(tabs, p, hook, []tstate{start})
	var after []tstate
	for _, s := range states {
		if s.verdict == VerdictDrop || s.verdict == VerdictReject {
			after = append(after, s)
			continue
		}
		if s.verdict == VerdictDNAT {
			s.dst = s.to
		}
		// Postrouting sees the translated packet; its NAT verdict is the
		// masquerade flag, the earlier verdict stands.
		v, to := s.verdict, s.to
		s.verdict = ""
		for _, ps := range t.runHook(tabs, p, nodeport.HookPostrouting, []tstate{s}) {
			ps.verdict, ps.to = v, to
			after = append(after, ps)
		}
	}
	return merge(after)
}

// runHook runs the base chains of the hook, table after table. A state
// that got a verdict skips the rest, as the kernel skips the other nat
// chains of a hook once a connection has its NAT binding.
func (t *Tracer) runHook(tabs []*nodeport.Table, p Packet, hook nodeport.Hook, in []tstate) []tstate {
	states := in
	for _, tab := range tabs {
		var out []tstate
		for _, s := range states {
			if s.verdict != "" {
				out = append(out, s)
				continue
			}
			cur := []tstate{s}
			for _, c := range tab.Chains {
				if c.Base == nil || c.Base.Hook != hook {
					continue
				}
				var next []tstate
				for _, cs := range cur {
					if cs.verdict != "" {
						next = append(next, cs)
						continue
					}
					next = append(next, t.run(tab, p, c.Name, cs, 0)...)
				}
				cur = next
			}
			out = append(out, cur...)
		}
		states = out
	}
	return states
}

// run evaluates a chain. States coming back with an empty verdict fell off
// the end of the chain (return to the caller, or the base chain's accept).
func (t *Tracer) run(tab *nodeport.Table, p Packet, name string, st tstate, depth int) []tstate {
	c := tab.Chain(name)
	if c == nil || depth > 16 {
		st.verdict = VerdictDrop // the kernel refuses such rulesets; fail loudly
		return []tstate{st}
	}
	var out []tstate
	pending := []tstate{st}
	for _, r := range c.Rules {
		var next []tstate
		for _, s := range pending {
			for _, rr := range t.evalStmts(tab, p, r, s) {
				switch rr.flow {
				case flowNext, flowNoMatch:
					next = append(next, rr.st)
				case flowTerminal:
					out = append(out, rr.st)
				case flowGoto:
					out = append(out, t.run(tab, p, rr.chain, rr.st, depth+1)...)
				case flowJump:
					for _, js := range t.run(tab, p, rr.chain, rr.st, depth+1) {
						if js.verdict == "" {
							next = append(next, js)
						} else {
							out = append(out, js)
						}
					}
				}
			}
		}
		pending = next
	}
	return append(out, pending...)
}

type ruleResult struct {
	st    tstate
	flow  flow
	chain string
}

// evalStmts evaluates a rule's statements left to right; numgen splits the
// state in two.
func (t *Tracer) evalStmts(tab *nodeport.Table, p Packet, stmts []nodeport.Stmt, st tstate) []ruleResult {
	for i, s := range stmts {
		switch s := s.(type) {
		case nodeport.MatchNumgen:
			hit, miss := st, st
			hit.prob /= float64(s.Mod)
			miss.prob *= float64(s.Mod-1) / float64(s.Mod)
			out := t.evalStmts(tab, p, stmts[i+1:], hit)
			if miss.prob > 0 {
				out = append(out, ruleResult{st: miss, flow: flowNoMatch})
			}
			return out
		case nodeport.MatchProto:
			if p.Proto != s.Proto {
				return noMatch(st)
			}
		case nodeport.MatchSaddr:
			if !s.Prefix.Contains(st.src.Addr()) {
				return noMatch(st)
			}
		case nodeport.MatchSaddrInSet:
			if !t.inSet(tab, s.Set, nodeport.Key{Addr: st.src.Addr()}) {
				return noMatch(st)
			}
		case nodeport.MatchDaddrInSet:
			if !t.inSet(tab, s.Set, nodeport.Key{Addr: st.dst.Addr()}) {
				return noMatch(st)
			}
		case nodeport.MatchDestInSet:
			if !t.inSet(tab, s.Set, nodeport.Key{Addr: st.dst.Addr(), Proto: p.Proto, Port: st.dst.Port()}) {
				return noMatch(st)
			}
		case nodeport.MatchProtoPortInSet:
			if !t.inSet(tab, s.Set, nodeport.Key{Proto: p.Proto, Port: st.dst.Port()}) {
				return noMatch(st)
			}
		case nodeport.MatchAddrPairInSet:
			if !t.inSet(tab, s.Set, nodeport.Key{Addr: st.src.Addr(), Addr2: st.dst.Addr()}) {
				return noMatch(st)
			}
		case nodeport.MatchFibSaddrLocal:
			if !p.FromNode {
				return noMatch(st)
			}
		case nodeport.MatchMark:
			if st.mark&s.Mark != s.Mark {
				return noMatch(st)
			}
		case nodeport.MatchCtDNAT:
			if st.to == (netip.AddrPort{}) {
				return noMatch(st)
			}
		case nodeport.SetMark:
			st.mark |= s.Mark
		case nodeport.ToggleMark:
			st.mark ^= s.Mark
		case nodeport.UpdateSaddr:
			st.updates = append(slices.Clone(st.updates), SetUpdate{Set: s.Set, Addr: st.src.Addr()})
		case nodeport.DispatchVmap:
			e, ok := lookup(tab, s.Map, nodeport.Key{Addr: st.dst.Addr(), Proto: p.Proto, Port: st.dst.Port()})
			if !ok {
				return noMatch(st)
			}
			return []ruleResult{{st: st, flow: flowGoto, chain: e.Goto}}
		case nodeport.NodePortVmap:
			e, ok := lookup(tab, s.Map, nodeport.Key{Proto: p.Proto, Port: st.dst.Port()})
			if !ok {
				return noMatch(st)
			}
			return []ruleResult{{st: st, flow: flowGoto, chain: e.Goto}}
		case nodeport.DNAT:
			st.verdict, st.to = VerdictDNAT, s.To
			return terminal(st)
		case nodeport.Masquerade:
			st.masq = true
			st.verdict = VerdictAccept
			return terminal(st)
		case nodeport.Reject:
			st.verdict = VerdictReject
			return terminal(st)
		case nodeport.Drop:
			st.verdict = VerdictDrop
			return terminal(st)
		case nodeport.Goto:
			return []ruleResult{{st: st, flow: flowGoto, chain: s.Chain}}
		case nodeport.Jump:
			return []ruleResult{{st: st, flow: flowJump, chain: s.Chain}}
		default:
			panic(fmt.Sprintf("nodeport: tracer does not know %T", s))
		}
	}
	return []ruleResult{{st: st, flow: flowNext}}
}

func noMatch(st tstate) []ruleResult  { return []ruleResult{{st: st, flow: flowNoMatch}} }
func terminal(st tstate) []ruleResult { return []ruleResult{{st: st, flow: flowTerminal}} }

func (t *Tracer) inSet(tab *nodeport.Table, name string, k nodeport.Key) bool {
	if t.dyn[tab.Family][name][k.Addr] {
		return true
	}
	s := tab.Set(name)
	if s == nil || s.Dynamic {
		return false
	}
	_, ok := s.Lookup(k)
	return ok
}

func lookup(tab *nodeport.Table, name string, k nodeport.Key) (nodeport.Element, bool) {
	s := tab.Set(name)
	if s == nil {
		return nodeport.Element{}, false
	}
	return s.Lookup(k)
}

func merge(states []tstate) []Outcome {
	var out []Outcome
	for _, s := range states {
		v := s.verdict
		if v == "" {
			v = VerdictAccept
		}
		o := Outcome{Verdict: v, To: s.to, Masquerade: s.masq, Probability: s.prob, Updates: s.updates}
		if v != VerdictDNAT {
			o.To = netip.AddrPort{}
		}
		i := slices.IndexFunc(out, func(x Outcome) bool {
			return x.Verdict == o.Verdict && x.To == o.To && x.Masquerade == o.Masquerade
		})
		if i < 0 {
			out = append(out, o)
			continue
		}
		out[i].Probability += o.Probability
		for _, u := range o.Updates {
			if !slices.Contains(out[i].Updates, u) {
				out[i].Updates = append(out[i].Updates, u)
			}
		}
	}
	slices.SortFunc(out, func(a, b Outcome) int {
		return cmp.Or(cmp.Compare(a.Verdict, b.Verdict), a.To.Compare(b.To), masquerades(a)-masquerades(b))
	})
	return out
}

func masquerades(o Outcome) int {
	if o.Masquerade {
		return 1
	}
	return 0
}
