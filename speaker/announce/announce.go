// Package announce decides, from plain data, which node announces each
// LoadBalancer address in layer 2 and through which interfaces: the pure
// core of the speaker's L2 mode. Every speaker computes the same plan from
// the same inputs, so no coordination objects are needed.
package announce

import (
	"net/netip"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/speaker/election"
)

// Service is a LoadBalancer Service as the planner sees it.
type Service struct {
	Key string // namespace/name
	// IPs are the addresses in status.loadBalancer.ingress, or those the
	// controller offers while it waits for their probe.
	IPs []netip.Addr
	// Offered are the addresses of IPs that wait for a probe before the
	// controller writes them into status.
	Offered []netip.Addr
	Local   bool
	// ReadyEndpoints counts ready endpoints per node name.
	ReadyEndpoints map[string]int
}

// Input is everything the plan depends on.
type Input struct {
	Nodes    []election.Node
	Services []Service
	Pools    *config.Pools
	L2       *config.L2Advertisements
}

// Why an address has no announcer.
const (
	NoPool          = "NotInAnyPool"
	NoAdvertisement = "NoL2Advertisement"
	NoEligibleNode  = "NoEligibleNode"
)

// Decision is the outcome for one address of one Service.
type Decision struct {
	Service string
	IP      netip.Addr
	Pool    string
	// Node announces the address; "" when nobody does, and Reason says why.
	Node   string
	Reason string
	// Standby would announce the address if Node went away; "" when no
	// other node is eligible.
	Standby string
	// Interfaces the announcing node may use (from the advertisements that
	// select the pool and the node).
	Interfaces config.Interfaces
	// Sticky is true when the address does not fail back: its announcer
	// claims it in its heartbeats (see election.Keep).
	Sticky bool
	// Prober probes an offered address of a Local Service that no node
	// announces because no eligible node has a ready endpoint: the node
	// the election picks when endpoints are not looked at. It does not
	// announce the address, it only tells the controller whether another
	// host uses it, so that the Service gets its address without waiting
	// for the probe timeout. Interfaces are the prober's then.
	Prober string
}

// Plan returns one Decision per (Service, address), sorted by Service and
// address.
func Plan(in Input) []Decision {
	byName := make(map[string]election.Node, len(in.Nodes))
	for _, n := range in.Nodes {
		byName[n.Name] = n
	}
	var out []Decision
	for _, svc := range in.Services {
		for _, ip := range svc.IPs {
			out = append(out, decide(in, byName, svc, ip))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].IP.Less(out[j].IP)
	})
	return out
}

func decide(in Input, nodes map[string]election.Node, svc Service, ip netip.Addr) Decision {
	d := Decision{Service: svc.Key, IP: ip}
	if in.Pools != nil {
		d.Pool = in.Pools.PoolOf(ip)
	}
	if d.Pool == "" {
		d.Reason = NoPool
		return d
	}
	if in.L2 == nil || !in.L2.Announced(d.Pool) {
		d.Reason = NoAdvertisement
		return d
	}
	// A node is selected when some advertisement of the pool selects it and
	// grants it at least one interface.
	selected := func(l labels.Set) bool { return in.L2.Interfaces(d.Pool, l).Any() }
	on := func(l labels.Set) election.Interfaces {
		i := in.L2.Interfaces(d.Pool, l)
		return election.Interfaces{All: i.All, Names: i.Names}
	}
	cands := election.Candidates(in.Nodes, selected, election.Service{
		Local: svc.Local, ReadyEndpoints: svc.ReadyEndpoints, IP: ip, Interfaces: on,
	})
	elect := election.Standby
	if d.Sticky = in.L2.Sticky(d.Pool); d.Sticky {
		elect = election.Keep
	}
	node, standby, ok := elect(ip, cands)
	if !ok {
		d.Reason = NoEligibleNode
		if svc.Local && slices.Contains(svc.Offered, ip) {
			all := election.Candidates(in.Nodes, selected, election.Service{IP: ip, Interfaces: on})
			if p, _, ok := election.Standby(ip, all); ok {
				d.Prober = p
				d.Interfaces = in.L2.Interfaces(d.Pool, nodes[p].Labels)
			}
		}
		return d
	}
	d.Node, d.Standby = node, standby
	d.Interfaces = in.L2.Interfaces(d.Pool, nodes[node].Labels)
	return d
}

// ProbedBy returns the decisions whose offered address a node probes
// without announcing it (see Decision.Prober).
func ProbedBy(node string, ds []Decision) []Decision {
	return filter(ds, func(d Decision) bool { return d.Prober == node })
}

// For returns the decisions a node must act on: the addresses it announces.
func For(node string, ds []Decision) []Decision {
	return filter(ds, func(d Decision) bool { return d.Node == node })
}

func filter(ds []Decision, keep func(Decision) bool) []Decision {
	var out []Decision
	for _, d := range ds {
		if keep(d) {
			out = append(out, d)
		}
	}
	return out
}
