package agent

import (
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// Event reasons on the Node as it drains (package drain).
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

// drainState follows this node's drain; owned by the sync loop.
type drainState struct {
	tracker *drain.Tracker
	phase   drain.Phase
	wake    *time.Timer
}

// drainPhase returns this node's drain phase now, records an Event on the
// Node when it changed, and arranges a sync for when it changes next.
// Without BGP there is nothing to shut down gracefully: L2 addresses move
// at once, and the flow hand-off keeps the node's connections.
func (a *Agent) drainPhase(self *v1.Node) drain.Phase {
	d := &a.drainSt
	if d.tracker == nil {
		lead, delay := drain.DefaultLead, a.cfg.DrainDelay
		if a.bgp == nil {
			lead, delay = 0, 0
		}
		d.tracker = drain.NewTracker(lead, delay)
	}
	excluded := self != nil && election.ExcludeLabelSet(self.Labels)
	phase, next := d.tracker.Update(time.Now(), excluded)
	if d.wake != nil {
		d.wake.Stop()
	}
	if !next.IsZero() {
		d.wake = time.AfterFunc(time.Until(next), a.markDirty)
	}
	if phase == d.phase {
		return phase
	}
	prev := d.phase
	d.phase = phase
	a.cfg.Log.Info("drain", "phase", string(phase), "previous", string(prev))
	if a.cfg.Recorder == nil || self == nil {
		return phase
	}
	switch phase {
	case drain.GracefulShutdown:
		a.cfg.Recorder.Eventf(self, v1.EventTypeNormal, EventDraining,
			"node %s is labelled %s: L2 addresses move to other nodes; BGP routes carry GRACEFUL_SHUTDOWN (65535:0) and are withdrawn in %v",
			a.cfg.Node, election.ExcludeLabel, a.cfg.DrainDelay)
	case drain.Withdrawn:
		a.cfg.Recorder.Eventf(self, v1.EventTypeNormal, EventDrained,
			"node %s is labelled %s and announces nothing", a.cfg.Node, election.ExcludeLabel)
	case drain.None:
		a.cfg.Recorder.Eventf(self, v1.EventTypeNormal, EventDrainEnded,
			"node %s is no longer labelled %s and announces again", a.cfg.Node, election.ExcludeLabel)
	}
	return phase
}

// drainHandoffs returns, for the addresses this node announces by BGP,
// where their unknown mid-stream TCP flows go: to a node that started
// draining less than the hand-off window ago. Routers move that node's
// flows to the other nodes when its paths lose their preference; the
// draining node still holds their conntrack state and serves them. With
// several such nodes the first by name gets them (a flow of another one
// is reset, as without hand-off). A node this process found already
// draining at its start is not handed anything: its flows moved long ago.
func (a *Agent) drainHandoffs(nodes []election.Node, now time.Time) []handoff.Handoff {
	first := a.drainSeen == nil
	if first {
		a.drainSeen = map[string]time.Time{}
	}
	var to string
	for _, n := range nodes {
		if n.Name == a.cfg.Node || !election.ExcludeLabelSet(n.Labels) {
			delete(a.drainSeen, n.Name)
			continue
		}
		at, ok := a.drainSeen[n.Name]
		if !ok {
			if first {
				at = time.Time{}
			} else {
				at = now
			}
			a.drainSeen[n.Name] = at
		}
		if !at.IsZero() && now.Sub(at) < a.cfg.HandoffWindow && (n.Alive || a.cfg.Liveness.Left(n.Name)) && (to == "" || n.Name < to) {
			to = n.Name
		}
	}
	if to == "" || a.bgp == nil || a.drainSt.phase != drain.None {
		return nil
	}
	var out []handoff.Handoff
	for k := range a.bgp.announced {
		out = append(out, handoff.Handoff{IP: k.ip, Node: to})
	}
	slices.SortFunc(out, func(x, y handoff.Handoff) int { return x.IP.Compare(y.IP) })
	return slices.CompactFunc(out, func(x, y handoff.Handoff) bool { return x.IP == y.IP })
}
