// Package bgpplan decides, from plain data, what one node's speaker
// announces by BGP: which sessions it opens and which prefixes it sends to
// each peer with which attributes. It is the pure core of BGP mode.
//
// Every eligible node announces an address with itself as next hop, so the
// router spreads flows over the nodes by ECMP. For externalTrafficPolicy
// Local only nodes with a ready local endpoint are eligible, so the route
// goes away with the node's last local endpoint.
package bgpplan

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/election"
)

// Input is everything the plan depends on.
type Input struct {
	// Node is this node (Alive is ignored: the plan is for itself).
	Node election.Node
	// NodeAddresses are the node's InternalIPs, for the default router ID.
	NodeAddresses []netip.Addr
	Services      []announce.Service
	Pools         *config.Pools
	BGP           *config.BGP
	// GracefulShutdown is set while the node drains (package drain): it
	// still sends the routes it would send without the exclusion label,
	// with the GRACEFUL_SHUTDOWN community and, towards iBGP peers, local
	// preference 0, so that routers move traffic to the other nodes before
	// the routes go.
	GracefulShutdown bool
}

// GracefulShutdownCommunity is the well-known GRACEFUL_SHUTDOWN community
// (RFC 8326), 65535:0.
var GracefulShutdownCommunity = config.Community{Value: [3]uint32{0xFFFF0000}}

// Route is one prefix sent to one peer.
type Route struct {
	Prefix netip.Prefix
	// Communities are sorted and unique.
	Communities []config.Community
	// LocalPref is nil when unset (and always nil towards eBGP peers).
	LocalPref *uint32
}

// Session is one peer this node opens a session with, and what it sends.
type Session struct {
	Peer *config.BGPPeer
	// BFD is nil when the peer has no BFD profile.
	BFD *config.BFDProfile
	// Routes are sorted by prefix.
	Routes []Route
}

// Announcement says which addresses of a Service this node announces, and
// to which peers (for the per-Service report).
type Announcement struct {
	Service   string
	Addresses []netip.Addr
	Peers     []string
}

// Plan is the outcome for this node.
type Plan struct {
	// RouterID is the BGP identifier for every session; invalid when none
	// could be chosen (Problems says why, and Sessions is empty).
	RouterID netip.Addr
	// ASN is the speaker's global AS number: the myASN of the first session
	// by name (others may differ; each session carries its own).
	ASN uint32
	// Sessions are sorted by peer name.
	Sessions []Session
	// Announcements are sorted by Service.
	Announcements []Announcement
	// Problems are configuration problems worth reporting, sorted.
	Problems []string
}

// Make computes the plan.
func Make(in Input) Plan {
	var out Plan
	if in.BGP == nil {
		return out
	}
	byPeer := map[string]*Session{}
	var names []string
	for name, p := range in.BGP.Peers {
		if !p.SelectsNode(in.Node.Labels) {
			continue
		}
		byPeer[name] = &Session{Peer: p, BFD: in.BGP.BFDProfiles[p.BFDProfile]}
		names = append(names, name)
	}
	if len(names) == 0 {
		return out
	}
	sort.Strings(names)
	out.ASN = byPeer[names[0]].Peer.MyASN
	out.RouterID, out.Problems = routerID(in, names, byPeer)
	if !out.RouterID.IsValid() {
		return out
	}

	// routes[peer][prefix] accumulates attributes over advertisements.
	routes := map[string]map[netip.Prefix]*Route{}
	conflicts := map[string]bool{}
	for _, svc := range in.Services {
		ann := Announcement{Service: svc.Key}
		peersOf := map[string]bool{}
		for _, ip := range svc.IPs {
			sent := false
			for _, a := range advertisements(in, svc, ip) {
				prefix := a.Prefix(ip)
				for _, name := range names {
					s := byPeer[name]
					if !a.SelectsPeer(name) || s.Peer.Family() != config.FamilyOf(ip) {
						continue
					}
					if routes[name] == nil {
						routes[name] = map[netip.Prefix]*Route{}
					}
					r := routes[name][prefix]
					if r == nil {
						r = &Route{Prefix: prefix}
						routes[name][prefix] = r
					}
					r.Communities = append(r.Communities, a.Communities...)
					if in.GracefulShutdown {
						r.Communities = append(r.Communities, GracefulShutdownCommunity)
					}
					if a.LocalPref != nil && s.Peer.IBGP() && !in.GracefulShutdown {
						if r.LocalPref != nil && *r.LocalPref != *a.LocalPref {
							conflicts[fmt.Sprintf("BGPAdvertisements give %s different localPref values towards peer %s; the highest is used", prefix, name)] = true
						}
						if r.LocalPref == nil || *a.LocalPref > *r.LocalPref {
							v := *a.LocalPref
							r.LocalPref = &v
						}
					}
					sent = true
					peersOf[name] = true
				}
			}
			if sent {
				ann.Addresses = append(ann.Addresses, ip)
			}
		}
		if len(ann.Addresses) > 0 {
			for p := range peersOf {
				ann.Peers = append(ann.Peers, p)
			}
			sort.Strings(ann.Peers)
			slices.SortFunc(ann.Addresses, netip.Addr.Compare)
			out.Announcements = append(out.Announcements, ann)
		}
	}
	sort.Slice(out.Announcements, func(i, j int) bool { return out.Announcements[i].Service < out.Announcements[j].Service })
	for _, name := range names {
		s := byPeer[name]
		for _, r := range routes[name] {
			if in.GracefulShutdown && s.Peer.IBGP() {
				zero := uint32(0)
				r.LocalPref = &zero
			}
			slices.SortFunc(r.Communities, config.Community.Compare)
			r.Communities = slices.Compact(r.Communities)
			s.Routes = append(s.Routes, *r)
		}
		sort.Slice(s.Routes, func(i, j int) bool { return prefixLess(s.Routes[i].Prefix, s.Routes[j].Prefix) })
		out.Sessions = append(out.Sessions, *s)
	}
	for c := range conflicts {
		out.Problems = append(out.Problems, c)
	}
	sort.Strings(out.Problems)
	return out
}

// advertisements returns the BGPAdvertisements under which this node
// announces ip of svc: those selecting its pool and this node, when the node
// is eligible for the Service.
func advertisements(in Input, svc announce.Service, ip netip.Addr) []*config.BGPAdvertisement {
	if in.Pools == nil {
		return nil
	}
	name := in.Pools.PoolOf(ip)
	if name == "" {
		return nil
	}
	pool := in.Pools.ByName[name]
	var sel []*config.BGPAdvertisement
	for _, a := range in.BGP.ForPool(name, pool.Labels) {
		if a.SelectsNode(in.Node.Labels) {
			sel = append(sel, a)
		}
	}
	if len(sel) == 0 {
		return nil
	}
	node := in.Node
	node.Alive = true
	if in.GracefulShutdown {
		node.Labels = withoutExclusion(node.Labels)
	}
	c := election.Candidates([]election.Node{node}, nil, election.Service{Local: svc.Local, ReadyEndpoints: svc.ReadyEndpoints})
	if !c[0].Eligible {
		return nil
	}
	return sel
}

// withoutExclusion returns a copy of labels without the exclusion label.
func withoutExclusion(l labels.Set) labels.Set {
	out := make(labels.Set, len(l))
	for k, v := range l {
		if k != election.ExcludeLabel {
			out[k] = v
		}
	}
	return out
}

// routerID picks the explicit routerID of the sessions (they must agree) or
// the node's first IPv4 address.
func routerID(in Input, names []string, byPeer map[string]*Session) (netip.Addr, []string) {
	var id netip.Addr
	var from string
	var problems []string
	for _, n := range names {
		r := byPeer[n].Peer.RouterID
		if !r.IsValid() {
			continue
		}
		if !id.IsValid() {
			id, from = r, n
			continue
		}
		if r != id {
			problems = append(problems, fmt.Sprintf("BGPPeer %s asks for routerID %s but %s asks for %s; using %s", n, r, from, id, id))
		}
	}
	if id.IsValid() {
		return id, problems
	}
	for _, a := range in.NodeAddresses {
		if a.Is4() {
			return a, problems
		}
	}
	return netip.Addr{}, append(problems, "no routerID: the node has no IPv4 InternalIP and no BGPPeer sets routerID")
}

func prefixLess(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

// Announces says whether Make, given in, would announce at least one
// address of svc: the same rules without building routes, cheap enough
// to ask about other nodes (package plan does, to pick a Service's
// reporters).
func Announces(in Input, svc announce.Service) bool {
	if in.BGP == nil {
		return false
	}
	byPeer := map[string]*Session{}
	var names []string
	for name, p := range in.BGP.Peers {
		if p.SelectsNode(in.Node.Labels) {
			byPeer[name] = &Session{Peer: p}
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return false
	}
	sort.Strings(names)
	if id, _ := routerID(in, names, byPeer); !id.IsValid() {
		return false
	}
	for _, ip := range svc.IPs {
		for _, a := range advertisements(in, svc, ip) {
			for _, name := range names {
				if a.SelectsPeer(name) && byPeer[name].Peer.Family() == config.FamilyOf(ip) {
					return true
				}
			}
		}
	}
	return false
}
