package election

import (
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
}

// Service is what eligibility needs to know about a Service.
type Service struct {
	// Local is true for externalTrafficPolicy: Local.
	Local bool
	// ReadyEndpoints counts the Service's ready endpoints per node name. Only
	// read when Local.
	ReadyEndpoints map[string]int
}

// Candidates decides which nodes may announce a Service's address.
// selected reports whether an advertisement selecting the address's pool
// selects a node with these labels; nil selects every node.
func Candidates(nodes []Node, selected func(labels.Set) bool, svc Service) []Candidate {
	out := make([]Candidate, len(nodes))
	for i, n := range nodes {
		out[i] = Candidate{Name: n.Name, Reason: reason(n, selected, svc)}
		out[i].Eligible = out[i].Reason == ""
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
	case svc.Local && svc.ReadyEndpoints[n.Name] <= 0:
		return NoLocalEndpoint
	}
	return ""
}
