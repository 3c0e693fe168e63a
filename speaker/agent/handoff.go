package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// applyHandoff (with extra: the BGP hand-offs to a draining node, see
// drainHandoffs) works out, for every address this node announces in plan,
// who announced it before, and programs the hand-offs in force. Before
// this process's first plan the previous announcer is not known; the
// standby (who holds the address while this node is away) is the best
// guess, and right after a restart it is the right one. The same holds
// when the standby rejoins (a healed partition): this node kept the
// address while cut off, but the standby's side elected the standby, and
// the clients that went there come back now.
func (a *Agent) applyHandoff(prev []announce.Decision, planned bool, plan []announce.Decision, nodes []election.Node, rejoined map[string]bool, extra []handoff.Handoff) error {
	if a.cfg.Handoff == nil {
		return nil
	}
	before := make(map[netip.Addr]string, len(prev))
	for _, d := range prev {
		before[d.IP] = d.Node
	}
	var claims []handoff.Claim
	for _, d := range announce.For(a.cfg.Node, plan) {
		from := before[d.IP]
		if !planned || from == a.cfg.Node && rejoined[d.Standby] {
			from = d.Standby
		}
		if from == a.cfg.Node {
			from = ""
		}
		claims = append(claims, handoff.Claim{IP: d.IP, From: from})
	}
	reachable := map[string]bool{}
	for _, n := range nodes {
		// A node that vanished cannot serve its flows; one whose speaker
		// stopped gracefully (or is back) still can.
		reachable[n.Name] = n.Alive || a.cfg.Liveness.Left(n.Name)
	}
	var routes []handoff.Route
	hs := a.handoffs.Update(time.Now(), claims)
	for _, h := range extra {
		if !slices.ContainsFunc(hs, func(x handoff.Handoff) bool { return x.IP == h.IP }) {
			hs = append(hs, h)
		}
	}
	for _, h := range hs {
		if !reachable[h.Node] {
			continue
		}
		o, ok, _ := a.nodes.GetByKey(h.Node)
		if !ok {
			continue
		}
		if via, ok := internalIP(o.(*v1.Node), h.IP.Is4()); ok {
			routes = append(routes, handoff.Route{IP: h.IP, Via: via})
		}
	}
	if err := a.cfg.Handoff.Apply(routes); err != nil {
		return fmt.Errorf("hand-off (%s): %w", handoff.String(routes), err)
	}
	return nil
}
