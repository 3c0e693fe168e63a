package nodeport

import (
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Flow is what stale-flow matching needs of a conntrack entry.
type Flow struct {
	Proto Protocol
	// OrigDst is where the client sent (a Service frontend); ReplySrc is
	// who answers: the endpoint when the flow was DNATed, else OrigDst.
	OrigDst, ReplySrc netip.AddrPort
	// TCPState is conntrack's state of a TCP flow (TCPTimeWait, ...).
	TCPState uint8
	// Mark is the entry's connection mark.
	Mark uint32
}

// Conntrack's TCP states that mean the connection is over.
const (
	TCPTimeWait uint8 = 7
	TCPClose    uint8 = 8
)

// Conntrack deletes conntrack entries.
type Conntrack interface {
	// DeleteFlows deletes, in one dump of the family's table, the entries
	// for which match is true, and returns how many it deleted.
	DeleteFlows(fam Family, match func(Flow) bool) (int, error)
}

// staleFlows selects UDP entries that would keep sending a client to the
// wrong place: UDP has no end, so conntrack keeps a flow on its endpoint
// as long as the client keeps talking.
type staleFlows struct {
	// gone maps a frontend to the backends removed behind it.
	gone map[netip.AddrPort]map[netip.AddrPort]bool
	// unNATed lists frontends that gained endpoints: flows that reached
	// them untranslated while they had none must be forgotten.
	unNATed map[netip.AddrPort]bool
}

func (s *staleFlows) empty() bool { return len(s.gone) == 0 && len(s.unNATed) == 0 }

func (s *staleFlows) match(f Flow) bool {
	if f.Proto != UDP {
		return false
	}
	if s.gone[f.OrigDst][f.ReplySrc] {
		return true
	}
	return s.unNATed[f.OrigDst] && f.ReplySrc == f.OrigDst
}

// staleUDP compares the UDP service ports of two syncs. Without a previous
// sync (prev == nil) every frontend with endpoints counts as new.
func staleUDP(prev, next []UDPPort) map[Family]*staleFlows {
	type id struct {
		fam Family
		key string
	}
	old := map[id]UDPPort{}
	for _, u := range prev {
		old[id{u.Family, u.Key}] = u
	}
	cur := map[id]UDPPort{}
	for _, u := range next {
		cur[id{u.Family, u.Key}] = u
	}
	out := map[Family]*staleFlows{}
	get := func(f Family) *staleFlows {
		if out[f] == nil {
			out[f] = &staleFlows{gone: map[netip.AddrPort]map[netip.AddrPort]bool{}, unNATed: map[netip.AddrPort]bool{}}
		}
		return out[f]
	}
	for k, o := range old {
		n := cur[k]
		keep := map[netip.AddrPort]bool{}
		for _, b := range n.Backends {
			keep[b] = true
		}
		for _, b := range o.Backends {
			if keep[b] {
				continue
			}
			s := get(k.fam)
			for _, fe := range o.Frontends {
				if s.gone[fe] == nil {
					s.gone[fe] = map[netip.AddrPort]bool{}
				}
				s.gone[fe][b] = true
			}
		}
	}
	for k, n := range cur {
		if o, ok := old[k]; len(n.Backends) > 0 && (!ok || len(o.Backends) == 0) {
			for _, fe := range n.Frontends {
				get(k.fam).unNATed[fe] = true
			}
		}
	}
	for f, s := range out {
		if s.empty() {
			delete(out, f)
		}
	}
	return out
}

// cleanConntrack deletes stale UDP entries after a successful transaction
// (so that the client's next packet meets the new rules). Failures are
// logged, not returned: the ruleset is right, and the next removal retries.
func (a *Applier) cleanConntrack(rs *Ruleset) int {
	var prev []UDPPort
	if a.udpInit {
		prev = a.udpPrev
	}
	a.udpPrev, a.udpInit = rs.UDP, true
	if a.ct == nil {
		return 0
	}
	total := 0
	for _, fam := range []Family{IPv4, IPv6} {
		s := staleUDP(prev, rs.UDP)[fam]
		if s == nil {
			continue
		}
		n, err := a.ct.DeleteFlows(fam, s.match)
		total += n
		if err != nil {
			a.log.Error(err, "deleting stale UDP conntrack entries", "family", fam.String())
		}
	}
	return total
}

// KernelConntrack is the netlink Conntrack.
type KernelConntrack struct{ H *netlink.Handle }

// DeleteFlows implements Conntrack with one ConntrackDeleteFilters call.
func (k KernelConntrack) DeleteFlows(fam Family, match func(Flow) bool) (int, error) {
	af := netlink.InetFamily(unix.AF_INET)
	if fam == IPv6 {
		af = netlink.InetFamily(unix.AF_INET6)
	}
	n, err := k.H.ConntrackDeleteFilters(netlink.ConntrackTable, af, flowFilter(match))
	return int(n), err
}

type flowFilter func(Flow) bool

func (f flowFilter) MatchConntrackFlow(c *netlink.ConntrackFlow) bool {
	fl := Flow{
		Proto:    Protocol(c.Forward.Protocol),
		OrigDst:  addrPort(c.Forward.DstIP, c.Forward.DstPort),
		ReplySrc: addrPort(c.Reverse.SrcIP, c.Reverse.SrcPort),
		Mark:     c.Mark,
	}
	if tcp, ok := c.ProtoInfo.(*netlink.ProtoInfoTCP); ok {
		fl.TCPState = tcp.State
	}
	return f(fl)
}

func addrPort(ip []byte, port uint16) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), port)
}
