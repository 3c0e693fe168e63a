package nodeport

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Names of Beacon's nftables objects. README.md explains each.
const (
	// TableName is the name of Beacon's base table in both the ip and the
	// ip6 family: the postrouting chain and the hairpin set. The Services
	// are in shard tables named TableName-svcN (ShardTableName). Beacon
	// never touches other tables.
	TableName = "beacon"
	// DefaultShards is the default Input.Shards.
	DefaultShards = 16
	// MaxShards bounds Input.Shards.
	MaxShards = 256

	ChainPrerouting  = "nat-prerouting"
	ChainOutput      = "nat-output"
	ChainPostrouting = "nat-postrouting"
	// ChainServices dispatches on the destination through the two maps.
	ChainServices = "services"

	// MapServiceIPs maps "daddr . l4proto . dport" of ClusterIPs,
	// LoadBalancer IPs and externalIPs to a service-port chain.
	MapServiceIPs = "service-ips"
	// MapNodePorts maps "l4proto . dport" of NodePorts to a service-port
	// chain, for destinations in SetNodePortIPs.
	MapNodePorts = "service-nodeports"
	// SetNodePortIPs holds the node addresses NodePorts are served on.
	SetNodePortIPs = "nodeport-ips"
	// SetMasqueradeIPs and SetMasqueradeNodePorts hold the external
	// destinations of externalTrafficPolicy Cluster Services (same keys as
	// the maps): their connections are marked for masquerade before the
	// dispatch, so that such Services need no chain of their own for it.
	SetMasqueradeIPs       = "masquerade-ips"
	SetMasqueradeNodePorts = "masquerade-nodeports"
	// SetHairpin holds "addr . addr" for each local endpoint: a connection
	// DNATed back to its own source is masqueraded so replies return
	// through the node.
	SetHairpin = "hairpin"

	// Per service-port chains; the suffix is namespace/name/protocol/port.
	PrefixService  = "svc-"   // pick among all usable endpoints
	PrefixLocal    = "local-" // pick among local endpoints
	PrefixExternal = "ext-"   // external entry of externalTrafficPolicy Local
	PrefixFirewall = "fw-"    // loadBalancerSourceRanges
	// PrefixAffinity names the per-endpoint client sets of session affinity:
	// aff-<service port>__<endpoint>/<port>.
	PrefixAffinity = "aff-"

	// PriorityDstNAT is the priority of the prerouting and output nat
	// chains. nft 1.0.6 refuses the name "dstnat" on the output hook, so
	// the number is used on both.
	PriorityDstNAT int32 = -100
	// PrioritySrcNAT is the priority of the postrouting nat chain.
	PrioritySrcNAT int32 = 100

	// DefaultAffinityLimit is the default Input.AffinityLimit.
	DefaultAffinityLimit uint32 = 8192
)

// Build computes the desired ruleset from plain data. It is a pure,
// deterministic function: the same Input gives the same Ruleset, whatever
// the order of Services, ports and endpoints. It is a fresh Builder's
// first Build; the Syncer keeps a Builder to rebuild only what changed.
func Build(in Input) *Ruleset { return NewBuilder().Build(in) }

// fragBuilder builds the fragment of one Service in one family: its
// chains and affinity sets, and the dispatch elements it claims.
type fragBuilder struct {
	g        *globals
	fam      Family
	nodeIPs  []netip.Addr
	e        *entry
	frag     *fragment
	affinity map[string]*Set
}

func buildFragment(g *globals, fam Family, e *entry) *fragment {
	b := &fragBuilder{g: g, fam: fam, nodeIPs: g.nodeIPs[fam.index()], e: e, frag: &fragment{}}
	s := &e.svc
	ports := slices.Clone(s.Ports)
	slices.SortStableFunc(ports, func(a, b Port) int {
		return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	ports = slices.CompactFunc(ports, func(a, b Port) bool { return a.Protocol == b.Protocol && a.Port == b.Port })
	for _, p := range ports {
		b.servicePort(s, p)
	}
	slices.SortFunc(b.frag.chains, func(x, y *Chain) int { return cmp.Compare(x.Name, y.Name) })
	for _, set := range b.affinity {
		b.frag.sets = append(b.frag.sets, set)
	}
	slices.SortFunc(b.frag.sets, func(x, y *Set) int { return cmp.Compare(x.Name, y.Name) })
	slices.SortFunc(b.frag.hairpin, netip.Addr.Compare)
	b.frag.hairpin = slices.Compact(b.frag.hairpin)
	return b.frag
}

// servicePort adds the chains, claims and conntrack facts of one port of
// the Service in this family.
func (b *fragBuilder) servicePort(s *Service, p Port) {
	a := b.frontendAddrs(s, p)
	hasExt := a.external()
	if len(a.cluster) == 0 && !hasExt {
		return
	}

	key := fmt.Sprintf("%s/%s/%s/%d", s.Namespace, s.Name, p.Protocol, p.Port)
	svcChain, localChain := PrefixService+key, PrefixLocal+key
	extChain, fwChain := PrefixExternal+key, PrefixFirewall+key

	eps := portEndpoints(s, p, b.fam, b.g.node)
	clusterEPs := usable(eps, false)
	localEPs := usable(eps, true)

	needSvc := (len(a.cluster) > 0 && !s.InternalLocal) || hasExt
	needLocal := (len(a.cluster) > 0 && s.InternalLocal) || (hasExt && s.ExternalLocal)
	needFw := len(a.lb) > 0 && len(s.SourceRanges) > 0

	f := b.frag
	udp := p.Protocol == UDP // conntrack facts are only kept for UDP
	var backends []netip.AddrPort
	if needSvc {
		f.chains = append(f.chains, &Chain{Name: svcChain, Rules: b.pick(key, p.Protocol, clusterEPs, s.AffinityTimeout, true)})
		if udp {
			backends = append(backends, targets(clusterEPs)...)
		}
	}
	if needLocal {
		f.chains = append(f.chains, &Chain{Name: localChain, Rules: b.pick(key, p.Protocol, localEPs, s.AffinityTimeout, len(clusterEPs) == 0)})
		if udp {
			backends = append(backends, targets(localEPs)...)
		}
	}
	// External traffic of a Cluster-policy Service goes straight to the
	// service chain, marked for masquerade by the masquerade sets; a
	// Local-policy Service has an ext chain to decide.
	t := dispatchTargets{cluster: svcChain, ext: svcChain}
	if hasExt && s.ExternalLocal {
		t.ext = extChain
		f.chains = append(f.chains, b.externalChain(extChain, svcChain, localChain))
	}
	t.lb = t.ext
	if needFw {
		t.lb = fwChain
		f.chains = append(f.chains, b.firewallChain(fwChain, s.SourceRanges, t.ext))
	}
	if s.InternalLocal {
		t.cluster = localChain
	}
	frontends := b.dispatch(s, p, a, t)
	for _, e := range eps {
		if e.local && (slices.Contains(clusterEPs, e) || slices.Contains(localEPs, e)) {
			f.hairpin = append(f.hairpin, e.ap.Addr())
		}
	}
	if udp {
		slices.SortFunc(backends, compareAddrPort)
		f.udp = append(f.udp, UDPPort{Family: b.fam, Key: key, Frontends: frontends, Backends: slices.Compact(backends)})
	}
}

// portAddrs are the addresses one Service port is reached on in this family.
type portAddrs struct {
	cluster, lb, ext []netip.Addr
	// nodePort: the port is also reached on this node's addresses.
	nodePort bool
}

// external reports whether the port is reachable from outside the cluster.
func (a portAddrs) external() bool { return len(a.lb) > 0 || len(a.ext) > 0 || a.nodePort }

// frontendAddrs returns the addresses of port p. Cluster IPs and NodePorts
// are only served in full mode, and a NodePort only for a Service with a
// cluster IP of this family.
func (b *fragBuilder) frontendAddrs(s *Service, p Port) portAddrs {
	full := b.g.mode == ModeFull
	var a portAddrs
	if full {
		a.cluster = uniqueAddrs(s.ClusterIPs, b.fam)
	}
	a.lb = uniqueAddrs(s.LoadBalancerIPs, b.fam)
	a.ext = uniqueAddrs(s.ExternalIPs, b.fam)
	a.nodePort = full && p.NodePort != 0 && len(b.nodeIPs) > 0 && len(uniqueAddrs(s.ClusterIPs, b.fam)) > 0
	return a
}

// externalChain decides where external traffic of a Local-policy Service
// goes. Pods and the node itself are not external clients: they may use
// any endpoint (the node masqueraded, as its source address may not route
// back from a remote endpoint); everyone else only a local one.
func (b *fragBuilder) externalChain(name, svcChain, localChain string) *Chain {
	var rules []Rule
	for _, pfx := range b.g.podCIDRs {
		if b.fam.has(pfx.Addr()) {
			rules = append(rules, Rule{MatchSaddr{Prefix: pfx.Masked()}, Goto{Chain: svcChain}})
		}
	}
	rules = append(rules,
		Rule{MatchFibSaddrLocal{}, SetMark{Mark: b.g.mark}, Goto{Chain: svcChain}},
		Rule{Goto{Chain: localChain}})
	return &Chain{Name: name, Rules: rules}
}

// firewallChain lets load-balancer traffic from the source ranges of this
// family on to target and drops the rest.
func (b *fragBuilder) firewallChain(name string, ranges []netip.Prefix, target string) *Chain {
	var rules []Rule
	for _, pfx := range ranges {
		if b.fam.has(pfx.Addr()) {
			rules = append(rules, Rule{MatchSaddr{Prefix: pfx.Masked()}, Goto{Chain: target}})
		}
	}
	return &Chain{Name: name, Rules: append(rules, Rule{Drop{}})}
}

// dispatchTargets are the chains each kind of frontend address dispatches to.
type dispatchTargets struct{ cluster, lb, ext string }

// dispatch claims the dispatch elements of port p and returns its UDP
// frontends (none for other protocols). External frontends of a
// Cluster-policy Service are masqueraded.
func (b *fragBuilder) dispatch(s *Service, p Port, a portAddrs, t dispatchTargets) []netip.AddrPort {
	udp := p.Protocol == UDP
	var frontends []netip.AddrPort
	add := func(ips []netip.Addr, chain string, external bool) {
		for _, ip := range ips {
			b.wantDispatch(mapServiceIPs, Key{Addr: ip, Proto: p.Protocol, Port: p.Port}, chain, external && !s.ExternalLocal)
			if udp {
				frontends = append(frontends, netip.AddrPortFrom(ip, p.Port))
			}
		}
	}
	add(a.cluster, t.cluster, false)
	add(a.lb, t.lb, true)
	add(a.ext, t.ext, true)
	if a.nodePort {
		b.wantDispatch(mapNodePorts, Key{Proto: p.Protocol, Port: p.NodePort}, t.ext, !s.ExternalLocal)
		for _, ip := range b.nodeIPs {
			if udp {
				frontends = append(frontends, netip.AddrPortFrom(ip, p.NodePort))
			}
		}
	}
	return frontends
}

// wantDispatch records a dispatch element the Service asks for; the Builder
// gives each key to its first claimant in namespace/name order.
func (b *fragBuilder) wantDispatch(m dispatchMap, k Key, chain string, masq bool) {
	b.frag.claims = append(b.frag.claims, &claim{m: m, key: k, chain: chain, masq: masq, e: b.e, seq: len(b.frag.claims)})
}

// pick is the endpoint selection: with N endpoints, rule i matches with
// probability 1/(N-i) ("numgen random mod N-i 0"), so each endpoint gets
// 1/N of new connections, and the chain stays linear and readable without
// a per-Service map. Session affinity first sends known clients back to
// their endpoint. With no endpoints at all, connections are rejected; with
// endpoints elsewhere but none here, dropped (kube-proxy does the same).
func (b *fragBuilder) pick(key string, proto Protocol, eps []endpoint, affinity time.Duration, none bool) []Rule {
	if len(eps) == 0 {
		if !none {
			return []Rule{{Drop{}}}
		}
		if proto == TCP {
			return []Rule{{MatchProto{Proto: TCP}, Reject{TCPReset: true}}}
		}
		return []Rule{{Reject{}}}
	}
	var rules []Rule
	var sets []string
	if affinity > 0 {
		for _, e := range eps {
			set := b.affinitySet(key, e.ap, affinity)
			sets = append(sets, set)
			rules = append(rules, Rule{MatchSaddrInSet{Set: set}, UpdateSaddr{Set: set}, MatchProto{Proto: proto}, DNAT{To: e.ap}})
		}
	}
	for i, e := range eps {
		var r Rule
		if n := len(eps) - i; n > 1 {
			r = append(r, MatchNumgen{Mod: uint32(n)})
		}
		if affinity > 0 {
			r = append(r, UpdateSaddr{Set: sets[i]})
		}
		rules = append(rules, append(r, MatchProto{Proto: proto}, DNAT{To: e.ap}))
	}
	if affinity > 0 {
		// An update fails when its set is full (AffinityLimit clients):
		// that rule then falls through, and this last one forwards the
		// client without stickiness rather than not at all.
		rules = append(rules, Rule{MatchProto{Proto: proto}, DNAT{To: eps[len(eps)-1].ap}})
	}
	return rules
}

func (b *fragBuilder) affinitySet(key string, ep netip.AddrPort, timeout time.Duration) string {
	name := fmt.Sprintf("%s%s__%s/%d", PrefixAffinity, key, strings.ReplaceAll(ep.Addr().String(), ":", "."), ep.Port())
	if b.affinity == nil {
		b.affinity = map[string]*Set{}
	}
	if _, ok := b.affinity[name]; !ok {
		b.affinity[name] = &Set{Name: name, Fields: []Field{FieldAddr}, Dynamic: true, Timeout: timeout.Round(time.Second), Size: b.g.affinityLimit}
	}
	return name
}

type endpoint struct {
	ap                          netip.AddrPort
	local                       bool
	ready, serving, terminating bool
}

// portEndpoints returns the endpoints of the family that serve the port
// (their slice has a port of that name and protocol), one per address,
// sorted by address.
func portEndpoints(s *Service, p Port, fam Family, node string) []endpoint {
	eps := make([]endpoint, 0, len(s.Endpoints))
	for _, e := range s.Endpoints {
		if !e.Addr.IsValid() || !fam.has(e.Addr) {
			continue
		}
		for _, ep := range e.Ports {
			if ep.Name == p.Name && ep.Protocol == p.Protocol && ep.Port != 0 {
				eps = append(eps, endpoint{
					ap:    netip.AddrPortFrom(e.Addr.Unmap(), ep.Port),
					local: node != "" && e.NodeName == node,
					ready: e.Ready, serving: e.Serving, terminating: e.Terminating,
				})
				break
			}
		}
	}
	// One entry per address: a ready one wins over a stale duplicate from
	// another slice.
	slices.SortStableFunc(eps, func(a, b endpoint) int {
		return cmp.Or(a.ap.Addr().Compare(b.ap.Addr()), boolRank(b.ready)-boolRank(a.ready), cmp.Compare(a.ap.Port(), b.ap.Port()))
	})
	return slices.CompactFunc(eps, func(a, b endpoint) bool { return a.ap.Addr() == b.ap.Addr() })
}

// usable applies kube-proxy's rule: ready endpoints, or when there are none,
// the serving ones that are terminating.
func usable(eps []endpoint, localOnly bool) []endpoint {
	ready := make([]endpoint, 0, len(eps))
	var term []endpoint
	for _, e := range eps {
		if localOnly && !e.local {
			continue
		}
		switch {
		case e.ready:
			ready = append(ready, e)
		case e.serving && e.terminating:
			term = append(term, e)
		}
	}
	if len(ready) > 0 {
		return ready
	}
	return term
}

func targets(eps []endpoint) []netip.AddrPort {
	out := make([]netip.AddrPort, len(eps))
	for i, e := range eps {
		out[i] = e.ap
	}
	return out
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func uniqueAddrs(addrs []netip.Addr, fam Family) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a.IsValid() && fam.has(a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func addrElements(addrs []netip.Addr, pair bool) []Element {
	out := make([]Element, len(addrs))
	for i, a := range addrs {
		out[i].Key.Addr = a
		if pair {
			out[i].Key.Addr2 = a
		}
	}
	return out
}

func sortElements(els []Element) []Element {
	slices.SortFunc(els, func(a, b Element) int { return compareKey(a.Key, b.Key) })
	return els
}

func compareKey(a, b Key) int {
	return cmp.Or(a.Addr.Compare(b.Addr), a.Addr2.Compare(b.Addr2), cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
}

func compareAddrPort(a, b netip.AddrPort) int { return a.Compare(b) }

// UDPPort describes one UDP service port in one family: where clients send
// (Frontends) and the endpoints their flows may be DNATed to (Backends).
// The Applier deletes conntrack entries of flows to Backends that went away.
type UDPPort struct {
	Family    Family
	Key       string
	Frontends []netip.AddrPort
	Backends  []netip.AddrPort
}

// HealthCheck is one health-check node port of an externalTrafficPolicy
// Local Service.
type HealthCheck struct {
	Namespace, Name string
	Port            uint16
	// LocalEndpoints counts the ready endpoints on this node (the larger
	// count of the two families).
	LocalEndpoints int
}

// healthCheck returns the Service's health-check node port, or nil.
func healthCheck(node string, s *Service) *HealthCheck {
	if !s.ExternalLocal || s.HealthCheckNodePort == 0 {
		return nil
	}
	n := 0
	for _, fam := range []Family{IPv4, IPv6} {
		local := map[netip.Addr]bool{}
		for _, e := range s.Endpoints {
			if e.Ready && e.Addr.IsValid() && fam.has(e.Addr.Unmap()) && node != "" && e.NodeName == node {
				local[e.Addr.Unmap()] = true
			}
		}
		n = max(n, len(local))
	}
	return &HealthCheck{Namespace: s.Namespace, Name: s.Name, Port: s.HealthCheckNodePort, LocalEndpoints: n}
}
