package agent

import (
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/l2"
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

// poolConflicts returns the addresses that the pools' status lists as in
// use by other hosts.
func poolConflicts(pools cache.Store) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, o := range pools.List() {
		p, ok := o.(*v1alpha1.IPPool)
		if !ok {
			continue
		}
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
// Service's report into its conflicts, and lists addresses claimed by
// another host while announced in both. owner maps address to Service key.
func applyConflicts(reports map[string]*report, owner map[netip.Addr]string, conflicts map[netip.Addr]l2.Conflict) {
	for ip, c := range conflicts {
		r := reports[owner[ip]]
		if r == nil {
			continue
		}
		if !c.Announced {
			r.addresses = slices.DeleteFunc(r.addresses, func(a netip.Addr) bool { return a == ip })
		}
		r.conflicts = append(r.conflicts, v1alpha1.AddressConflict{
			Address: ip.String(), MAC: c.MAC.String(), Interface: c.Interface, Announced: c.Announced,
		})
	}
	for _, r := range reports {
		slices.SortFunc(r.conflicts, func(a, b v1alpha1.AddressConflict) int {
			return netip.MustParseAddr(a.Address).Compare(netip.MustParseAddr(b.Address))
		})
	}
}

// warnConflicts records a Warning Event on the Service of each conflict
// that is new or changed (another MAC, or found again after a change).
func (a *Agent) warnConflicts(svcs map[string]*v1.Service, owner map[netip.Addr]string, conflicts map[netip.Addr]l2.Conflict) {
	for ip, c := range conflicts {
		key := c.MAC.String()
		if c.Announced {
			key += " announced"
		}
		if a.conflictWarned[ip] == key {
			continue
		}
		a.conflictWarned[ip] = key
		a.cfg.Log.Info("address in use by another host", "ip", ip, "mac", c.MAC.String(), "interface", c.Interface, "announced", c.Announced)
		svc := svcs[owner[ip]]
		if svc == nil || a.cfg.Recorder == nil {
			continue
		}
		if c.Announced {
			a.cfg.Recorder.Eventf(svc, v1.EventTypeWarning, EventAddressConflict,
				"%s is claimed by another host (MAC %s) on interface %s of node %s, which keeps announcing it", ip, c.MAC, c.Interface, a.cfg.Node)
		} else {
			a.cfg.Recorder.Eventf(svc, v1.EventTypeWarning, EventAddressConflict,
				"%s is in use by another host (MAC %s, found by probing on interface %s of node %s): not announced", ip, c.MAC, c.Interface, a.cfg.Node)
		}
	}
	for ip := range a.conflictWarned {
		if _, ok := conflicts[ip]; !ok {
			delete(a.conflictWarned, ip)
		}
	}
}
