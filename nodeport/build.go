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
	// TableName is the name of Beacon's table in both the ip and the ip6
	// family. Beacon never touches other tables.
	TableName = "beacon"

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
// the order of Services, ports and endpoints.
func Build(in Input) *Ruleset {
	rs := &Ruleset{}
	if in.mode() == ModeOff {
		return rs
	}
	svcs := slices.Clone(in.Services)
	slices.SortStableFunc(svcs, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, fam := range []Family{IPv4, IPv6} {
		rs.Tables = append(rs.Tables, buildTable(&in, fam, svcs, rs))
	}
	rs.Health = healthChecks(&in, svcs)
	return rs
}

type tableBuilder struct {
	in       *Input
	fam      Family
	mark     uint32
	full     bool
	nodeIPs  []netip.Addr
	rs       *Ruleset
	dispatch map[Key]owned
	nodeport map[Key]owned
	masqIPs  []Element
	masqNPs  []Element
	hairpin  map[netip.Addr]bool
	chains   []*Chain
	affinity map[string]*Set
}

type owned struct{ chain, owner string }

func buildTable(in *Input, fam Family, svcs []Service, rs *Ruleset) *Table {
	b := &tableBuilder{
		in:       in,
		fam:      fam,
		mark:     in.mark(),
		full:     in.mode() == ModeFull,
		nodeIPs:  uniqueAddrs(in.NodeAddresses, fam),
		rs:       rs,
		dispatch: make(map[Key]owned, estimate(svcs, fam)),
		nodeport: map[Key]owned{},
		hairpin:  map[netip.Addr]bool{},
		affinity: map[string]*Set{},
	}
	for i := range svcs {
		ports := slices.Clone(svcs[i].Ports)
		slices.SortStableFunc(ports, func(a, b Port) int {
			return cmp.Or(cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
		})
		ports = slices.CompactFunc(ports, func(a, b Port) bool { return a.Protocol == b.Protocol && a.Port == b.Port })
		for _, p := range ports {
			b.servicePort(&svcs[i], p)
		}
	}
	return b.table()
}

// estimate sizes the dispatch map: one element per port and address.
func estimate(svcs []Service, fam Family) int {
	n := 0
	for i := range svcs {
		s := &svcs[i]
		addrs := 0
		for _, l := range [][]netip.Addr{s.ClusterIPs, s.LoadBalancerIPs, s.ExternalIPs} {
			for _, a := range l {
				if fam.has(a) {
					addrs++
				}
			}
		}
		n += addrs * len(s.Ports)
	}
	return n
}

func (b *tableBuilder) table() *Table {
	t := &Table{Family: b.fam, Name: TableName}
	dest, nodePort := []Field{FieldAddr, FieldProto, FieldPort}, []Field{FieldProto, FieldPort}
	t.Sets = append(t.Sets,
		&Set{Name: MapServiceIPs, Fields: dest, Map: true, Elements: elements(b.dispatch)},
		&Set{Name: SetMasqueradeIPs, Fields: dest, Elements: sortElements(b.masqIPs)})
	if b.full {
		t.Sets = append(t.Sets,
			&Set{Name: MapNodePorts, Fields: nodePort, Map: true, Elements: elements(b.nodeport)},
			&Set{Name: SetMasqueradeNodePorts, Fields: nodePort, Elements: sortElements(b.masqNPs)},
			&Set{Name: SetNodePortIPs, Fields: []Field{FieldAddr}, Elements: addrElements(b.nodeIPs, false)})
	}
	t.Sets = append(t.Sets, &Set{Name: SetHairpin, Fields: []Field{FieldAddr, FieldAddr2}, Elements: addrElements(setKeys(b.hairpin), true)})
	aff := make([]*Set, 0, len(b.affinity))
	for _, s := range b.affinity {
		aff = append(aff, s)
	}
	slices.SortFunc(aff, func(x, y *Set) int { return cmp.Compare(x.Name, y.Name) })
	t.Sets = append(t.Sets, aff...)

	services := []Rule{
		{MatchDestInSet{Set: SetMasqueradeIPs}, SetMark{Mark: b.mark}},
		{DispatchVmap{Map: MapServiceIPs}},
	}
	if b.full {
		services = append(services,
			Rule{MatchDaddrInSet{Set: SetNodePortIPs}, MatchProtoPortInSet{Set: SetMasqueradeNodePorts}, SetMark{Mark: b.mark}},
			Rule{MatchDaddrInSet{Set: SetNodePortIPs}, NodePortVmap{Map: MapNodePorts}})
	}
	t.Chains = []*Chain{
		{Name: ChainPrerouting, Base: &BaseChain{Hook: HookPrerouting, Priority: PriorityDstNAT}, Rules: []Rule{{Jump{Chain: ChainServices}}}},
		{Name: ChainOutput, Base: &BaseChain{Hook: HookOutput, Priority: PriorityDstNAT}, Rules: []Rule{{Jump{Chain: ChainServices}}}},
		{Name: ChainPostrouting, Base: &BaseChain{Hook: HookPostrouting, Priority: PrioritySrcNAT}, Rules: []Rule{
			{MatchMark{Mark: b.mark}, ToggleMark{Mark: b.mark}, Masquerade{}},
			{MatchCtDNAT{}, MatchAddrPairInSet{Set: SetHairpin}, Masquerade{}},
		}},
		{Name: ChainServices, Rules: services},
	}
	slices.SortFunc(b.chains, func(x, y *Chain) int { return cmp.Compare(x.Name, y.Name) })
	t.Chains = append(t.Chains, b.chains...)
	t.index()
	return t
}

// servicePort adds the chains, elements and conntrack facts of one port of
// one Service in this table's family.
func (b *tableBuilder) servicePort(s *Service, p Port) {
	var clusterIPs []netip.Addr
	if b.full {
		clusterIPs = uniqueAddrs(s.ClusterIPs, b.fam)
	}
	lbIPs := uniqueAddrs(s.LoadBalancerIPs, b.fam)
	extIPs := uniqueAddrs(s.ExternalIPs, b.fam)
	nodePort := b.full && p.NodePort != 0 && len(b.nodeIPs) > 0 && len(uniqueAddrs(s.ClusterIPs, b.fam)) > 0
	hasExt := len(lbIPs) > 0 || len(extIPs) > 0 || nodePort
	if len(clusterIPs) == 0 && !hasExt {
		return
	}

	key := fmt.Sprintf("%s/%s/%s/%d", s.Namespace, s.Name, p.Protocol, p.Port)
	owner := s.Namespace + "/" + s.Name
	svcChain, localChain := PrefixService+key, PrefixLocal+key
	extChain, fwChain := PrefixExternal+key, PrefixFirewall+key

	eps := portEndpoints(s, p, b.fam, b.in.NodeName)
	clusterEPs := usable(eps, false)
	localEPs := usable(eps, true)

	needSvc := (len(clusterIPs) > 0 && !s.InternalLocal) || hasExt
	needLocal := (len(clusterIPs) > 0 && s.InternalLocal) || (hasExt && s.ExternalLocal)
	needFw := len(lbIPs) > 0 && len(s.SourceRanges) > 0

	udp := p.Protocol == UDP // conntrack facts are only kept for UDP
	var backends []netip.AddrPort
	if needSvc {
		b.chains = append(b.chains, &Chain{Name: svcChain, Rules: b.pick(key, p.Protocol, clusterEPs, s.AffinityTimeout, true)})
		if udp {
			backends = append(backends, targets(clusterEPs)...)
		}
	}
	if needLocal {
		b.chains = append(b.chains, &Chain{Name: localChain, Rules: b.pick(key, p.Protocol, localEPs, s.AffinityTimeout, len(clusterEPs) == 0)})
		if udp {
			backends = append(backends, targets(localEPs)...)
		}
	}
	// External traffic of a Cluster-policy Service goes straight to the
	// service chain, marked for masquerade by the masquerade sets; a
	// Local-policy Service has an ext chain to decide.
	extTarget := svcChain
	if hasExt && s.ExternalLocal {
		extTarget = extChain
		var rules []Rule
		// Pods and the node itself are not external clients: they may
		// use any endpoint (the node masqueraded, as its source address
		// may not route back from a remote endpoint).
		for _, pfx := range b.in.PodCIDRs {
			if b.fam.has(pfx.Addr()) {
				rules = append(rules, Rule{MatchSaddr{Prefix: pfx.Masked()}, Goto{Chain: svcChain}})
			}
		}
		rules = append(rules,
			Rule{MatchFibSaddrLocal{}, SetMark{Mark: b.mark}, Goto{Chain: svcChain}},
			Rule{Goto{Chain: localChain}})
		b.chains = append(b.chains, &Chain{Name: extChain, Rules: rules})
	}
	lbTarget := extTarget
	if needFw {
		lbTarget = fwChain
		var rules []Rule
		for _, pfx := range s.SourceRanges {
			if b.fam.has(pfx.Addr()) {
				rules = append(rules, Rule{MatchSaddr{Prefix: pfx.Masked()}, Goto{Chain: extTarget}})
			}
		}
		b.chains = append(b.chains, &Chain{Name: fwChain, Rules: append(rules, Rule{Drop{}})})
	}

	clusterTarget := svcChain
	if s.InternalLocal {
		clusterTarget = localChain
	}
	var frontends []netip.AddrPort
	add := func(ips []netip.Addr, chain string, external bool) {
		for _, ip := range ips {
			k := Key{Addr: ip, Proto: p.Protocol, Port: p.Port}
			if b.claim(b.dispatch, MapServiceIPs, k, owned{chain, owner}) && external && !s.ExternalLocal {
				b.masqIPs = append(b.masqIPs, Element{Key: k})
			}
			if udp {
				frontends = append(frontends, netip.AddrPortFrom(ip, p.Port))
			}
		}
	}
	add(clusterIPs, clusterTarget, false)
	add(lbIPs, lbTarget, true)
	add(extIPs, extTarget, true)
	if nodePort {
		k := Key{Proto: p.Protocol, Port: p.NodePort}
		if b.claim(b.nodeport, MapNodePorts, k, owned{extTarget, owner}) && !s.ExternalLocal {
			b.masqNPs = append(b.masqNPs, Element{Key: k})
		}
		for _, ip := range b.nodeIPs {
			if udp {
				frontends = append(frontends, netip.AddrPortFrom(ip, p.NodePort))
			}
		}
	}
	for _, e := range eps {
		if e.local && (slices.Contains(clusterEPs, e) || slices.Contains(localEPs, e)) {
			b.hairpin[e.ap.Addr()] = true
		}
	}
	if udp {
		slices.SortFunc(backends, compareAddrPort)
		b.rs.UDP = append(b.rs.UDP, UDPPort{Family: b.fam, Key: key, Frontends: frontends, Backends: slices.Compact(backends)})
	}
}

// claim records a dispatch element; the first claimant of a key keeps it.
func (b *tableBuilder) claim(m map[Key]owned, set string, k Key, o owned) bool {
	if prev, ok := m[k]; ok {
		if prev.owner != o.owner || prev.chain != o.chain {
			s := &Set{Fields: []Field{FieldAddr, FieldProto, FieldPort}}
			if set == MapNodePorts {
				s.Fields = s.Fields[1:]
			}
			b.rs.Warnings = append(b.rs.Warnings, fmt.Sprintf("%s %s: %s ignored, already used by %s", set, s.keyString(k), o.owner, prev.owner))
		}
		return false
	}
	m[k] = o
	return true
}

// pick is the endpoint selection: with N endpoints, rule i matches with
// probability 1/(N-i) ("numgen random mod N-i 0"), so each endpoint gets
// 1/N of new connections, and the chain stays linear and readable without
// a per-Service map. Session affinity first sends known clients back to
// their endpoint. With no endpoints at all, connections are rejected; with
// endpoints elsewhere but none here, dropped (kube-proxy does the same).
func (b *tableBuilder) pick(key string, proto Protocol, eps []endpoint, affinity time.Duration, none bool) []Rule {
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

func (b *tableBuilder) affinitySet(key string, ep netip.AddrPort, timeout time.Duration) string {
	name := fmt.Sprintf("%s%s__%s/%d", PrefixAffinity, key, strings.ReplaceAll(ep.Addr().String(), ":", "."), ep.Port())
	if _, ok := b.affinity[name]; !ok {
		b.affinity[name] = &Set{Name: name, Fields: []Field{FieldAddr}, Dynamic: true, Timeout: timeout.Round(time.Second), Size: b.in.affinityLimit()}
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

func setKeys(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
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

func elements(m map[Key]owned) []Element {
	out := make([]Element, 0, len(m))
	for k, o := range m {
		out = append(out, Element{Key: k, Goto: o.chain})
	}
	slices.SortFunc(out, func(a, b Element) int { return compareKey(a.Key, b.Key) })
	return out
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

func healthChecks(in *Input, svcs []Service) []HealthCheck {
	var out []HealthCheck
	for _, s := range svcs {
		if !s.ExternalLocal || s.HealthCheckNodePort == 0 {
			continue
		}
		n := 0
		for _, fam := range []Family{IPv4, IPv6} {
			local := map[netip.Addr]bool{}
			for _, e := range s.Endpoints {
				if e.Ready && e.Addr.IsValid() && fam.has(e.Addr.Unmap()) && in.NodeName != "" && e.NodeName == in.NodeName {
					local[e.Addr.Unmap()] = true
				}
			}
			n = max(n, len(local))
		}
		out = append(out, HealthCheck{Namespace: s.Namespace, Name: s.Name, Port: s.HealthCheckNodePort, LocalEndpoints: n})
	}
	return out
}
