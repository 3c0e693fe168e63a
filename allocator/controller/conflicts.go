package controller

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/allocator"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// EventAddressConflict is the reason of the Warning Event on a Service
// whose address another host on the network uses: the controller moved
// it, or could not (the address was requested, or no other is free).
const EventAddressConflict = "AddressConflict"

// DefaultConflictHold is how long an address stays out of automatic
// choice after the last speaker stopped reporting it in conflict. Speakers
// report an address only while a Service holds it, so once its Service has
// moved nobody checks it any more; the hold keeps it from going straight
// to the next new Service (which would probe, find it taken and move).
const DefaultConflictHold = 10 * time.Minute

// addressConflict is what the controller knows of one address in use by
// another host.
type addressConflict struct {
	v1alpha1.AddressConflict
	Node, Service string // the reporting node and the Service (namespace/name)
	// gone is when the last report of it went away; zero while reported.
	gone time.Time
}

// reportedConflicts collects the conflicts listed in ServiceAnnouncements,
// one per address: an address found in use by a probe wins over one
// claimed while announced, then the first node by name.
func reportedConflicts(anns []v1alpha1.ServiceAnnouncement) map[netip.Addr]addressConflict {
	sort.Slice(anns, func(i, j int) bool { return anns[i].Node < anns[j].Node })
	out := map[netip.Addr]addressConflict{}
	for _, a := range anns {
		for _, c := range a.Conflicts {
			ip, err := netip.ParseAddr(c.Address)
			if err != nil {
				continue
			}
			if cur, ok := out[ip]; ok && (!cur.Announced || c.Announced) {
				continue
			}
			out[ip] = addressConflict{AddressConflict: c, Node: a.Node, Service: a.Namespace + "/" + a.Service}
		}
	}
	return out
}

// mergeConflicts is the controller's next view of the conflicts: what is
// reported now, plus what was reported before and is less than hold gone.
// It returns the addresses that entered and left the view.
func mergeConflicts(known, reported map[netip.Addr]addressConflict, now time.Time, hold time.Duration) (next map[netip.Addr]addressConflict, added, removed []netip.Addr) {
	next = make(map[netip.Addr]addressConflict, len(reported))
	for ip, c := range reported {
		next[ip] = c
		if _, ok := known[ip]; !ok {
			added = append(added, ip)
		}
	}
	for ip, c := range known {
		if _, ok := reported[ip]; ok {
			continue
		}
		if c.gone.IsZero() {
			c.gone = now
		}
		if now.Sub(c.gone) >= hold {
			removed = append(removed, ip)
			continue
		}
		next[ip] = c
	}
	slices.SortFunc(added, netip.Addr.Compare)
	slices.SortFunc(removed, netip.Addr.Compare)
	return next, added, removed
}

// seedConflicts loads the conflicts that the pools' status lists, as if
// their reports had just gone: a new leader (or a restarted controller)
// keeps them out of automatic choice for the hold, and the speakers'
// reports, once read, take over the ones still seen.
func (c *Controller) seedConflicts(now time.Time) {
	var pools []v1alpha1.IPPool
	for _, o := range c.pools.List() {
		if p, ok := o.(*v1alpha1.IPPool); ok {
			pools = append(pools, *p)
		}
	}
	seeded := statusConflicts(pools, now)
	if len(seeded) == 0 {
		return
	}
	c.mu.Lock()
	c.conflicts = seeded
	c.mu.Unlock()
	ips := make([]netip.Addr, 0, len(seeded))
	for ip := range seeded {
		ips = append(ips, ip)
	}
	c.lb.SetConflicts(ips)
	c.log.Info("restored addresses in use by other hosts from pool status", "addresses", len(ips))
}

// statusConflicts reads the conflicts listed in the pools' status, each
// gone since now.
func statusConflicts(pools []v1alpha1.IPPool, now time.Time) map[netip.Addr]addressConflict {
	out := map[netip.Addr]addressConflict{}
	for _, p := range pools {
		for _, x := range p.Status.AddressConflicts {
			ip, err := netip.ParseAddr(x.Address)
			if err != nil {
				continue
			}
			node := x.Node
			x.Node = ""
			out[ip] = addressConflict{AddressConflict: x, Node: node, gone: now}
		}
	}
	return out
}

// watchConflicts marks the conflicts dirty on every ServiceAnnouncement
// change.
func (c *Controller) watchConflicts(inf cache.SharedIndexInformer) error {
	mark := func(any) {
		select {
		case c.conflictsDirty <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: mark, UpdateFunc: func(_, o any) { mark(o) }, DeleteFunc: mark,
	}); err != nil {
		return fmt.Errorf("service announcement handler: %w", err)
	}
	return nil
}

// conflictsLoop recomputes the conflicts from the announcements, at most
// every interval (a burst of report writes costs one pass), and at least
// every interval while some wait out their hold.
func (c *Controller) conflictsLoop(ctx context.Context, store cache.Store, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		c.syncConflicts(store)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-c.conflictsDirty:
		case <-t.C:
		}
	}
}

func (c *Controller) syncConflicts(store cache.Store) {
	var anns []v1alpha1.ServiceAnnouncement
	for _, o := range store.List() {
		if a, ok := o.(*v1alpha1.ServiceAnnouncement); ok {
			anns = append(anns, *a)
		}
	}
	c.mu.Lock()
	next, added, removed := mergeConflicts(c.conflicts, reportedConflicts(anns), time.Now(), c.opts.ConflictHold)
	changed := !conflictsEqual(c.conflicts, next)
	c.conflicts = next
	c.mu.Unlock()
	if !changed {
		return
	}
	ips := make([]netip.Addr, 0, len(next))
	for ip := range next {
		ips = append(ips, ip)
	}
	c.lb.SetConflicts(ips)
	for _, ip := range added {
		c.log.Info("address in use by another host", "ip", ip, "mac", next[ip].MAC, "node", next[ip].Node)
	}
	for _, ip := range removed {
		c.log.Info("address no longer known to be in use by another host", "ip", ip)
	}
	// Services holding a conflicting address move (or get their warning);
	// freed addresses may serve waiting Services.
	for ip := range next {
		for _, k := range c.lb.Owners(ip) {
			c.queue.Add(k)
		}
	}
	if len(removed) > 0 {
		c.capacityFreed()
	}
	c.markStatusDirty()
}

// conflictsEqual compares two views, ignoring when reports went away.
func conflictsEqual(a, b map[netip.Addr]addressConflict) bool {
	if len(a) != len(b) {
		return false
	}
	for ip, x := range a {
		y, ok := b[ip]
		if !ok || x.AddressConflict != y.AddressConflict || x.Node != y.Node {
			return false
		}
	}
	return true
}

// conflictOf returns what is known of ip's conflict.
func (c *Controller) conflictOf(ip netip.Addr) (addressConflict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	x, ok := c.conflicts[ip]
	return x, ok
}

// conflictWarnings explains the Service's conflicting addresses: those
// the allocation kept (requested, or no other free) and those it moved
// the Service off (from before).
func (c *Controller) conflictWarnings(before []netip.Addr, res allocator.Result) []warning {
	var out []warning
	for _, ip := range res.Conflicting {
		x, ok := c.conflictOf(ip)
		if !ok {
			continue // over since the allocation
		}
		out = append(out, warning{EventAddressConflict, fmt.Sprintf(
			"%s is in use by another host (%s); it is not moved because it was requested or no other address is free. Free it on the network, or request another address", ip, x.describe())})
	}
	for _, ip := range before {
		if slices.Contains(res.IPs, ip) {
			continue
		}
		if x, ok := c.conflictOf(ip); ok {
			out = append(out, warning{EventAddressConflict, fmt.Sprintf(
				"%s is in use by another host (%s): moved to %s", ip, x.describe(), joinIPs(res.IPs))})
		}
	}
	return out
}

func (x addressConflict) describe() string {
	how := "found by probing before it was announced"
	if x.Announced {
		how = "claimed while announced"
	}
	return fmt.Sprintf("MAC %s, seen by node %s on %s, %s", x.MAC, x.Node, x.Interface, how)
}

// poolConflicts lists, per pool, the conflicts of its addresses, sorted by
// address.
func (c *Controller) poolConflicts() map[string][]v1alpha1.AddressConflict {
	c.mu.Lock()
	ips := make([]netip.Addr, 0, len(c.conflicts))
	for ip := range c.conflicts {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	view := make([]addressConflict, len(ips))
	for i, ip := range ips {
		view[i] = c.conflicts[ip]
	}
	c.mu.Unlock()
	out := map[string][]v1alpha1.AddressConflict{}
	for i, ip := range ips {
		if p := c.lb.PoolOf(ip); p != "" {
			x := view[i].AddressConflict
			x.Address, x.Node = ip.String(), view[i].Node
			out[p] = append(out[p], x)
		}
	}
	return out
}

// conflictMessage words the AddressConflict condition.
func conflictMessage(conflicts []v1alpha1.AddressConflict) string {
	const max = 10
	var list []string
	for _, x := range conflicts[:min(len(conflicts), max)] {
		list = append(list, fmt.Sprintf("%s (%s)", x.Address, addressConflict{AddressConflict: x, Node: x.Node}.describe()))
	}
	msg := "in use by other hosts, not handed out: " + strings.Join(list, "; ")
	if len(conflicts) > max {
		msg += fmt.Sprintf("; and %d more", len(conflicts)-max)
	}
	return msg
}
