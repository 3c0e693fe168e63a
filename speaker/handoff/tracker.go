package handoff

import (
	"net/netip"
	"sort"
	"time"
)

// DefaultWindow is how long unknown mid-stream flows of a taken-over
// address go to the previous announcer. Connections older than the window
// that are still idle when it ends are reset on their next segment.
const DefaultWindow = 2 * time.Minute

// Claim is an address this node announces and the node that announced it
// before ("" when nobody did or it is not known).
type Claim struct {
	IP   netip.Addr
	From string
}

// Handoff sends an address's unknown mid-stream flows to Node.
type Handoff struct {
	IP   netip.Addr
	Node string
}

// Tracker remembers, per announced address, whom it was taken from and
// when that stops mattering. It is not safe for concurrent use.
type Tracker struct {
	window time.Duration
	held   map[netip.Addr]held
}

type held struct {
	from  string
	until time.Time
}

// NewTracker returns a Tracker that hands flows off for window after each
// takeover; a window of zero or less disables hand-off.
func NewTracker(window time.Duration) *Tracker {
	return &Tracker{window: window, held: map[netip.Addr]held{}}
}

// Update takes every address this node announces now, and returns the
// hand-offs in force at now, sorted by address. An address keeps the
// previous announcer it was first taken from until the window ends, even if
// later claims name another (the first one holds the flows); after the
// window a new claim starts a new one; addresses no longer announced are
// forgotten.
func (t *Tracker) Update(now time.Time, claims []Claim) []Handoff {
	if t.window <= 0 {
		return nil
	}
	next := make(map[netip.Addr]held, len(claims))
	for _, c := range claims {
		if h, ok := t.held[c.IP]; ok && (now.Before(h.until) || c.From == "") {
			next[c.IP] = h
		} else if c.From != "" {
			next[c.IP] = held{from: c.From, until: now.Add(t.window)}
		}
	}
	t.held = next
	var out []Handoff
	for ip, h := range next {
		if now.Before(h.until) {
			out = append(out, Handoff{IP: ip, Node: h.from})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

// NextExpiry returns when the earliest hand-off in force ends.
func (t *Tracker) NextExpiry(now time.Time) (time.Time, bool) {
	var at time.Time
	for _, h := range t.held {
		if now.Before(h.until) && (at.IsZero() || h.until.Before(at)) {
			at = h.until
		}
	}
	return at, !at.IsZero()
}
