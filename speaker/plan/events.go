package plan

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/config"
)

// Event reasons. The speaker records Announcing and Withdrawn on Services;
// each speaker records the warnings on the configuration objects it cannot
// use, and the API server aggregates them.
const (
	// EventAnnouncing: this node started announcing one of the Service's
	// addresses (the message names the node, the mode and the interfaces
	// or peers).
	EventAnnouncing = "Announcing"
	// EventWithdrawn: this node stopped announcing some of the Service's
	// addresses; the message names the node, the addresses and why.
	EventWithdrawn = "Withdrawn"
	// EventL2ConfigInvalid: an L2Advertisement the speakers cannot use (an
	// invalid selector, say); they ignore it until it is fixed.
	EventL2ConfigInvalid = "InvalidL2Advertisement"
	// EventBGPConfigInvalid: an invalid BGP object; a peer keeps its last
	// valid configuration.
	EventBGPConfigInvalid = "InvalidBGPConfiguration"
	// EventBGPConfigWarning: a BGP object that is used but has a problem.
	EventBGPConfigWarning = "BGPConfigurationWarning"
)

// Event is one Kubernetes Event to record.
type Event struct {
	// Kind is "Service" (Namespace and Name set) or the kind of a
	// cluster-scoped configuration object.
	Kind, Namespace, Name string
	Type                  string // v1.EventTypeNormal or v1.EventTypeWarning
	Reason, Message       string
	// Address is the address an L2 Announcing Event is about: the agent
	// records it only once the address is answered for (after its probe).
	Address netip.Addr
}

func serviceEvent(key, reason, format string, args ...any) Event {
	ns, name, _ := strings.Cut(key, "/")
	return Event{Kind: "Service", Namespace: ns, Name: name, Type: v1.EventTypeNormal, Reason: reason,
		Message: fmt.Sprintf(format, args...)}
}

// configProblems words the problems of the configuration objects, by
// "Kind/name", with the reason of the Warning Event each gets.
func configProblems(l2 *config.L2Advertisements, bgp *config.BGP) (msgs, reasons map[string]string) {
	msgs, reasons = map[string]string{}, map[string]string{}
	for name, err := range l2.Invalid {
		k := "L2Advertisement/" + name
		msgs[k], reasons[k] = "invalid, ignored: "+err.Error(), EventL2ConfigInvalid
	}
	if bgp == nil {
		return msgs, reasons
	}
	for k, err := range bgp.Invalid {
		msgs[k], reasons[k] = "invalid: "+err.Error(), EventBGPConfigInvalid
	}
	for k, w := range bgp.Warnings {
		msgs[k] = JoinMessages(msgs[k], w)
		if reasons[k] == "" {
			reasons[k] = EventBGPConfigWarning
		}
	}
	return msgs, reasons
}

// warnings returns a Warning Event for each object whose problem is new or
// changed since the last sync (warned), and what is warned now.
func warnings(node string, warned, msgs, reasons map[string]string) []Event {
	var out []Event
	for _, k := range slices.Sorted(maps.Keys(msgs)) {
		if warned[k] == msgs[k] {
			continue
		}
		kind, name, _ := strings.Cut(k, "/")
		out = append(out, Event{Kind: kind, Name: name, Type: v1.EventTypeWarning, Reason: reasons[k],
			Message: fmt.Sprintf("node %s: %s", node, msgs[k])})
	}
	return out
}

// JoinMessages joins two messages with "; ", either of which may be empty.
func JoinMessages(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + "; " + b
}

// ServiceEventsPerSync bounds the Announcing and Withdrawn Events one sync
// records on Services, per reason. A speaker that starts, or takes over a
// node's addresses, may announce thousands of addresses at once: an Event
// each would take its client (5 requests/s) many minutes to write, and
// client-go drops what exceeds its queue of 1,000 anyway. The rest are
// counted in one Event of the same reason on the node's Node;
// ServiceAnnouncements list every address.
const ServiceEventsPerSync = 20

// BoundServiceEvents keeps the first ServiceEventsPerSync Announcing and
// the first ServiceEventsPerSync Withdrawn Events on Services and sums up
// the others on node's Node. Other Events pass unchanged.
func BoundServiceEvents(evs []Event, node string) []Event {
	count := map[string]int{}
	services := map[string]map[string]bool{}
	var out []Event
	for _, e := range evs {
		if e.Kind != "Service" || (e.Reason != EventAnnouncing && e.Reason != EventWithdrawn) {
			out = append(out, e)
			continue
		}
		if count[e.Reason]++; count[e.Reason] <= ServiceEventsPerSync {
			out = append(out, e)
			continue
		}
		if services[e.Reason] == nil {
			services[e.Reason] = map[string]bool{}
		}
		services[e.Reason][e.Namespace+"/"+e.Name] = true
	}
	for _, r := range []string{EventAnnouncing, EventWithdrawn} {
		if extra := count[r] - ServiceEventsPerSync; extra > 0 {
			out = append(out, Event{Kind: "Node", Name: node, Type: v1.EventTypeNormal, Reason: r,
				Message: fmt.Sprintf("node %s: %d more %s Events of %d Services in one sync, not recorded on the Services (kubectl get serviceannouncements -A lists what each node announces)",
					node, extra, r, len(services[r]))})
		}
	}
	return out
}
