package plan

import (
	"cmp"
	"iter"
	"maps"
	"math"
	"net/netip"
	"slices"
	"sort"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/bgpplan"
	"github.com/beaconlb/beacon/speaker/election"
)

// BGPReporters is how many nodes report a Service announced by BGP: its
// ServiceAnnouncements and its Announcing and Withdrawn Events come from
// at most this many of the nodes that announce it. Every eligible node
// announces a BGP address (the router spreads flows over them by ECMP), so
// a report from each would cost one write per node for each Service
// change: 1,000 creates for one new Service on 1,000 nodes, and 10 million
// objects for 10,000 Services. Three keep a report while one or two of
// them restart.
const BGPReporters = 3

// reporters picks the nodes that report each BGP Service. Every speaker
// computes the same choice from what every speaker sees: the Node objects,
// the BGP configuration, the Service's endpoints and member liveness. The
// nodes sit on a hash ring by name; the reporters of an address are the
// first BGPReporters nodes clockwise from its Service's point that
// announce it, those whose speaker is alive and that are not excluded from
// load balancers first, and a node reports a Service when it reports one
// of its addresses. So a node joining or leaving moves the reports of
// about BGPReporters/n of the Services, not of all of them.
//
// A node's own announcements are what it plans; another node's are
// bgpplan.Announces on its Node object. They differ only where the node
// knows more than the others: while it drains (an excluded node announces
// during its lead and GracefulShutdown phases, then withdraws), which is
// why excluded nodes rank after the others instead of not at all.
type reporters struct {
	self string
	k    int // reporters per address
	// selfLast: this node is excluded, so it ranks after the others.
	selfLast bool
	ring     []ringNode // every node, by point
	nodes    map[string]*reporterNode
	pools    *config.Pools
	// announces memoises bgpplan.Announces by node and the pool and
	// family of an address: nothing else about a Service changes the
	// answer for the nodes order yields.
	announces map[announceKey]bool
	seen      map[string]bool // order's, reused
}

type announceKey struct {
	node, pool string
	v4         bool
}

type ringNode struct {
	point uint64
	name  string
}

type reporterNode struct {
	in     bgpplan.Input // the node without the exclusion label
	points [ringPoints]uint64
	// last: excluded or its speaker not alive.
	last bool
}

func newReporters(f Facts, in announce.Input, cfg *config.BGP) *reporters {
	r := &reporters{self: f.Node, k: cmp.Or(f.BGPReporters, BGPReporters), nodes: map[string]*reporterNode{}, pools: in.Pools, announces: map[announceKey]bool{}, seen: map[string]bool{}}
	for _, n := range f.Nodes {
		labels := n.Labels
		excluded := election.ExcludeLabelSet(labels)
		if excluded {
			labels = maps.Clone(labels)
			delete(labels, election.ExcludeLabel)
		}
		var addrs []netip.Addr
		if ip, ok := internalIP(n, true); ok {
			addrs = append(addrs, ip)
		}
		r.nodes[n.Name] = &reporterNode{
			in: bgpplan.Input{Node: election.Node{Name: n.Name, Labels: labels,
				NetworkUnavailable: nodeCondition(n, v1.NodeNetworkUnavailable)}, NodeAddresses: addrs, Pools: in.Pools, BGP: cfg},
			last: excluded || (n.Name != f.Node && !f.Members.Alive[n.Name]),
		}
		if n.Name == f.Node {
			r.selfLast = excluded
		}
		rn := r.nodes[n.Name]
		rn.points = points(n.Name)
		for _, p := range rn.points {
			r.ring = append(r.ring, ringNode{p, n.Name})
		}
	}
	slices.SortFunc(r.ring, func(a, b ringNode) int { return cmp.Or(cmp.Compare(a.point, b.point), cmp.Compare(a.name, b.name)) })
	return r
}

// reports says whether this node, which announces mine of svc's
// addresses, reports svc: whether it is among the first BGPReporters
// announcers of one of them. Per address, because advertisements may send
// a dual-stack Service's families from different nodes, and each address
// needs a report that lists it.
func (r *reporters) reports(svc announce.Service, mine []netip.Addr) bool {
	for _, ip := range mine {
		if r.reportsAddress(svc, ip) {
			return true
		}
	}
	return false
}

func (r *reporters) reportsAddress(svc announce.Service, ip netip.Addr) bool {
	announces := func(name string) bool {
		n := r.nodes[name]
		if n == nil || r.pools == nil {
			return false
		}
		k := announceKey{name, r.pools.PoolOf(ip), ip.Is4()}
		a, ok := r.announces[k]
		if !ok {
			// Without the Service's policy: order yields only nodes with a
			// local endpoint for a Local one.
			a = bgpplan.Announces(n.in, announce.Service{Key: svc.Key, IPs: []netip.Addr{ip}})
			r.announces[k] = a
		}
		return a
	}
	last := func(name string) bool { n := r.nodes[name]; return n == nil || n.last }
	// Those that rank before this node: first the nodes not last (all of
	// them when this node is last), then the last ones before it.
	before := 0
	passed := false
	for name := range r.order(svc) {
		if name == r.self {
			if !r.selfLast {
				return true
			}
			passed = true
			continue
		}
		if last(name) && (!r.selfLast || passed) {
			continue
		}
		if !announces(name) {
			continue
		}
		if before++; before >= r.k {
			return false
		}
	}
	return true
}

// order yields the candidate nodes clockwise from svc's point on the
// ring, each once: for externalTrafficPolicy Local only the nodes with a
// ready endpoint (no other node announces it), else every node, lazily,
// so that a Service whose first nodes announce it costs a few steps.
func (r *reporters) order(svc announce.Service) iter.Seq[string] {
	p := nameHash(svc.Key)
	if svc.Local {
		dist := map[string]uint64{}
		for n, c := range svc.ReadyEndpoints {
			// A node without a Node object announces nothing.
			if rn := r.nodes[n]; rn != nil && c > 0 {
				d := uint64(math.MaxUint64)
				for _, q := range rn.points {
					d = min(d, q-p)
				}
				dist[n] = d
			}
		}
		return slices.Values(slices.SortedFunc(maps.Keys(dist), func(a, b string) int {
			return cmp.Or(cmp.Compare(dist[a], dist[b]), cmp.Compare(a, b))
		}))
	}
	return func(yield func(string) bool) {
		i := sort.Search(len(r.ring), func(i int) bool { return r.ring[i].point >= p })
		seen := r.seen
		clear(seen)
		for j := range r.ring {
			n := r.ring[(i+j)%len(r.ring)].name
			if seen[n] {
				continue
			}
			seen[n] = true
			if !yield(n) {
				return
			}
		}
	}
}

// ringPoints is how many points each node has on the ring: with one, the
// busiest of 10 nodes reported six times as many of 200 Services as the
// least busy; with 16, about twice as many.
const ringPoints = 16

// points are a node's points on the ring.
func points(node string) [ringPoints]uint64 {
	h := fnv(node)
	var out [ringPoints]uint64
	for i := range out {
		out[i] = election.Mix64((h ^ uint64(i)) * fnvPrime)
	}
	return out
}

// nameHash is a Service's point on the ring: FNV-1a-64 finalised by
// election.Mix64 (names often differ only in their last bytes).
func nameHash(s string) uint64 { return election.Mix64(fnv(s)) }

const fnvPrime = 1099511628211

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}
