package plan

import (
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// Event reasons on this node's Node as it drains (package drain).
const (
	// EventDraining: the node was labelled
	// node.kubernetes.io/exclude-from-external-load-balancers and re-advertises
	// its BGP routes with the GRACEFUL_SHUTDOWN community until the delay ends.
	EventDraining = "Draining"
	// EventDrained: the node announces nothing any more.
	EventDrained = "Drained"
	// EventDrainEnded: the label is gone; the node announces again.
	EventDrainEnded = "DrainEnded"
)

// drainEvents returns the Event on this node's Node for a change of its
// drain phase since the last sync.
func drainEvents(f Facts, prev drain.Phase) []Event {
	if f.Drain.Phase == prev {
		return nil
	}
	e := Event{Kind: "Node", Name: f.Node, Type: v1.EventTypeNormal}
	switch f.Drain.Phase {
	case drain.GracefulShutdown:
		e.Reason, e.Message = EventDraining, "node "+f.Node+" is labelled "+election.ExcludeLabel+
			": L2 addresses move to other nodes; BGP routes carry GRACEFUL_SHUTDOWN (65535:0) and are withdrawn in "+f.Drain.Delay.String()
	case drain.Withdrawn:
		e.Reason, e.Message = EventDrained, "node "+f.Node+" is labelled "+election.ExcludeLabel+" and announces nothing"
	default:
		e.Reason, e.Message = EventDrainEnded, "node "+f.Node+" is no longer labelled "+election.ExcludeLabel+" and announces again"
	}
	return []Event{e}
}

// drainHandoffs returns, for the addresses this node announces by BGP,
// where their unknown mid-stream TCP flows go: to a node that started
// draining less than the hand-off window ago. Routers move that node's
// flows to the other nodes when its paths lose their preference; the
// draining node still holds their conntrack state and serves them. With
// several such nodes the first by name gets them (a flow of another one
// is reset, as without hand-off). A node already draining at this
// process's first L2 plan is not handed anything: its flows moved long
// ago. It records in st when each draining node was first seen.
func drainHandoffs(f Facts, nodes []election.Node, st *State) []handoff.Handoff {
	first := st.Draining == nil
	seen := st.Draining
	st.Draining = map[string]time.Time{}
	var to string
	for _, n := range nodes {
		if n.Name == f.Node || !election.ExcludeLabelSet(n.Labels) {
			continue
		}
		at, ok := seen[n.Name]
		if !ok && !first {
			at = f.Now
		}
		st.Draining[n.Name] = at
		reachable := n.Alive || f.Members.Left[n.Name]
		if !at.IsZero() && f.Now.Sub(at) < f.HandoffWindow && reachable && (to == "" || n.Name < to) {
			to = n.Name
		}
	}
	if to == "" || f.Drain.Phase != drain.None {
		return nil
	}
	var out []handoff.Handoff
	for k := range st.BGP {
		out = append(out, handoff.Handoff{IP: k.IP, Node: to})
	}
	slices.SortFunc(out, func(x, y handoff.Handoff) int { return x.IP.Compare(y.IP) })
	return slices.CompactFunc(out, func(x, y handoff.Handoff) bool { return x.IP == y.IP })
}
