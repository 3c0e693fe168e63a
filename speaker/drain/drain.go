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

// Tracker follows one node's drain. It is not safe for concurrent use.
type Tracker struct {
	delay   time.Duration
	updated bool
	phase   Phase
	since   time.Time
}

// NewTracker returns a Tracker whose GracefulShutdown phase lasts delay;
// zero or less withdraws at once.
func NewTracker(delay time.Duration) *Tracker {
	return &Tracker{delay: delay}
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
		t.phase = None
	case t.phase == None && (first || t.delay <= 0):
		t.phase = Withdrawn
	case t.phase == None:
		t.phase, t.since = GracefulShutdown, now
	}
	if t.phase == GracefulShutdown {
		end := t.since.Add(t.delay)
		if now.Before(end) {
			return t.phase, end
		}
		t.phase = Withdrawn
	}
	return t.phase, time.Time{}
}
