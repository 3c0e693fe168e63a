package nodeport

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strconv"
)

// Why shards and a Builder: the kernel re-validates a whole table, every
// chain reachable from its base chains through every verdict-map element,
// on each commit that adds a rule or a map element. With 10,000 Services
// in one table that walk costs about 55 ms, whatever the change. So the
// Services are spread over Input.Shards tables by a hash of their
// namespace/name, and one Service change re-validates only its shard. And
// rebuilding the model of 10,000 Services costs 100-200 ms, so a Builder
// keeps each Service's built fragment and rebuilds only the Services whose
// input changed, and only the shard tables they are in; the Applier skips
// tables, chains and sets its previous Ruleset shares by pointer.

// ShardTableName is the name of shard i's table in each family.
func ShardTableName(i int) string { return TableName + "-svc" + strconv.Itoa(i) }

// ShardOf returns the shard of a Service (fnv-1a of namespace/name).
func ShardOf(namespace, name string, shards int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(namespace))
	_, _ = h.Write([]byte{'/'})
	_, _ = h.Write([]byte(name))
	return int(h.Sum32() % uint32(shards))
}

// Builder builds Rulesets like Build and remembers the pieces: a Service
// whose input is unchanged since the previous Build keeps its chains, and
// a shard table with no changed Service is the previous one (the same
// pointer). Each Build returns a Ruleset equal to Build(in); the Rulesets
// it returns must not be modified. The Builder keeps the Input's slices:
// a caller must not modify them after Build, but pass new ones (as
// ServicesFromKube and KubeConverter do). A Builder is not safe for
// concurrent use; the Syncer owns one.
type Builder struct {
	g       globals
	valid   bool // g and the state below describe the previous Build
	gen     uint64
	entries map[svcID]*entry
	// members are each shard's entries, and special the entries with UDP
	// ports or a health check, in namespace/name order.
	members [][]*entry
	special []*entry
	fams    [2]*famState
	// warnings are the conflict warnings, rebuilt when a contested key
	// changes.
	warnings  []string
	warnDirty bool
}

// NewBuilder returns an empty Builder; its first Build builds everything.
func NewBuilder() *Builder { return &Builder{} }

// Reset drops everything remembered, so that the next Build builds every
// table anew.
func (b *Builder) Reset() { b.valid = false }

// globals are the inputs shared by all Services; when one changes, the
// Builder starts over.
type globals struct {
	mode          Mode
	node          string
	nodeAddrs     []netip.Addr
	nodeIPs       [2][]netip.Addr // by family index
	podCIDRs      []netip.Prefix
	mark          uint32
	affinityLimit uint32
	shards        int
}

func globalsOf(in *Input) globals {
	return globals{
		mode:          in.mode(),
		node:          in.NodeName,
		nodeAddrs:     slices.Clone(in.NodeAddresses),
		nodeIPs:       [2][]netip.Addr{uniqueAddrs(in.NodeAddresses, IPv4), uniqueAddrs(in.NodeAddresses, IPv6)},
		podCIDRs:      slices.Clone(in.PodCIDRs),
		mark:          in.mark(),
		affinityLimit: in.affinityLimit(),
		shards:        in.shards(),
	}
}

func (g *globals) equal(o *globals) bool {
	return g.mode == o.mode && g.node == o.node && slices.Equal(g.nodeAddrs, o.nodeAddrs) &&
		slices.Equal(g.podCIDRs, o.podCIDRs) && g.mark == o.mark && g.affinityLimit == o.affinityLimit &&
		g.shards == o.shards
}

type svcID struct{ ns, name string }

func (a svcID) compare(b svcID) int {
	return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.name, b.name))
}

// entry is one Service as last built.
type entry struct {
	id     svcID
	svc    Service // a deep copy of the input, to compare the next one with
	shard  int
	frag   [2]*fragment // by family index
	health *HealthCheck
	seen   uint64 // the Build that last saw it
}

// fragment is what one Service contributes to its shard table of one
// family.
type fragment struct {
	chains  []*Chain // sorted by name
	sets    []*Set   // affinity sets, sorted by name
	claims  []*claim
	hairpin []netip.Addr
	udp     []UDPPort
}

type dispatchMap uint8

const (
	mapServiceIPs dispatchMap = iota
	mapNodePorts
)

// claim is a dispatch element a Service asks for. Each key goes to the
// first claimant in (namespace/name, seq) order; the others are reported
// as warnings.
type claim struct {
	m     dispatchMap
	key   Key
	chain string
	masq  bool // also an element of the matching masquerade set
	e     *entry
	seq   int
	won   bool // the key's winner: an element of the entry's shard
}

func (c *claim) before(o *claim) bool {
	if d := c.e.id.compare(o.e.id); d != 0 {
		return d < 0
	}
	return c.seq < o.seq
}

type claimKey struct {
	m dispatchMap
	k Key
}

type claimSet struct {
	w    *claim
	rest []*claim
}

// famState is the Builder's state for one family.
type famState struct {
	fam Family
	// claims holds, per key, its winner and the other claimants; conflicts
	// the keys with other claimants.
	claims    map[claimKey]claimSet
	conflicts map[claimKey]bool
	hairpin   map[netip.Addr]int  // local endpoint -> number of Services using it
	hairpinUp map[netip.Addr]bool // addresses whose count left or reached 0
	base      *Table
	shards    []*Table // nil: no Service in the shard
	dirty     []bool
}

func newFamState(fam Family, shards, services int) *famState {
	return &famState{
		fam: fam, claims: make(map[claimKey]claimSet, services*2),
		conflicts: map[claimKey]bool{}, hairpin: map[netip.Addr]int{},
		hairpinUp: map[netip.Addr]bool{},
		shards:    make([]*Table, shards), dirty: make([]bool, shards),
	}
}

func (f Family) index() int {
	if f == IPv6 {
		return 1
	}
	return 0
}

var families = [2]Family{IPv4, IPv6}

// Build returns the Ruleset of in; see Build.
func (b *Builder) Build(in Input) *Ruleset {
	rs := &Ruleset{}
	if in.mode() == ModeOff {
		b.valid = false
		return rs
	}
	g := globalsOf(&in)
	if !b.valid || !b.g.equal(&g) {
		b.startOver(g, len(in.Services))
	}
	rs.Warnings = b.updateEntries(in.Services)
	b.collect(rs)
	return rs
}

// startOver forgets every entry and table, for globals g.
func (b *Builder) startOver(g globals, services int) {
	b.g, b.valid = g, true
	b.entries, b.members, b.special = map[svcID]*entry{}, make([][]*entry, g.shards), nil
	b.warnings, b.warnDirty = nil, false
	for i, fam := range families {
		b.fams[i] = newFamState(fam, g.shards, services)
	}
}

// updateEntries replaces the entries of changed Services, drops those of
// Services gone and brings the member lists up to date. It returns the
// warnings about Services listed twice. Input order does not matter,
// except that of two Services with the same namespace/name the first is
// used.
func (b *Builder) updateEntries(services []Service) []string {
	var warnings []string
	b.gen++
	added := map[int][]*entry{}
	var addedSpecial []*entry
	touched := map[int]bool{} // shards whose member list changes
	specialTouched, seen := false, 0
	gone := func(e *entry) {
		b.remove(e)
		touched[e.shard] = true
		specialTouched = specialTouched || e.special()
	}
	for i := range services {
		s := &services[i]
		id := svcID{s.Namespace, s.Name}
		e := b.entries[id]
		if e != nil && e.seen == b.gen {
			warnings = append(warnings, fmt.Sprintf("Service %s/%s: listed twice, the second ignored", s.Namespace, s.Name))
			continue
		}
		if e == nil || !equalService(&e.svc, s) {
			if e != nil {
				gone(e)
				e.seen = 0 // dropped from the member lists below
			}
			e = b.newEntry(id, s)
			b.entries[id] = e
			b.add(e)
			added[e.shard] = append(added[e.shard], e)
			touched[e.shard] = true
			if e.special() {
				addedSpecial = append(addedSpecial, e)
			}
		}
		e.seen = b.gen
		seen++
	}
	if seen != len(b.entries) {
		for id, e := range b.entries {
			if e.seen != b.gen {
				gone(e)
				delete(b.entries, id)
			}
		}
	}
	for sh := range touched {
		b.members[sh] = mergeEntries(b.members[sh], added[sh], b.gen)
	}
	if specialTouched || len(addedSpecial) > 0 {
		b.special = mergeEntries(b.special, addedSpecial, b.gen)
	}
	return warnings
}

// collect rebuilds the dirty tables and adds every table, UDP port, health
// check and conflict warning to rs.
func (b *Builder) collect(rs *Ruleset) {
	for i, fs := range b.fams {
		b.rebuildShards(fs)
		b.updateBase(fs)
		rs.Tables = append(rs.Tables, fs.base)
		for _, t := range fs.shards {
			if t != nil {
				rs.Tables = append(rs.Tables, t)
			}
		}
		for _, e := range b.special {
			rs.UDP = append(rs.UDP, e.frag[i].udp...)
		}
	}
	for _, e := range b.special {
		if e.health != nil {
			rs.Health = append(rs.Health, *e.health)
		}
	}
	if b.warnDirty {
		b.warnings, b.warnDirty = b.conflictWarnings(), false
	}
	rs.Warnings = append(rs.Warnings, b.warnings...)
}

func (e *entry) special() bool {
	return e.health != nil || len(e.frag[0].udp)+len(e.frag[1].udp) > 0
}

// mergeEntries drops from sorted the entries not seen in Build gen and
// merges in the added ones.
func mergeEntries(sorted, added []*entry, gen uint64) []*entry {
	slices.SortFunc(added, func(x, y *entry) int { return x.id.compare(y.id) })
	out := make([]*entry, 0, len(sorted)+len(added))
	i := 0
	for _, e := range sorted {
		if e.seen != gen {
			continue
		}
		for i < len(added) && added[i].id.compare(e.id) < 0 {
			out = append(out, added[i])
			i++
		}
		out = append(out, e)
	}
	return append(out, added[i:]...)
}

func (b *Builder) newEntry(id svcID, s *Service) *entry {
	e := &entry{id: id, svc: *s, shard: ShardOf(s.Namespace, s.Name, b.g.shards)}
	for i, fam := range families {
		e.frag[i] = buildFragment(&b.g, fam, e)
	}
	e.health = healthCheck(b.g.node, &e.svc)
	return e
}

func (b *Builder) add(e *entry) {
	for i, fs := range b.fams {
		f := e.frag[i]
		for _, c := range f.claims {
			b.addClaim(fs, c)
		}
		for _, a := range f.hairpin {
			if fs.hairpin[a]++; fs.hairpin[a] == 1 {
				fs.hairpinUp[a] = true
			}
		}
		fs.dirty[e.shard] = true
	}
}

func (b *Builder) remove(e *entry) {
	for i, fs := range b.fams {
		f := e.frag[i]
		for _, c := range f.claims {
			b.removeClaim(fs, c)
		}
		for _, a := range f.hairpin {
			if fs.hairpin[a]--; fs.hairpin[a] <= 0 {
				delete(fs.hairpin, a)
				fs.hairpinUp[a] = true
			}
		}
		fs.dirty[e.shard] = true
	}
}

// addClaim records a claim; when it wins its key from another Service,
// that Service's shard is rebuilt without the element.
func (b *Builder) addClaim(fs *famState, c *claim) {
	k := claimKey{c.m, c.key}
	cs, ok := fs.claims[k]
	if !ok {
		c.won = true
		fs.claims[k] = claimSet{w: c}
		return
	}
	if c.before(cs.w) {
		cs.w.won = false
		fs.dirty[cs.w.e.shard] = true
		cs.rest = append(cs.rest, cs.w)
		cs.w, c.won = c, true
	} else {
		cs.rest = append(cs.rest, c)
	}
	fs.claims[k] = cs
	fs.conflicts[k] = true
	b.warnDirty = true
}

// removeClaim drops a claim; when it was the winner, the next claimant
// wins and its shard is rebuilt with the element.
func (b *Builder) removeClaim(fs *famState, c *claim) {
	k := claimKey{c.m, c.key}
	cs := fs.claims[k]
	if len(cs.rest) > 0 {
		b.warnDirty = true
	}
	if cs.w != c {
		cs.rest = slices.DeleteFunc(slices.Clone(cs.rest), func(x *claim) bool { return x == c })
	} else {
		c.won = false
		if len(cs.rest) == 0 {
			delete(fs.claims, k)
			return
		}
		i := 0
		for j, x := range cs.rest {
			if x.before(cs.rest[i]) {
				i = j
			}
		}
		cs.w = cs.rest[i]
		cs.w.won = true
		fs.dirty[cs.w.e.shard] = true
		cs.rest = slices.Delete(slices.Clone(cs.rest), i, i+1)
	}
	fs.claims[k] = cs
	if len(cs.rest) == 0 {
		delete(fs.conflicts, k)
	}
}

// rebuildShards rebuilds the dirty shard tables from their Services'
// fragments.
func (b *Builder) rebuildShards(fs *famState) {
	for i, d := range fs.dirty {
		if d {
			fs.shards[i] = b.shardTable(fs, i, b.members[i])
			fs.dirty[i] = false
		}
	}
}

// shardTable is one shard's table: its own hooks, dispatch chain and maps,
// and its Services' chains; nil for a shard without chains.
func (b *Builder) shardTable(fs *famState, shard int, members []*entry) *Table {
	fi := fs.fam.index()
	var chains []*Chain
	var aff []*Set
	var ips, masqIPs, nps, masqNPs []Element
	for _, e := range members {
		f := e.frag[fi]
		chains = append(chains, f.chains...)
		aff = append(aff, f.sets...)
		for _, c := range f.claims {
			if !c.won {
				continue
			}
			el := Element{Key: c.key, Goto: c.chain}
			if c.m == mapServiceIPs {
				ips = append(ips, el)
				if c.masq {
					masqIPs = append(masqIPs, Element{Key: c.key})
				}
			} else {
				nps = append(nps, el)
				if c.masq {
					masqNPs = append(masqNPs, Element{Key: c.key})
				}
			}
		}
	}
	if len(chains) == 0 {
		return nil
	}
	full := b.g.mode == ModeFull
	t := &Table{Family: fs.fam, Name: ShardTableName(shard)}
	dest, nodePort := []Field{FieldAddr, FieldProto, FieldPort}, []Field{FieldProto, FieldPort}
	t.Sets = append(t.Sets,
		&Set{Name: MapServiceIPs, Fields: dest, Map: true, Elements: sortElements(ips)},
		&Set{Name: SetMasqueradeIPs, Fields: dest, Elements: sortElements(masqIPs)})
	if full {
		t.Sets = append(t.Sets,
			&Set{Name: MapNodePorts, Fields: nodePort, Map: true, Elements: sortElements(nps)},
			&Set{Name: SetMasqueradeNodePorts, Fields: nodePort, Elements: sortElements(masqNPs)},
			&Set{Name: SetNodePortIPs, Fields: []Field{FieldAddr}, Elements: addrElements(b.g.nodeIPs[fi], false)})
	}
	slices.SortFunc(aff, func(x, y *Set) int { return cmp.Compare(x.Name, y.Name) })
	t.Sets = append(t.Sets, aff...)

	mark := b.g.mark
	services := []Rule{
		{MatchDestInSet{Set: SetMasqueradeIPs}, SetMark{Mark: mark}},
		{DispatchVmap{Map: MapServiceIPs}},
	}
	if full {
		services = append(services,
			Rule{MatchDaddrInSet{Set: SetNodePortIPs}, MatchProtoPortInSet{Set: SetMasqueradeNodePorts}, SetMark{Mark: mark}},
			Rule{MatchDaddrInSet{Set: SetNodePortIPs}, NodePortVmap{Map: MapNodePorts}})
	}
	t.Chains = make([]*Chain, 0, 3+len(chains))
	t.Chains = append(t.Chains,
		&Chain{Name: ChainPrerouting, Base: &BaseChain{Hook: HookPrerouting, Priority: PriorityDstNAT}, Rules: []Rule{{Jump{Chain: ChainServices}}}},
		&Chain{Name: ChainOutput, Base: &BaseChain{Hook: HookOutput, Priority: PriorityDstNAT}, Rules: []Rule{{Jump{Chain: ChainServices}}}},
		&Chain{Name: ChainServices, Rules: services})
	slices.SortFunc(chains, func(x, y *Chain) int { return cmp.Compare(x.Name, y.Name) })
	t.Chains = append(t.Chains, chains...)
	t.index()
	return t
}

// updateBase rebuilds the base table, which holds what all shards share
// (the postrouting masquerade and the hairpin set), when the hairpin set
// changed.
func (b *Builder) updateBase(fs *famState) {
	var old []Element
	if fs.base != nil {
		if len(fs.hairpinUp) == 0 {
			return
		}
		old = fs.base.Sets[0].Elements
	}
	// Keep the old elements still used, merge in the new ones.
	var adds []netip.Addr
	for a := range fs.hairpinUp {
		if fs.hairpin[a] > 0 {
			if _, found := slices.BinarySearchFunc(old, a, func(e Element, a netip.Addr) int { return e.Key.Addr.Compare(a) }); !found {
				adds = append(adds, a)
			}
		}
	}
	slices.SortFunc(adds, netip.Addr.Compare)
	els := make([]Element, 0, len(old)+len(adds))
	i := 0
	for _, e := range old {
		if fs.hairpin[e.Key.Addr] == 0 {
			continue
		}
		for i < len(adds) && adds[i].Compare(e.Key.Addr) < 0 {
			els = append(els, Element{Key: Key{Addr: adds[i], Addr2: adds[i]}})
			i++
		}
		els = append(els, e)
	}
	for _, a := range adds[i:] {
		els = append(els, Element{Key: Key{Addr: a, Addr2: a}})
	}
	clear(fs.hairpinUp)
	if fs.base != nil && len(els) == len(old) && len(adds) == 0 {
		return // the same addresses came and went
	}
	mark := b.g.mark
	t := &Table{Family: fs.fam, Name: TableName,
		Sets: []*Set{{Name: SetHairpin, Fields: []Field{FieldAddr, FieldAddr2}, Elements: els}},
		Chains: []*Chain{{Name: ChainPostrouting, Base: &BaseChain{Hook: HookPostrouting, Priority: PrioritySrcNAT}, Rules: []Rule{
			{MatchMark{Mark: mark}, ToggleMark{Mark: mark}, Masquerade{}},
			{MatchCtDNAT{}, MatchAddrPairInSet{Set: SetHairpin}, Masquerade{}},
		}}},
	}
	t.index()
	fs.base = t
}

// conflictWarnings reports every claim that lost its key to another
// Service (or to another destination of the same Service), v4 first, in
// Service order.
func (b *Builder) conflictWarnings() []string {
	type lost struct {
		fam  int
		c, w *claim
	}
	var all []lost
	for i, fs := range b.fams {
		for k := range fs.conflicts {
			cs := fs.claims[k]
			for _, c := range cs.rest {
				if c.e != cs.w.e || c.chain != cs.w.chain {
					all = append(all, lost{i, c, cs.w})
				}
			}
		}
	}
	slices.SortFunc(all, func(x, y lost) int {
		if x.fam != y.fam {
			return cmp.Compare(x.fam, y.fam)
		}
		if x.c.before(y.c) {
			return -1
		}
		return 1
	})
	out := make([]string, 0, len(all))
	for _, l := range all {
		s := &Set{Fields: []Field{FieldAddr, FieldProto, FieldPort}}
		name := MapServiceIPs
		if l.c.m == mapNodePorts {
			s.Fields, name = s.Fields[1:], MapNodePorts
		}
		out = append(out, fmt.Sprintf("%s %s: %s ignored, already used by %s", name, s.keyString(l.c.key),
			l.c.e.id.ns+"/"+l.c.e.id.name, l.w.e.id.ns+"/"+l.w.e.id.name))
	}
	return out
}

// equalService compares every field Build reads. Slices that share their
// first element (the same backing array, as KubeConverter returns for an
// unchanged Service) are equal without a look at their elements.
func equalService(a, b *Service) bool {
	return a.Namespace == b.Namespace && a.Name == b.Name &&
		a.ExternalLocal == b.ExternalLocal && a.InternalLocal == b.InternalLocal &&
		a.AffinityTimeout == b.AffinityTimeout && a.HealthCheckNodePort == b.HealthCheckNodePort &&
		equalSlice(a.ClusterIPs, b.ClusterIPs) && equalSlice(a.LoadBalancerIPs, b.LoadBalancerIPs) &&
		equalSlice(a.ExternalIPs, b.ExternalIPs) && equalSlice(a.SourceRanges, b.SourceRanges) &&
		equalSlice(a.Ports, b.Ports) &&
		(sameArray(a.Endpoints, b.Endpoints) || slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y Endpoint) bool {
			return x.Addr == y.Addr && x.NodeName == y.NodeName && x.Ready == y.Ready &&
				x.Serving == y.Serving && x.Terminating == y.Terminating && equalSlice(x.Ports, y.Ports)
		}))
}

func sameArray[E any](a, b []E) bool { return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) }

func equalSlice[E comparable](a, b []E) bool { return sameArray(a, b) || slices.Equal(a, b) }
