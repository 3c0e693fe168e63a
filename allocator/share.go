package allocator

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// Port is a port of a Service, as far as sharing an address is concerned.
type Port struct {
	Protocol string // "TCP", "UDP" or "SCTP"
	Port     int32
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Port, p.Protocol) }

func comparePorts(a, b Port) int {
	return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
}

// share is what decides whether holders of one address get along.
type share struct {
	key      string
	ports    []Port // sorted, no duplicates
	local    bool
	selector string
}

func shareOf(req *Request) share {
	ports := slices.Clone(req.Ports)
	slices.SortFunc(ports, comparePorts)
	return share{
		key:      req.SharingKey,
		ports:    slices.Compact(ports),
		local:    req.Local,
		selector: req.Selector,
	}
}

// holder is one Service's claim on one address. The sharing attributes are
// kept per address, not per Service: an address kept as stale keeps the
// attributes it was valid with, so that the recorded holders of an address
// always get along.
type holder struct {
	key   string
	share share
}

// conflict explains why a Service (key, s) may not hold ip next to o, or
// returns nil.
func conflict(ip netip.Addr, key string, s share, o holder) *Error {
	switch {
	case s.key == "" || o.share.key == "":
		return errorf(ReasonIPInUse, "%s is in use by Service %s; to share it, both Services need the same beaconlb.io/allow-shared-ip key", ip, o.key)
	case s.key != o.share.key:
		return errorf(ReasonSharingConflict, "%s is shared under key %q by Service %s, but Service %s uses key %q", ip, o.share.key, o.key, key, s.key)
	}
	if p, ok := overlap(s.ports, o.share.ports); ok {
		return errorf(ReasonSharingConflict, "%s cannot be shared: port %s is used by both Service %s and Service %s", ip, p, o.key, key)
	}
	if (s.local || o.share.local) && s.selector != o.share.selector {
		return errorf(ReasonSharingConflict, "%s cannot be shared by Service %s (selector %q) and Service %s (selector %q): with externalTrafficPolicy Local, Services sharing an address must select the same pods", ip, o.key, o.share.selector, key, s.selector)
	}
	return nil
}

// overlap returns a port two sorted port lists have in common.
func overlap(a, b []Port) (Port, bool) {
	for len(a) > 0 && len(b) > 0 {
		switch c := comparePorts(a[0], b[0]); {
		case c == 0:
			return a[0], true
		case c < 0:
			a = a[1:]
		default:
			b = b[1:]
		}
	}
	return Port{}, false
}
