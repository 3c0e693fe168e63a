package drain

import "time"

// DefaultDelay is how long a draining node keeps its BGP routes, marked
// for graceful shutdown, before it withdraws them: long enough for routers
// to converge on the other nodes, short enough for a maintenance window.
const DefaultDelay = 30 * time.Second

// Phase is where a node stands in a drain.
type Phase string

// Phases, in order.
const (
	// None: the node is not draining.
	None Phase = ""
	// GracefulShutdown: the node re-advertises its BGP routes with the
	// GRACEFUL_SHUTDOWN community until the delay ends.
	GracefulShutdown Phase = "GracefulShutdown"
	// Withdrawn: the node announces nothing.
	Withdrawn Phase = "Withdrawn"
)

// DefaultLead is how long a node that starts draining keeps announcing as
// before. Every speaker sees the label at about the same moment; the lead
// lets the others put their flow hand-off in place before routers move
// this node's flows to them (the lab's router does so within 100 ms of
// the GRACEFUL_SHUTDOWN update, faster than a busy speaker may react).
const DefaultLead = time.Second

// Tracker follows one node's drain. It is not safe for concurrent use.
type Tracker struct {
	lead, delay time.Duration
	updated     bool
	draining    bool // excluded and past the first Update
	withdrawn   bool // excluded at the first Update
	since       time.Time
}

// NewTracker returns a Tracker whose drain starts after lead and whose
// GracefulShutdown phase then lasts delay; zero or less withdraws at once
// (after the lead).
func NewTracker(lead, delay time.Duration) *Tracker {
	return &Tracker{lead: max(lead, 0), delay: max(delay, 0)}
}

// Update takes whether the node is excluded from load balancing at now and
// returns its phase, and when the phase changes next without a change of
// the label (zero if it does not). A process whose first Update already
// finds the node excluded announced nothing yet, so there is nothing to
// move gracefully: it starts Withdrawn.
func (t *Tracker) Update(now time.Time, excluded bool) (Phase, time.Time) {
	first := !t.updated
	t.updated = true
	switch {
	case !excluded:
		t.draining, t.withdrawn = false, false
		return None, time.Time{}
	case first:
		t.withdrawn = true
	case t.withdrawn:
	case !t.draining:
		t.draining, t.since = true, now
	}
	if t.withdrawn {
		return Withdrawn, time.Time{}
	}
	start, end := t.since.Add(t.lead), t.since.Add(t.lead+t.delay)
	switch {
	case now.Before(start):
		return None, start
	case now.Before(end):
		return GracefulShutdown, end
	}
	return Withdrawn, time.Time{}
}
