package election

import (
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
)

// ExcludeLabel on a Node keeps it from announcing any load-balancer address,
// whatever its value (as the upstream service controller treats it).
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// ExcludeLabelSet reports whether labels carry ExcludeLabel.
func ExcludeLabelSet(l labels.Set) bool { return l.Has(ExcludeLabel) }

// Reason says why a node may not announce.
type Reason string

// Reasons, in the order Candidates checks them: the first that applies is
// reported.
const (
	// NotSelected: no advertisement that selects the address's pool selects
	// the node.
	NotSelected Reason = "NotSelected"
	// Excluded: the node carries ExcludeLabel.
	Excluded Reason = "ExcludedFromLoadBalancers"
	// NetworkUnavailable: the node's NetworkUnavailable condition is True.
	NetworkUnavailable Reason = "NetworkUnavailable"
	// NotAlive: the node's speaker is not alive per member liveness.
	NotAlive Reason = "SpeakerNotAlive"
	// NoCarrier: an interface the node would announce the address on has
	// lost carrier (its cable is out or its switch port is down), while the
	// node itself is still heard from.
	NoCarrier Reason = "NoCarrier"
	// NoLocalEndpoint: the Service has externalTrafficPolicy Local and no
	// ready endpoint on the node.
	NoLocalEndpoint Reason = "NoLocalEndpoint"
)

// Node is what eligibility needs to know about a node.
type Node struct {
	Name   string
	Labels labels.Set
	// NetworkUnavailable is true when the node's NetworkUnavailable
	// condition is True.
	NetworkUnavailable bool
	// Alive is true when the node's speaker is alive (member liveness).
	Alive bool
	// NoCarrier lists the node's interfaces that have lost carrier, as its
	// speaker reports them in its heartbeats.
	NoCarrier []Link
	// Claims holds the addresses the node says it announces now; only
	// addresses that do not fail back are listed (see Keep).
	Claims []netip.Addr
	// ClaimsUnknown is true when the node's speaker does not report claims
	// (an older version): see Keep.
	ClaimsUnknown bool
}

// Link is a node's interface that has lost carrier.
type Link struct {
	Name string
	// Prefixes are the interface's connected prefixes: an address in one of
	// them would be announced on it when any on-link interface may announce.
	Prefixes []netip.Prefix
}

// Interfaces says where a node may announce an address: on every interface
// on whose connected subnet the address lies (All), or on the named ones.
type Interfaces struct {
	All   bool
	Names []string
}

// onLink reports whether l has a connected prefix containing ip.
func (l Link) onLink(ip netip.Addr) bool {
	for _, p := range l.Prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Service is what eligibility needs to know about a Service.
type Service struct {
	// Local is true for externalTrafficPolicy: Local.
	Local bool
	// ReadyEndpoints counts the Service's ready endpoints per node name. Only
	// read when Local.
	ReadyEndpoints map[string]int
	// IP is the address being elected. With Interfaces it decides
	// NoCarrier and, with the nodes' Claims, Candidate.Claimed.
	IP netip.Addr
	// Interfaces returns where a node with these labels may announce IP;
	// nil skips the carrier check.
	Interfaces func(labels.Set) Interfaces
}

// Candidates decides which nodes may announce a Service's address.
// selected reports whether an advertisement selecting the address's pool
// selects a node with these labels; nil selects every node.
func Candidates(nodes []Node, selected func(labels.Set) bool, svc Service) []Candidate {
	out := make([]Candidate, len(nodes))
	for i, n := range nodes {
		out[i] = Candidate{Name: n.Name, Reason: reason(n, selected, svc)}
		out[i].Eligible = out[i].Reason == ""
		out[i].Claimed = svc.IP.IsValid() && slices.Contains(n.Claims, svc.IP)
		out[i].ClaimsUnknown = n.ClaimsUnknown
	}
	return out
}

func reason(n Node, selected func(labels.Set) bool, svc Service) Reason {
	switch {
	case selected != nil && !selected(n.Labels):
		return NotSelected
	case n.Labels.Has(ExcludeLabel):
		return Excluded
	case n.NetworkUnavailable:
		return NetworkUnavailable
	case !n.Alive:
		return NotAlive
	case noCarrier(n, svc):
		return NoCarrier
	case svc.Local && svc.ReadyEndpoints[n.Name] <= 0:
		return NoLocalEndpoint
	}
	return ""
}

// noCarrier reports whether the node cannot announce svc.IP for lack of
// carrier. When any on-link interface may announce, one interface without
// carrier on the address's subnet is enough: the address then moves to a
// node that answers on all of its LAN rather than part of it. When the
// advertisements name interfaces, every named one must be reported without
// carrier: peers do not know which of them exist on the node, and a named
// interface that is absent or unplugged on some nodes must not make them
// all ineligible.
func noCarrier(n Node, svc Service) bool {
	if len(n.NoCarrier) == 0 || svc.Interfaces == nil || !svc.IP.IsValid() {
		return false
	}
	on := svc.Interfaces(n.Labels)
	if on.All {
		return slices.ContainsFunc(n.NoCarrier, func(l Link) bool { return l.onLink(svc.IP) })
	}
	for _, name := range on.Names {
		if !slices.ContainsFunc(n.NoCarrier, func(l Link) bool { return l.Name == name }) {
			return false
		}
	}
	return len(on.Names) > 0
}
