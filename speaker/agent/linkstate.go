package agent

import (
	"net/netip"

	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/member"
	"github.com/beaconlb/beacon/speaker/plan"
)

// NodeStates is the optional part of Liveness that carries what each
// speaker reports in its heartbeats (member.Member): its interfaces without
// carrier and its claims on addresses that do not fail back.
type NodeStates interface {
	State(node string) (member.State, bool)
	SetClaims([]netip.Addr)
}

// reported adds the nodes' reported states to the facts. Without
// NodeStates there are none, and every speaker elects by score.
func (a *Agent) reported(f *plan.Facts) {
	ns, ok := a.cfg.Liveness.(NodeStates)
	if !ok {
		return
	}
	f.Members.Reported = map[string]plan.Reported{}
	for _, n := range f.Nodes {
		st, ok := ns.State(n.Name)
		if !ok {
			continue
		}
		r := plan.Reported{Claims: st.Claims}
		for _, l := range st.NoCarrier {
			r.NoCarrier = append(r.NoCarrier, election.Link{Name: l.Name, Prefixes: l.Prefixes})
		}
		f.Members.Reported[n.Name] = r
	}
}

// claim tells the peers which sticky addresses this node announces under
// the plan, so that they keep electing it (election.Keep).
func (a *Agent) claim(l2 *plan.L2) {
	ns, ok := a.cfg.Liveness.(NodeStates)
	if !ok {
		return
	}
	var ips []netip.Addr
	for _, d := range l2.Decisions {
		if d.Node == a.cfg.Node && d.Sticky {
			ips = append(ips, d.IP)
		}
	}
	ns.SetClaims(ips)
}
