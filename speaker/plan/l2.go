package plan

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/handoff"
	"github.com/beaconlb/beacon/speaker/kernelarp"
)

// L2 is what this node does in layer 2.
type L2 struct {
	// Decisions are every node's announcers (the plan every speaker
	// computes alike), for status and tests.
	Decisions []announce.Decision
	// ElectionChanges counts addresses whose announcer changed.
	ElectionChanges int
	// Responders maps every interface to set to the addresses it answers
	// for, sorted; interfaces that announced at the last sync and announce
	// nothing now map to none.
	Responders map[string][]netip.Addr
	// Checks maps interfaces to the offered addresses this node probes
	// there without announcing them (announce.Decision.Prober), sorted.
	Checks map[string][]netip.Addr
	// Reannounce repeats the gratuitous announcements: a node came back
	// (a healed partition, a restarted speaker) and clients may still
	// point at it.
	Reannounce bool
	// Claims are the addresses this node announces with who announced
	// them before, for the hand-off tracker.
	Claims []handoff.Claim
	// Known are every L2 address of the plan, whoever announces it, with
	// the interfaces of this node it would be announced on: the kernel of
	// a node that lost the election may answer for it all the same
	// (package kernelarp).
	Known []kernelarp.Address
	// Drain are hand-offs of the addresses this node announces by BGP to
	// a node that just started draining (see drainHandoffs); Routes adds
	// them to the tracker's.
	Drain []handoff.Handoff
	// via is where flows of a node that can still serve them go, by node
	// and family (IPv4 first).
	via map[string][2]netip.Addr
}

// Routes turns the hand-offs in force, and the drain hand-offs of
// addresses without one, into routes to the previous announcers: a node
// that vanished cannot serve its flows; one whose speaker stopped
// gracefully (or is back) still can.
func (l *L2) Routes(hs []handoff.Handoff) []handoff.Route {
	hs = slices.Clip(hs) // the caller's slice stays as it is
	for _, h := range l.Drain {
		if !slices.ContainsFunc(hs, func(x handoff.Handoff) bool { return x.IP == h.IP }) {
			hs = append(hs, h)
		}
	}
	var out []handoff.Route
	for _, h := range hs {
		v, ok := l.via[h.Node]
		if !ok {
			continue
		}
		ip := v[1]
		if h.IP.Is4() {
			ip = v[0]
		}
		if ip.IsValid() {
			out = append(out, handoff.Route{IP: h.IP, Via: ip})
		}
	}
	return out
}

// planL2 elects every address's announcer and works out this node's part:
// responders, hand-off claims, reports and Events.
func planL2(f Facts, in announce.Input, st *State) (*L2, []Report, []Event, []string) {
	plan := announce.Plan(in)
	out := &L2{Decisions: plan, ElectionChanges: changedAnnouncers(st.Decisions, plan), via: map[string][2]netip.Addr{}}
	// A node back after a graceful stop is a restart, not a healed
	// partition: it held no address while away.
	rejoined := map[string]bool{}
	alive, left := map[string]bool{}, map[string]bool{}
	for _, n := range in.Nodes {
		alive[n.Name] = n.Alive
		left[n.Name] = !n.Alive && f.Members.Left[n.Name]
		if n.Alive && st.Alive != nil && !st.Alive[n.Name] && !st.Left[n.Name] {
			rejoined[n.Name] = true
		}
	}
	out.Reannounce = len(rejoined) > 0
	out.Claims = claims(f.Node, st.Decisions, st.Planned, plan, rejoined)
	out.Drain = drainHandoffs(f, in.Nodes, st)
	out.Known = known(f, in, plan)
	for _, n := range f.Nodes {
		if alive[n.Name] || f.Members.Left[n.Name] {
			v4, _ := internalIP(n, true)
			v6, _ := internalIP(n, false)
			out.via[n.Name] = [2]netip.Addr{v4, v6}
		}
	}

	var problems []string
	var events []Event
	perIface := map[string][]netip.Addr{}
	now := map[netip.Addr][]string{}
	reports := map[string]*Report{}
	var order []string
	// report returns the decision's Service's report with the interfaces
	// its address uses added, or nil (and a problem) when it has none.
	report := func(d announce.Decision) (*Report, []string) {
		ifaces := interfaces(d, f.Links)
		if len(ifaces) == 0 {
			problems = append(problems, noInterface(d.IP, d.Interfaces.All, f.LinksErr))
			return nil, nil
		}
		r := reports[d.Service]
		if r == nil {
			nr := newReport(d.Service, v1alpha1.ViaL2)
			r = &nr
			reports[d.Service] = r
			order = append(order, d.Service)
		}
		for _, i := range ifaces {
			if !slices.Contains(r.Interfaces, i) {
				r.Interfaces = append(r.Interfaces, i)
			}
		}
		return r, ifaces
	}
	for _, d := range announce.For(f.Node, plan) {
		r, ifaces := report(d)
		if r == nil {
			continue
		}
		r.Addresses = append(r.Addresses, d.IP)
		for _, i := range ifaces {
			perIface[i] = append(perIface[i], d.IP)
		}
		now[d.IP] = ifaces
		if !slices.Equal(st.L2[d.IP], ifaces) {
			ev := serviceEvent(d.Service, EventAnnouncing,
				"Announcing %s from node %s via L2 (interface %s)", d.IP, f.Node, strings.Join(ifaces, ","))
			ev.Address = d.IP
			events = append(events, ev)
		}
	}
	out.Checks = map[string][]netip.Addr{}
	for _, d := range announce.ProbedBy(f.Node, plan) {
		r, ifaces := report(d)
		if r == nil {
			continue
		}
		r.Probing = append(r.Probing, d.IP)
		for _, i := range ifaces {
			out.Checks[i] = append(out.Checks[i], d.IP)
		}
	}
	for _, ips := range out.Checks {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	events = append(events, withdrawnEvents(withdrawnL2(in, f.Node, st.Decisions, plan, st.L2, now), f.Node, v1alpha1.ViaL2)...)

	for _, addrs := range st.L2 {
		for _, i := range addrs {
			if _, ok := perIface[i]; !ok {
				perIface[i] = nil
			}
		}
	}
	for _, ips := range perIface {
		slices.SortFunc(ips, netip.Addr.Compare)
	}
	out.Responders = perIface

	st.Decisions, st.Planned, st.Alive, st.Left, st.L2 = plan, true, alive, left, now
	var rs []Report
	for _, k := range order {
		rs = append(rs, *reports[k])
	}
	return out, rs, events, problems
}

// interfaces resolves where an address is announced: the advertisement's
// named interfaces that exist, or, when any interface is allowed, the up
// interfaces (not loopback) on whose connected subnet the address lies.
func interfaces(d announce.Decision, links []Link) []string {
	var out []string
	if !d.Interfaces.All {
		for _, n := range d.Interfaces.Names {
			if slices.ContainsFunc(links, func(l Link) bool { return l.Name == n }) {
				out = append(out, n)
			}
		}
		return out
	}
	for _, l := range links {
		if l.Up && !l.Loopback && slices.ContainsFunc(l.Prefixes, func(p netip.Prefix) bool { return p.Contains(d.IP) }) {
			out = append(out, l.Name)
		}
	}
	return out
}

// known lists every address of the plan whose pool an L2Advertisement
// announces, once, with the interfaces this node would announce it on:
// those the advertisements grant this node or, for a node they do not
// select, the up interfaces on the address's subnet, where requests for
// it arrive all the same.
func known(f Facts, in announce.Input, plan []announce.Decision) []kernelarp.Address {
	var labels map[string]string
	for _, n := range in.Nodes {
		if n.Name == f.Node {
			labels = n.Labels
		}
	}
	seen := map[netip.Addr]bool{}
	byPool := map[string]config.Interfaces{} // matching selectors once per pool
	var out []kernelarp.Address
	for _, d := range plan {
		if seen[d.IP] || d.Pool == "" || in.L2 == nil || !in.L2.Announced(d.Pool) {
			continue
		}
		seen[d.IP] = true
		on, ok := byPool[d.Pool]
		if !ok {
			on = in.L2.Interfaces(d.Pool, labels)
			if !on.Any() {
				on.All = true
			}
			byPool[d.Pool] = on
		}
		if ifaces := interfaces(announce.Decision{IP: d.IP, Interfaces: on}, f.Links); len(ifaces) > 0 {
			out = append(out, kernelarp.Address{IP: d.IP, Interfaces: ifaces})
		}
	}
	return out
}

func noInterface(ip netip.Addr, onLink bool, err error) string {
	msg := ip.String() + ": no interface to announce on"
	if err != nil {
		return msg + " (" + err.Error() + ")"
	}
	if onLink {
		return msg + " (no up interface has a connected subnet holding it)"
	}
	return msg + " (none of the advertisement's interfaces exists)"
}

// claims works out, for every address this node announces in plan, who
// announced it before. Before this process's first plan the previous
// announcer is not known; the standby (who holds the address while this
// node is away) is the best guess, and right after a restart it is the
// right one. The same holds when the standby rejoins (a healed partition,
// not a restart after a graceful stop):
// this node kept the address while cut off, but the standby's side elected
// the standby, and the clients that went there come back now.
func claims(node string, prev []announce.Decision, planned bool, plan []announce.Decision, rejoined map[string]bool) []handoff.Claim {
	before := make(map[netip.Addr]string, len(prev))
	for _, d := range prev {
		before[d.IP] = d.Node
	}
	var out []handoff.Claim
	for _, d := range announce.For(node, plan) {
		from := before[d.IP]
		if !planned || from == node && rejoined[d.Standby] {
			from = d.Standby
		}
		if from == node {
			from = ""
		}
		out = append(out, handoff.Claim{IP: d.IP, From: from})
	}
	return out
}

// changedAnnouncers counts addresses announced before and now by different
// nodes (appearing and vanishing addresses do not count).
func changedAnnouncers(old, cur []announce.Decision) int {
	prev := make(map[netip.Addr]string, len(old))
	for _, d := range old {
		prev[d.IP] = d.Node
	}
	n := 0
	for _, d := range cur {
		if p, ok := prev[d.IP]; ok && p != d.Node {
			n++
		}
	}
	return n
}
