package agent

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/l2"
	"github.com/beaconlb/beacon/speaker/plan"
)

// EventAddressConflict is the reason of the Warning Event a speaker records
// on a Service when another host on the network uses one of its addresses.
const EventAddressConflict = "AddressConflict"

// toProbe returns the addresses of this node's decisions that the
// responders probe before answering for them (if they are new to them):
// those no node announced in the previous plan (new Service addresses),
// and those the pools list as in use by another host (recheck). Other
// addresses are not probed when they move between nodes, where a probe
// would only lengthen the failover, nor in the first plan of this process,
// which cannot tell a new address from one it takes back after a restart.
func toProbe(node string, prev, plan []announce.Decision, planned bool, recheck map[netip.Addr]bool) map[netip.Addr]bool {
	known := make(map[netip.Addr]bool, len(prev))
	for _, d := range prev {
		if d.Node != "" {
			known[d.IP] = true
		}
	}
	out := map[netip.Addr]bool{}
	for _, d := range announce.For(node, plan) {
		if recheck[d.IP] || (planned && !known[d.IP]) {
			out[d.IP] = true
		}
	}
	return out
}

// awaitingProbe returns the addresses that Services' probing annotations
// offer and their status does not hold yet: the controller waits for a
// speaker to probe them, so they are probed even where a new address
// otherwise is not (when it moves, or in the first plan).
func awaitingProbe(svcs []*v1.Service) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, svc := range svcs {
		status := lbservice.IngressIPs(svc)
		for _, ip := range lbservice.ProbingIPs(svc) {
			if !slices.Contains(status, ip) {
				out[ip] = true
			}
		}
	}
	return out
}

// answeredBy returns the addresses some responder answers for.
func answeredBy(rs []Responder) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, r := range rs {
		for _, ip := range r.Announced() {
			out[ip] = true
		}
	}
	return out
}

// keepAnswered reduces the L2 reports to the addresses answered for: an
// address being probed is reported once its probe has passed, which is
// what the controller waits for before it writes a new address into
// status.
func keepAnswered(reports []plan.Report, answered map[netip.Addr]bool) {
	for i := range reports {
		r := &reports[i]
		if r.Via != v1alpha1.ViaL2 {
			continue
		}
		r.Addresses = slices.DeleteFunc(slices.Clone(r.Addresses), func(ip netip.Addr) bool { return !answered[ip] })
	}
}

// checkedBy returns the addresses whose check passed on some responder.
func checkedBy(rs []Responder) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, r := range rs {
		for _, ip := range r.Checked() {
			out[ip] = true
		}
	}
	return out
}

// keepProbed fills in the L2 reports' probed addresses: those of Probing
// whose check passed. A report of a Service this node only probes for is
// dropped while it has nothing to say (the probe runs), so that the
// Service costs one write when the probe ends rather than two.
func keepProbed(reports []plan.Report, checked map[netip.Addr]bool) []plan.Report {
	out := reports[:0]
	for _, r := range reports {
		r.Probed = nil
		for _, ip := range r.Probing {
			if checked[ip] {
				r.Probed = append(r.Probed, ip)
			}
		}
		if len(r.Probing) > 0 && len(r.Addresses) == 0 && len(r.Probed) == 0 && len(r.Conflicts) == 0 {
			continue
		}
		out = append(out, r)
	}
	return out
}

// holdAnnouncing passes on the Events, except L2 Announcing Events of
// addresses not answered for yet (being probed, or found in use), which it
// holds until they are; a held Event is dropped when this node no longer
// announces its address.
func (a *Agent) holdAnnouncing(evs []plan.Event, node string, decisions []announce.Decision, answered map[netip.Addr]bool) []plan.Event {
	out := evs[:0:0]
	for _, e := range evs {
		if e.Reason == plan.EventAnnouncing && e.Address.IsValid() {
			a.announcing[e.Address] = e
			continue
		}
		out = append(out, e)
	}
	owner := owners(node, decisions)
	for _, ip := range slices.SortedFunc(maps.Keys(a.announcing), netip.Addr.Compare) {
		switch {
		case owner[ip] == "":
			delete(a.announcing, ip)
		case answered[ip]:
			out = append(out, a.announcing[ip])
			delete(a.announcing, ip)
		}
	}
	return out
}

// poolConflicts returns the addresses that the pools' status lists as in
// use by other hosts.
func poolConflicts(pools []*v1alpha1.IPPool) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, p := range pools {
		for _, c := range p.Status.AddressConflicts {
			if ip, err := netip.ParseAddr(c.Address); err == nil {
				out[ip] = true
			}
		}
	}
	return out
}

// conflictsOf returns the conflicts of the responders, by address.
func conflictsOf(rs []Responder) map[netip.Addr]l2.Conflict {
	out := map[netip.Addr]l2.Conflict{}
	for _, r := range rs {
		for _, c := range r.Conflicts() {
			if cur, ok := out[c.IP]; !ok || (cur.Announced && !c.Announced) {
				out[c.IP] = c
			}
		}
	}
	return out
}

// applyConflicts moves addresses that a probe found in use out of their
// Service's L2 report into its conflicts, and lists addresses claimed by
// another host while announced in both.
func applyConflicts(reports []plan.Report, node string, decisions []announce.Decision, conflicts map[netip.Addr]l2.Conflict) {
	owner := owners(node, decisions)
	for i := range reports {
		r := &reports[i]
		if r.Via != v1alpha1.ViaL2 {
			continue
		}
		for ip, c := range conflicts {
			if owner[ip] != r.Namespace+"/"+r.Service {
				continue
			}
			if !c.Announced {
				r.Addresses = slices.DeleteFunc(slices.Clone(r.Addresses), func(a netip.Addr) bool { return a == ip })
			}
			r.Conflicts = append(r.Conflicts, v1alpha1.AddressConflict{
				Address: ip.String(), MAC: c.MAC.String(), Interface: c.Interface, Announced: c.Announced,
			})
		}
		slices.SortFunc(r.Conflicts, func(a, b v1alpha1.AddressConflict) int {
			return netip.MustParseAddr(a.Address).Compare(netip.MustParseAddr(b.Address))
		})
	}
}

// owners maps the addresses this node announces or probes for an offer
// to their Service.
func owners(node string, decisions []announce.Decision) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, d := range announce.For(node, decisions) {
		out[d.IP] = d.Service
	}
	for _, d := range announce.ProbedBy(node, decisions) {
		out[d.IP] = d.Service
	}
	return out
}

// conflictEvents returns a Warning Event on the Service of each conflict
// that is new or changed (another MAC, or found again after a change).
func (a *Agent) conflictEvents(node string, decisions []announce.Decision, conflicts map[netip.Addr]l2.Conflict) []plan.Event {
	owner := owners(node, decisions)
	var out []plan.Event
	for ip, c := range conflicts {
		key := c.MAC.String()
		if c.Announced {
			key += " announced"
		}
		if a.conflictWarned[ip] == key {
			continue
		}
		a.conflictWarned[ip] = key
		ns, name, _ := strings.Cut(owner[ip], "/")
		if name == "" {
			continue
		}
		msg := fmt.Sprintf("%s is in use by another host (MAC %s, found by probing on interface %s of node %s): not announced", ip, c.MAC, c.Interface, node)
		if c.Announced {
			msg = fmt.Sprintf("%s is claimed by another host (MAC %s) on interface %s of node %s, which keeps announcing it", ip, c.MAC, c.Interface, node)
		}
		out = append(out, plan.Event{Kind: "Service", Namespace: ns, Name: name, Type: v1.EventTypeWarning, Reason: EventAddressConflict, Message: msg})
	}
	for ip := range a.conflictWarned {
		if _, ok := conflicts[ip]; !ok {
			delete(a.conflictWarned, ip)
		}
	}
	slices.SortFunc(out, func(x, y plan.Event) int { return strings.Compare(x.Message, y.Message) })
	return out
}
