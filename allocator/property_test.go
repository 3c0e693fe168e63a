package allocator

import (
	"fmt"
	"math/rand"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// checkInvariants verifies the allocator's internal consistency.
func checkInvariants(t testing.TB, a *Allocator) {
	t.Helper()
	// Keys and holders agree.
	for key, ips := range a.keys {
		if len(ips) == 0 || len(ips) > 2 {
			t.Fatalf("key %s holds %v", key, ips)
		}
		if len(ips) == 2 && config.FamilyOf(ips[0]) == config.FamilyOf(ips[1]) {
			t.Fatalf("key %s holds two addresses of one family: %v", key, ips)
		}
		for _, ip := range ips {
			if !slices.ContainsFunc(a.holders[ip], func(h holder) bool { return h.key == key }) {
				t.Fatalf("key %s lists %s, which does not list it as holder", key, ip)
			}
		}
	}
	usedBy := map[*famState]int64{}
	sharedIPs := 0
	for ip, hs := range a.holders {
		if len(hs) == 0 {
			t.Fatalf("%s has an empty holder list", ip)
		}
		for i, h := range hs {
			if !slices.Contains(a.keys[h.key], ip) {
				t.Fatalf("%s lists holder %s, which does not hold it", ip, h.key)
			}
			if i > 0 && hs[i-1].key >= h.key {
				t.Fatalf("%s: holders not sorted: %v", ip, hs)
			}
			// No address is held by two incompatible keys.
			for _, o := range hs[:i] {
				if err := conflict(ip, h.key, h.share, o); err != nil {
					t.Fatalf("incompatible holders: %v", err)
				}
			}
		}
		if sk := hs[0].share.key; sk != "" {
			sharedIPs++
			if _, ok := a.shared[sk][ip]; !ok {
				t.Fatalf("%s (key %q) missing from the sharing index", ip, sk)
			}
		}
		// Held addresses are not free.
		if fs := a.slot(ip); fs != nil {
			usedBy[fs]++
			if fs.free.has(ip) {
				t.Fatalf("%s is held by %v and free", ip, hs)
			}
		}
	}
	n := 0
	for sk, set := range a.shared {
		if len(set) == 0 {
			t.Fatalf("empty sharing index entry %q", sk)
		}
		n += len(set)
	}
	if n != sharedIPs {
		t.Fatalf("sharing index has %d addresses, want %d", n, sharedIPs)
	}
	for i := 1; i < len(a.spans); i++ {
		if a.spans[i-1].r.Overlaps(a.spans[i].r) || !a.spans[i-1].r.First.Less(a.spans[i].r.First) {
			t.Fatalf("spans out of order or overlapping: %v %v", a.spans[i-1].r, a.spans[i].r)
		}
	}
	for _, p := range a.pools {
		for fi, fs := range p.fams {
			if fs == nil {
				continue
			}
			free := checkFree(t, a, p, fs)
			if fs.used != usedBy[fs] {
				t.Fatalf("pool %s family %d: used %d, but %d held addresses lie in it", p.Name, fi, fs.used, usedBy[fs])
			}
			if addSat(free, fs.used) != fs.total {
				t.Fatalf("pool %s family %d: free %d + used %d != total %d", p.Name, fi, free, fs.used, fs.total)
			}
		}
	}
}

// checkFree verifies the free intervals of one pool and family and counts
// them.
func checkFree(t testing.TB, a *Allocator, p *poolState, fs *famState) int64 {
	t.Helper()
	var n int64
	var prevHi netip.Addr
	fs.free.each(func(lo, hi netip.Addr) bool {
		if hi.Less(lo) || lo.Is4() != fs.free.is4 {
			t.Fatalf("pool %s: bad interval %v-%v", p.Name, lo, hi)
		}
		if prevHi.IsValid() && (!prevHi.Less(lo) || prevHi.Next() == lo) {
			t.Fatalf("pool %s: intervals ending %v and starting %v overlap or touch", p.Name, prevHi, lo)
		}
		// Each interval lies within one effective range of the pool.
		s := a.spans[slices.IndexFunc(a.spans, func(s span) bool { return s.r.Contains(lo) })]
		if s.pool != p || !s.r.Contains(hi) {
			t.Fatalf("pool %s: free interval %v-%v outside its ranges", p.Name, lo, hi)
		}
		if p.AvoidBuggyIPs && lo.Is4() {
			if avoided(p, lo) || avoided(p, hi) || u32(lo)>>8 != u32(hi)>>8 {
				t.Fatalf("pool %s: free interval %v-%v holds avoided addresses", p.Name, lo, hi)
			}
		}
		n = addSat(n, config.Range{First: lo, Last: hi}.Size())
		prevHi = hi
		return true
	})
	return n
}

// TestRandomOperations replays seeded random operations and checks the
// invariants after each, plus what every call promises.
func TestRandomOperations(t *testing.T) {
	configs := [][]v1alpha1.IPPool{
		{
			pool("a", "10.0.0.0/29"),
			pool("b", "10.0.0.250-10.0.1.5", avoidBuggy, prio(1)),
			pool("c", "fd00::/125,10.2.0.0/30", onlyNS("x")),
			pool("m", "10.9.0.0/30,fd09::/126", manual),
		},
		{
			pool("a", "10.0.0.0/30"),
			pool("c", "fd00::/126", nsSel("env=prod")),
		},
		{
			pool("a", "10.0.0.0/29,fd00::/124"),
			pool("b", "10.0.0.252-10.0.1.3"),
			pool("m", "10.9.0.0/31", manual, svcSel("tier=gold")),
		},
		nil,
	}
	var candidates []netip.Addr
	for _, s := range []string{"10.0.0.0", "10.0.0.3", "10.0.0.7", "10.0.0.255", "10.0.1.0", "10.0.1.2", "10.2.0.1", "10.9.0.1", "192.0.2.1", "fd00::1", "fd00::7", "fd09::2", "2001:db8::1"} {
		candidates = append(candidates, netip.MustParseAddr(s))
	}
	famChoices := [][]config.Family{{v4}, {v6}, {v4, v6}, {v6, v4}}
	protos := []string{"TCP", "UDP"}
	ports := []int32{53, 80, 443}

	rng := rand.New(rand.NewSource(1))
	ops := 20000
	if testing.Short() {
		ops = 2000
	}
	cfg := mkPools(configs[0]...)
	a := New()
	a.SetPools(cfg)
	reqs := map[string]Request{}
	randomRequest := func() Request {
		ns := []string{"x", "y"}[rng.Intn(2)]
		r := Request{
			Key:        fmt.Sprintf("%s/s%d", ns, rng.Intn(20)),
			Namespace:  ns,
			Families:   famChoices[rng.Intn(len(famChoices))],
			RequireAll: rng.Intn(2) == 0,
		}
		if rng.Intn(3) == 0 {
			r.NamespaceLabels = mustSet("env=prod")
		}
		if rng.Intn(3) == 0 {
			r.ServiceLabels = mustSet("tier=gold")
		}
		if rng.Intn(8) == 0 {
			r.Pool = []string{"a", "m", "zz"}[rng.Intn(3)]
		}
		if rng.Intn(4) == 0 {
			r.IPs = []netip.Addr{candidates[rng.Intn(len(candidates))]}
		}
		if rng.Intn(2) == 0 {
			r.SharingKey = []string{"k1", "k2"}[rng.Intn(2)]
		}
		for range 1 + rng.Intn(2) {
			r.Ports = append(r.Ports, Port{Protocol: protos[rng.Intn(2)], Port: ports[rng.Intn(3)]})
		}
		if rng.Intn(3) == 0 {
			r.Local, r.Selector = true, []string{"app=a", "app=b"}[rng.Intn(2)]
		}
		return r
	}
	counts := map[string]int{}
	for i := range ops {
		beforeState, beforeStats := dumpState(a), dumpStats(a.Stats())
		switch op := rng.Intn(100); {
		case op < 60:
			req := randomRequest()
			old := a.Holding(req.Key)
			res, err := a.Allocate(req)
			if err != nil {
				counts["alloc error "+string(ReasonOf(err))]++
				if dumpState(a) != beforeState || dumpStats(a.Stats()) != beforeStats {
					t.Fatalf("op %d: failed Allocate(%+v) changed the state", i, req)
				}
				break
			}
			counts["alloc ok"]++
			if len(res.Stale) > 0 {
				counts["alloc stale"]++
			}
			checkAllocated(t, a, i, req, old, res)
			reqs[req.Key] = req
		case op < 80:
			key := fmt.Sprintf("%s/s%d", []string{"x", "y"}[rng.Intn(2)], rng.Intn(20))
			held := a.Holding(key)
			for _, ip := range a.Release(key) {
				if !slices.Contains(held, ip) || len(a.Owners(ip)) != 0 {
					t.Fatalf("op %d: Release(%s) freed %s, held %v, owners %v", i, key, ip, held, a.Owners(ip))
				}
			}
			if len(a.Holding(key)) != 0 {
				t.Fatalf("op %d: %s still holds after Release", i, key)
			}
			delete(reqs, key)
		case op < 90:
			req := randomRequest()
			var ips []netip.Addr
			for range rng.Intn(3) {
				ips = append(ips, candidates[rng.Intn(len(candidates))])
			}
			if err := a.Restore(req, ips); err != nil {
				counts["restore error "+string(ReasonOf(err))]++
				if dumpState(a) != beforeState || dumpStats(a.Stats()) != beforeStats {
					t.Fatalf("op %d: failed Restore changed the state", i)
				}
				break
			}
			counts["restore ok"]++
			if !slices.Equal(a.Holding(req.Key), ips) {
				t.Fatalf("op %d: Restore(%s, %v) holds %v", i, req.Key, ips, a.Holding(req.Key))
			}
			reqs[req.Key] = req
		case op < 97:
			cfg = mkPools(configs[rng.Intn(len(configs))]...)
			a.SetPools(cfg)
			if dumpState(a) != beforeState {
				t.Fatalf("op %d: SetPools changed holdings", i)
			}
		default:
			prev := a
			var refused map[string]error
			a, refused = restartFrom(prev, cfg, reqs)
			counts[fmt.Sprintf("restart refusing %d", min(len(refused), 1))]++
			// Restore uses each Service's current request. Only an address
			// that some holder kept as stale, under older sharing
			// attributes, can make a Restore clash with an earlier one.
			for k, err := range refused {
				if !keptOlderShare(prev, k, reqs) {
					t.Fatalf("op %d: restart refused %s: %v", i, k, err)
				}
			}
			for k, ips := range prev.keys {
				if _, ok := refused[k]; !ok && !slices.Equal(a.Holding(k), ips) {
					t.Fatalf("op %d: restart changed %s from %v to %v", i, k, ips, a.Holding(k))
				}
			}
			if len(refused) == 0 && (dumpState(a) != beforeState || dumpStats(a.Stats()) != beforeStats) {
				t.Fatalf("op %d: restart changed the state:\n%s\n%s\nbefore:\n%s\n%s", i, dumpState(a), dumpStats(a.Stats()), beforeState, beforeStats)
			}
		}
		checkInvariants(t, a)
	}
	t.Logf("operations: %v", counts)
	for _, k := range []string{"alloc ok", "alloc stale", "alloc error PoolExhausted", "alloc error IPInUse", "alloc error SharingConflict", "restore ok", "restore error IPInUse"} {
		if counts[k] == 0 && !testing.Short() {
			t.Errorf("the random operations never reached %q; adjust the generator", k)
		}
	}
}

// keptOlderShare reports whether some holder of key's addresses holds it
// under sharing attributes other than those of its current request: a stale
// address kept after the request changed.
func keptOlderShare(a *Allocator, key string, reqs map[string]Request) bool {
	for _, ip := range a.keys[key] {
		for _, h := range a.holders[ip] {
			if !reflect.DeepEqual(h.share, shareOf(new(reqs[h.key]))) {
				return true
			}
		}
	}
	return false
}

// checkAllocated verifies what a successful Allocate promises.
func checkAllocated(t *testing.T, a *Allocator, i int, req Request, old []netip.Addr, res Result) {
	t.Helper()
	if !slices.Equal(a.Holding(req.Key), res.IPs) {
		t.Fatalf("op %d: Holding %v != Result %v", i, a.Holding(req.Key), res.IPs)
	}
	if res.Changed != !slices.Equal(old, res.IPs) {
		t.Fatalf("op %d: Changed %v, old %v, new %v", i, res.Changed, old, res.IPs)
	}
	if len(res.IPs) == 0 || (req.RequireAll && len(res.IPs) != len(req.Families)) {
		t.Fatalf("op %d: %+v got %v", i, req, res.IPs)
	}
	fi := 0
	for _, ip := range res.IPs {
		for fi < len(req.Families) && req.Families[fi] != config.FamilyOf(ip) {
			fi++
		}
		if fi == len(req.Families) {
			t.Fatalf("op %d: result %v not in the order of %v", i, res.IPs, req.Families)
		}
	}
	for _, w := range req.IPs {
		if !slices.Contains(res.IPs, w) {
			t.Fatalf("op %d: requested %s, got %v", i, w, res.IPs)
		}
	}
	r, err := a.check(&req)
	if err != nil {
		t.Fatalf("op %d: accepted request fails check: %v", i, err)
	}
	for _, ip := range res.IPs {
		stale := slices.Contains(res.Stale, ip)
		if err := a.valid(&r, ip); (err == nil) == stale {
			t.Fatalf("op %d: %s stale=%v but valid() = %v", i, ip, stale, err)
		}
		if stale && !slices.Contains(old, ip) {
			t.Fatalf("op %d: stale %s was not held before", i, ip)
		}
	}
}
