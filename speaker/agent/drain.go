package agent

import (
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/plan"
)

// drainClock follows this node's drain in time; owned by the sync loop.
// What the phase changes (routes, hand-offs, reports, Events) is decided
// in package plan.
type drainClock struct {
	tracker *drain.Tracker
	wake    *time.Timer
}

// drain returns this node's drain phase at now, and arranges a sync for
// when it changes next. Without BGP there is nothing to shut down
// gracefully: L2 addresses move at once, and the flow hand-off keeps the
// node's connections.
func (a *Agent) drain(nodes []*v1.Node, now time.Time) plan.Drain {
	d := &a.drainClock
	delay := a.cfg.DrainDelay
	if a.cfg.BGP == nil {
		delay = 0
	}
	if d.tracker == nil {
		lead := drain.DefaultLead
		if a.cfg.BGP == nil {
			lead = 0
		}
		d.tracker = drain.NewTracker(lead, delay)
	}
	excluded := false
	for _, n := range nodes {
		if n.Name == a.cfg.Node {
			excluded = election.ExcludeLabelSet(n.Labels)
		}
	}
	phase, next := d.tracker.Update(now, excluded)
	if d.wake != nil {
		d.wake.Stop()
	}
	if !next.IsZero() {
		d.wake = time.AfterFunc(next.Sub(now), a.markDirty)
	}
	return plan.Drain{Phase: phase, Delay: delay}
}
