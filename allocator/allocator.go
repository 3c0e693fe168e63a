package allocator

import (
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/beaconlb/beacon/config"
)

// Allocator hands out Service addresses from pools. The zero value is not
// usable; call New.
type Allocator struct {
	pools   []*poolState // allocation order
	byName  map[string]*poolState
	invalid map[string]error
	// spans holds every pool's effective ranges sorted by first address, for
	// PoolOf by binary search.
	spans []span

	holders map[netip.Addr][]holder // sorted by key
	keys    map[string][]netip.Addr // in the order of the key's last Result
	// shared indexes the held addresses by sharing key. All holders of a
	// shared address have the same key, so each address is under one key.
	shared map[string]map[netip.Addr]struct{}
	// conflicts are addresses that other hosts on the network use. They
	// are kept out of the free sets, so automatic choice never sees them.
	conflicts map[netip.Addr]struct{}
}

type poolState struct {
	*config.Pool
	fams [2]*famState // by famIndex; nil when the pool has no such addresses
}

// famState is the address accounting of one pool and family.
type famState struct {
	free  freeSet
	total int64 // addresses the pool may hand out, saturating
	used  int64 // of those, how many are held
}

type span struct {
	r    config.Range
	pool *poolState
}

func famIndex(f config.Family) int {
	if f == config.IPv6 {
		return 1
	}
	return 0
}

// New returns an Allocator with no pools.
func New() *Allocator {
	return &Allocator{
		byName:    map[string]*poolState{},
		holders:   map[netip.Addr][]holder{},
		keys:      map[string][]netip.Addr{},
		shared:    map[string]map[netip.Addr]struct{}{},
		conflicts: map[netip.Addr]struct{}{},
	}
}

// SetConflicts replaces the set of addresses that other hosts on the
// network use. Automatic choice skips them; a Service holding one it did
// not request is moved by its next Allocate when another address is free.
// A Service may still request one: the caller warns about it.
func (a *Allocator) SetConflicts(ips []netip.Addr) {
	next := make(map[netip.Addr]struct{}, len(ips))
	for _, ip := range ips {
		next[ip] = struct{}{}
	}
	for ip := range a.conflicts {
		if _, still := next[ip]; still || len(a.holders[ip]) > 0 {
			continue
		}
		if fs := a.slot(ip); fs != nil {
			fs.free.put(ip)
		}
	}
	for ip := range next {
		if _, was := a.conflicts[ip]; was || len(a.holders[ip]) > 0 {
			continue
		}
		if fs := a.slot(ip); fs != nil {
			fs.free.take(ip)
		}
	}
	a.conflicts = next
}

func (a *Allocator) conflicting(ip netip.Addr) bool {
	_, ok := a.conflicts[ip]
	return ok
}

// SetPools replaces the pool set. Every allocation is kept, also those that
// no pool covers any more. ps must come from config.ParsePools, so that the
// effective ranges of different pools do not overlap; nil means no pools.
func (a *Allocator) SetPools(ps *config.Pools) {
	a.pools, a.spans, a.invalid = nil, nil, nil
	a.byName = map[string]*poolState{}
	if ps != nil {
		a.invalid = ps.Invalid
		for _, p := range ps.Sorted() {
			st := &poolState{Pool: p}
			for _, r := range p.Ranges {
				if i := famIndex(r.Family()); st.fams[i] == nil {
					st.fams[i] = &famState{free: newFreeSet(i == 0)}
				}
				a.spans = append(a.spans, span{r, st})
			}
			a.pools = append(a.pools, st)
			a.byName[p.Name] = st
		}
	}
	sort.Slice(a.spans, func(i, j int) bool { return a.spans[i].r.First.Less(a.spans[j].r.First) })
	// Build each free set around the held and conflicting addresses in one
	// ascending pass, rather than splitting it once per address.
	held := map[*famState][]u128{}
	used := map[*famState]int64{}
	for ip := range a.holders {
		if fs := a.slot(ip); fs != nil {
			held[fs] = append(held[fs], toU(ip))
			used[fs]++
		}
	}
	for ip := range a.conflicts {
		if fs := a.slot(ip); fs != nil && len(a.holders[ip]) == 0 {
			held[fs] = append(held[fs], toU(ip))
		}
	}
	for _, p := range a.pools {
		for i, fs := range p.fams {
			if fs == nil {
				continue
			}
			h := held[fs]
			slices.SortFunc(h, u128.cmp)
			fs.used = used[fs]
			for _, r := range p.Ranges {
				if famIndex(r.Family()) == i {
					fs.total = addSat(fs.total, fs.free.fill(r.First, r.Last, p.AvoidBuggyIPs, &h))
				}
			}
		}
	}
}

// lookup returns the pool whose effective ranges contain ip, or nil.
func (a *Allocator) lookup(ip netip.Addr) *poolState {
	i := sort.Search(len(a.spans), func(i int) bool { return ip.Less(a.spans[i].r.First) })
	if i > 0 && a.spans[i-1].r.Contains(ip) {
		return a.spans[i-1].pool
	}
	return nil
}

// avoided reports whether the pool never hands out ip (avoidBuggyIPs).
func avoided(p *poolState, ip netip.Addr) bool {
	if !p.AvoidBuggyIPs || !ip.Is4() {
		return false
	}
	last := ip.As4()[3]
	return last == 0 || last == 255
}

// slot returns the accounting that ip belongs to, or nil if no pool may hand
// it out.
func (a *Allocator) slot(ip netip.Addr) *famState {
	p := a.lookup(ip)
	if p == nil || avoided(p, ip) {
		return nil
	}
	return p.fams[famIndex(config.FamilyOf(ip))]
}

// PoolOf returns the name of the pool whose effective ranges contain ip, or
// "". Addresses skipped by avoidBuggyIPs still belong to their pool.
func (a *Allocator) PoolOf(ip netip.Addr) string {
	if p := a.lookup(ip); p != nil {
		return p.Name
	}
	return ""
}

// hold records h as a holder of ip, replacing an earlier record of the same
// key. The first holder takes ip out of its pool's free set.
func (a *Allocator) hold(ip netip.Addr, h holder) {
	hs := a.holders[ip]
	if len(hs) == 0 {
		if fs := a.slot(ip); fs != nil {
			fs.free.take(ip)
			fs.used++
		}
	}
	a.unindex(ip)
	i, found := slices.BinarySearchFunc(hs, h.key, func(o holder, k string) int { return strings.Compare(o.key, k) })
	if found {
		hs[i] = h
	} else {
		hs = slices.Insert(hs, i, h)
	}
	a.holders[ip] = hs
	a.index(ip)
}

// unhold drops key's claim on ip and reports whether ip is now unheld; then
// it goes back to its pool's free set, if it has one.
func (a *Allocator) unhold(ip netip.Addr, key string) bool {
	a.unindex(ip)
	hs := slices.DeleteFunc(a.holders[ip], func(o holder) bool { return o.key == key })
	if len(hs) > 0 {
		a.holders[ip] = hs
		a.index(ip)
		return false
	}
	delete(a.holders, ip)
	if fs := a.slot(ip); fs != nil {
		if !a.conflicting(ip) {
			fs.free.put(ip)
		}
		fs.used--
	}
	return true
}

func (a *Allocator) index(ip netip.Addr) {
	hs := a.holders[ip]
	if len(hs) == 0 || hs[0].share.key == "" {
		return
	}
	set := a.shared[hs[0].share.key]
	if set == nil {
		set = map[netip.Addr]struct{}{}
		a.shared[hs[0].share.key] = set
	}
	set[ip] = struct{}{}
}

func (a *Allocator) unindex(ip netip.Addr) {
	hs := a.holders[ip]
	if len(hs) == 0 || hs[0].share.key == "" {
		return
	}
	set := a.shared[hs[0].share.key]
	delete(set, ip)
	if len(set) == 0 {
		delete(a.shared, hs[0].share.key)
	}
}

// Restore records that req.Key holds ips, as found in a Service's status when
// the controller starts, replacing what the key held. Addresses outside every
// pool, or that the Service may no longer use, are recorded too: the next
// Allocate replaces them if it can. Only req.Key and the sharing fields of
// req matter. Restore refuses, recording nothing, malformed addresses, two
// addresses of one family, and addresses that another key holds unless
// sharing rules allow it.
func (a *Allocator) Restore(req Request, ips []netip.Addr) error {
	if req.Key == "" {
		return errorf(ReasonBadRequest, "request has no Service key")
	}
	var seen [2]netip.Addr
	for _, ip := range ips {
		if err := plain(ip); err != nil {
			return err
		}
		i := famIndex(config.FamilyOf(ip))
		if seen[i].IsValid() {
			return errorf(ReasonBadRequest, "Service %s holds two %s addresses (%s and %s); at most one per family", req.Key, config.FamilyOf(ip), seen[i], ip)
		}
		seen[i] = ip
	}
	s := shareOf(&req)
	for _, ip := range ips {
		if err := a.shareable(ip, req.Key, s); err != nil {
			return err
		}
	}
	for _, ip := range ips {
		a.hold(ip, holder{req.Key, s})
	}
	for _, ip := range a.keys[req.Key] {
		if !slices.Contains(ips, ip) {
			a.unhold(ip, req.Key)
		}
	}
	a.setKey(req.Key, ips)
	return nil
}

func (a *Allocator) setKey(key string, ips []netip.Addr) {
	if len(ips) == 0 {
		delete(a.keys, key)
		return
	}
	a.keys[key] = slices.Clone(ips)
}

// plain rejects addresses that cannot be a Service address as written.
func plain(ip netip.Addr) *Error {
	switch {
	case !ip.IsValid():
		return errorf(ReasonBadRequest, "invalid (empty) IP address")
	case ip.Zone() != "" || ip.Is4In6():
		return errorf(ReasonBadRequest, "address %s: use plain IPv4 or IPv6 notation", ip)
	}
	return nil
}

// shareable explains why key (with sharing attributes s) may not hold ip next
// to its other holders, or returns nil.
func (a *Allocator) shareable(ip netip.Addr, key string, s share) *Error {
	for _, o := range a.holders[ip] {
		if o.key == key {
			continue
		}
		if err := conflict(ip, key, s, o); err != nil {
			return err
		}
	}
	return nil
}

// Release drops everything key holds and returns the addresses no key holds
// any more (including those in no pool). Unknown keys are ignored.
func (a *Allocator) Release(key string) []netip.Addr {
	var freed []netip.Addr
	for _, ip := range a.keys[key] {
		if a.unhold(ip, key) {
			freed = append(freed, ip)
		}
	}
	delete(a.keys, key)
	return freed
}

// Holding returns the addresses key holds, in the order of its last Result.
func (a *Allocator) Holding(key string) []netip.Addr {
	return slices.Clone(a.keys[key])
}

// Owners returns the keys holding ip, sorted.
func (a *Allocator) Owners(ip netip.Addr) []string {
	hs := a.holders[ip]
	if len(hs) == 0 {
		return nil
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.key
	}
	return out
}

// FamilyStats counts the addresses of one family of a pool. Total excludes
// addresses skipped by avoidBuggyIPs and saturates at MaxInt64; Used counts
// distinct held addresses that the pool may hand out; Conflicting counts
// the others that hosts outside the cluster use (not free either).
type FamilyStats struct {
	Total, Used, Conflicting int64
}

// PoolStats counts a pool's addresses per family; a family is nil when the
// pool has no addresses of it.
type PoolStats struct {
	IPv4, IPv6 *FamilyStats
}

// Stats returns the counts of every valid pool, by name.
func (a *Allocator) Stats() map[string]PoolStats {
	out := make(map[string]PoolStats, len(a.pools))
	for _, p := range a.pools {
		var st PoolStats
		if fs := p.fams[0]; fs != nil {
			st.IPv4 = &FamilyStats{Total: fs.total, Used: fs.used}
		}
		if fs := p.fams[1]; fs != nil {
			st.IPv6 = &FamilyStats{Total: fs.total, Used: fs.used}
		}
		out[p.Name] = st
	}
	for ip := range a.conflicts {
		p := a.lookup(ip)
		if p == nil || avoided(p, ip) || len(a.holders[ip]) > 0 {
			continue
		}
		st := out[p.Name]
		if fs := st.IPv4; ip.Is4() && fs != nil {
			fs.Conflicting++
		} else if fs := st.IPv6; ip.Is6() && fs != nil {
			fs.Conflicting++
		}
	}
	return out
}
