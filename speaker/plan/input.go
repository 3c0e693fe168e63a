package plan

import (
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/lbservice"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/election"
)

// announceInput reduces the objects to what the announcer election reads:
// every node with its liveness, and the Services Beacon handles that have
// addresses, with their ready endpoints per node.
func announceInput(f Facts) announce.Input {
	var in announce.Input
	for _, n := range f.Nodes {
		in.Nodes = append(in.Nodes, election.Node{
			Name:               n.Name,
			Labels:             n.Labels,
			NetworkUnavailable: nodeCondition(n, v1.NodeNetworkUnavailable),
			Alive:              (n.Name == f.Node && !f.Members.Rejoining) || (n.Name != f.Node && f.Members.Alive[n.Name]),
		})
		// Carrier and sticky claims, as the node's speaker reports them.
		if r, ok := f.Members.Reported[n.Name]; ok {
			in.Nodes[len(in.Nodes)-1].NoCarrier, in.Nodes[len(in.Nodes)-1].Claims = r.NoCarrier, r.Claims
		} else if f.Members.Reported != nil {
			in.Nodes[len(in.Nodes)-1].ClaimsUnknown = true
		}
	}
	in.Pools = config.ParsePools(f.Pools)
	in.L2 = config.ParseL2Advertisements(f.L2Advertisements, in.Pools)

	ready := readyEndpoints(f.EndpointSlices)
	for _, svc := range f.Services {
		// Addresses waiting for their probe are announced (after it) as
		// if they were in status already.
		ips := lbservice.OfferedIPs(svc)
		if !lbservice.Handled(svc, f.LoadBalancerClass) || len(ips) == 0 {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		status := lbservice.IngressIPs(svc)
		var offered []netip.Addr
		for _, ip := range lbservice.ProbingIPs(svc) {
			if !slices.Contains(status, ip) {
				offered = append(offered, ip)
			}
		}
		in.Services = append(in.Services, announce.Service{
			Key:            key,
			IPs:            ips,
			Offered:        offered,
			Local:          svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
			ReadyEndpoints: ready[key],
		})
	}
	return in
}

// readyEndpoints counts ready endpoints per Service ("namespace/name") and
// node.
func readyEndpoints(slices []*discoveryv1.EndpointSlice) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, s := range slices {
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := s.Namespace + "/" + name
		if out[key] == nil {
			out[key] = map[string]int{}
		}
		for _, ep := range s.Endpoints {
			if ep.NodeName == nil || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) {
				continue
			}
			out[key][*ep.NodeName]++
		}
	}
	return out
}

// self returns this node as BGP planning sees it, with its InternalIPs.
func self(f Facts) (election.Node, []netip.Addr) {
	n := election.Node{Name: f.Node}
	var addrs []netip.Addr
	for _, o := range f.Nodes {
		if o.Name != f.Node {
			continue
		}
		n.Labels = o.Labels
		n.NetworkUnavailable = nodeCondition(o, v1.NodeNetworkUnavailable)
		for _, ad := range o.Status.Addresses {
			if ad.Type != v1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(ad.Address); err == nil {
				addrs = append(addrs, ip)
			}
		}
	}
	return n, addrs
}

// MemberPeers returns where the member layer sends heartbeats: each other
// node's IPv4 InternalIP, else its IPv6 one, at port.
func MemberPeers(nodes []*v1.Node, node string, port uint16) map[string]netip.AddrPort {
	peers := map[string]netip.AddrPort{}
	for _, n := range nodes {
		ip, ok := internalIP(n, true)
		if !ok {
			ip, ok = internalIP(n, false)
		}
		if ok && n.Name != node {
			peers[n.Name] = netip.AddrPortFrom(ip, port)
		}
	}
	return peers
}

// NotReady returns the nodes whose Ready condition is not True: the
// member layer probes them (member.Member.SetSuspects).
func NotReady(nodes []*v1.Node) []string {
	var out []string
	for _, n := range nodes {
		if !nodeCondition(n, v1.NodeReady) {
			out = append(out, n.Name)
		}
	}
	return out
}

func nodeCondition(n *v1.Node, t v1.NodeConditionType) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c.Status == v1.ConditionTrue
		}
	}
	return false
}

// internalIP returns the node's first InternalIP of one family.
func internalIP(n *v1.Node, v4 bool) (netip.Addr, bool) {
	for _, ad := range n.Status.Addresses {
		if ad.Type != v1.NodeInternalIP {
			continue
		}
		if ip, err := netip.ParseAddr(ad.Address); err == nil && ip.Is4() == v4 {
			return ip, true
		}
	}
	return netip.Addr{}, false
}
