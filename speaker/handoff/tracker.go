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

// Linger is how long a node goes on handing off an address after it stops
// announcing it: until the new announcer's gratuitous ARP or unsolicited NA
// arrives, clients still send to this node, and the flows it was handing
// off would otherwise be picked up here and reset. When the new announcer is
// the node this one hands off to, and it hands the address's unknown flows
// back here, a segment of a flow neither knows goes back and forth until its
// TTL runs out; such a flow fails either way.
const Linger = 5 * time.Second

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
	// released is when this node stopped announcing the address (zero
	// while it announces it).
	released time.Time
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
// handed off for Linger more, then forgotten.
func (t *Tracker) Update(now time.Time, claims []Claim) []Handoff {
	if t.window <= 0 {
		return nil
	}
	next := make(map[netip.Addr]held, len(claims))
	for _, c := range claims {
		if h, ok := t.held[c.IP]; ok && (now.Before(h.until) || c.From == "") {
			h.released = time.Time{}
			next[c.IP] = h
		} else if c.From != "" {
			next[c.IP] = held{from: c.From, until: now.Add(t.window)}
		}
	}
	for ip, h := range t.held {
		if _, ok := next[ip]; ok {
			continue
		}
		if h.released.IsZero() {
			h.released = now
		}
		if now.Before(h.released.Add(Linger)) {
			next[ip] = h
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
