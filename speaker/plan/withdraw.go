package plan

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/election"
)

// withdrawal is one address this node stopped announcing.
type withdrawal struct {
	service string // namespace/name
	ip      netip.Addr
	why     string
}

// whyWithdrawn explains why node no longer announces ip of the Service key,
// from the planner's input and, in L2 mode, the new plan's decision for
// the Service's address (nil in BGP mode; in L2 mode the plan has one for
// every address the input's Services hold).
func whyWithdrawn(in announce.Input, node, key string, ip netip.Addr, d *announce.Decision) string {
	i := slices.IndexFunc(in.Services, func(s announce.Service) bool { return s.Key == key })
	if i < 0 || !slices.Contains(in.Services[i].IPs, ip) {
		return "the Service no longer has this address (or is no longer a LoadBalancer Service Beacon handles)"
	}
	svc := in.Services[i]
	self := election.Node{Name: node, Alive: true}
	if j := slices.IndexFunc(in.Nodes, func(n election.Node) bool { return n.Name == node }); j >= 0 {
		if !in.Nodes[j].Alive {
			return "this node's speaker is back from a stall its peers took for its death, and announces nothing until they know it lives"
		}
		self = in.Nodes[j]
	}
	c := election.Candidates([]election.Node{self}, nil, election.Service{Local: svc.Local, ReadyEndpoints: svc.ReadyEndpoints})[0]
	switch c.Reason {
	case election.Excluded:
		return "the node is labelled " + election.ExcludeLabel
	case election.NetworkUnavailable:
		return "the node's NetworkUnavailable condition is True"
	case election.NoLocalEndpoint:
		return "externalTrafficPolicy is Local and the node has no ready endpoint of the Service"
	}
	if d == nil {
		return "no BGPAdvertisement announces it from this node to a BGPPeer of this node any more"
	}
	switch {
	case d.Node == node:
		return "no interface to announce it on"
	case d.Node != "":
		if in.L2 != nil && !in.L2.Interfaces(d.Pool, self.Labels).Any() {
			return "no L2Advertisement of pool " + d.Pool + " selects this node any more"
		}
		return "node " + d.Node + " announces it now (elected among the eligible nodes)"
	}
	switch d.Reason {
	case announce.NoPool:
		return "the address is in no IPPool"
	case announce.NoAdvertisement:
		return "no L2Advertisement selects pool " + d.Pool
	case announce.NoEligibleNode:
		return "no node is eligible"
	}
	return d.Reason
}

// withdrawnEvents words one Withdrawn Event per Service and reason.
func withdrawnEvents(ws []withdrawal, node, via string) []Event {
	type group struct{ service, why string }
	ips := map[group][]string{}
	var order []group
	for _, w := range ws {
		g := group{w.service, w.why}
		if _, ok := ips[g]; !ok {
			order = append(order, g)
		}
		ips[g] = append(ips[g], w.ip.String())
	}
	var out []Event
	for _, g := range order {
		out = append(out, serviceEvent(g.service, EventWithdrawn,
			"Withdrawn %s from node %s via %s: %s", strings.Join(ips[g], ", "), node, via, g.why))
	}
	return out
}

// withdrawnL2 lists the addresses this node announced at the last sync
// (its decisions in prev that made it into before) that it does not
// announce now, with why, from the new plan.
func withdrawnL2(in announce.Input, node string, prev, plan []announce.Decision, before, now map[netip.Addr][]string) []withdrawal {
	type svcIP struct {
		service string
		ip      netip.Addr
	}
	cur := map[svcIP]*announce.Decision{}
	for i := range plan {
		cur[svcIP{plan[i].Service, plan[i].IP}] = &plan[i]
	}
	var out []withdrawal
	for _, d := range announce.For(node, prev) {
		_, was := before[d.IP]
		if _, still := now[d.IP]; !was || still {
			continue
		}
		out = append(out, withdrawal{d.Service, d.IP, whyWithdrawn(in, node, d.Service, d.IP, cur[svcIP{d.Service, d.IP}])})
	}
	sortWithdrawals(out)
	return out
}

func sortWithdrawals(ws []withdrawal) {
	slices.SortFunc(ws, func(a, b withdrawal) int {
		if c := strings.Compare(a.service, b.service); c != 0 {
			return c
		}
		return a.ip.Compare(b.ip)
	})
}

// withdrawnBGP lists the (Service, address) pairs announced by BGP before
// and not now (both map each announced pair to whether this node reports
// it), those this node reported, with why.
func withdrawnBGP(in announce.Input, node string, before, now map[ServiceIP]bool) []withdrawal {
	var out []withdrawal
	for k, reported := range before {
		if _, still := now[k]; !still && reported {
			out = append(out, withdrawal{k.Service, k.IP, whyWithdrawn(in, node, k.Service, k.IP, nil)})
		}
	}
	sortWithdrawals(out)
	return out
}
