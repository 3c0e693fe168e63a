package allocator

import (
	"maps"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// step is one operation of a scenario and the exact state expected after it.
type step struct {
	do    string            // "alloc", "restore", "release", "pools" or "restart"
	req   Request           // alloc, restore
	ips   string            // restore: the addresses held
	key   string            // release
	pools []v1alpha1.IPPool // pools

	want    string   // alloc: Result.IPs; release: the freed addresses
	stale   string   // alloc: Result.Stale
	changed bool     // alloc: Result.Changed
	warns   []Reason // alloc: the reasons of Result.Warnings
	err     Reason   // the error expected, "" for none
	msg     string   // a substring of the error, or of the first warning
	owners  string   // "ip=key,key": Owners of ip after the step
	state   string   // every key's holdings after the step (dumpState)
	stats   string   // Stats after the step (dumpStats)
}

type scenario struct {
	name  string
	pools []v1alpha1.IPPool
	steps []step
}

const (
	v4 = config.IPv4
	v6 = config.IPv6
)

// Step builders; the methods below set what to expect.
func alloc(r Request) step                { return step{do: "alloc", req: r} }
func restore(r Request, ips string) step  { return step{do: "restore", req: r, ips: ips} }
func release(key string) step             { return step{do: "release", key: key} }
func setPools(ps ...v1alpha1.IPPool) step { return step{do: "pools", pools: ps} }
func restart() step                       { return step{do: "restart"} }

// gives expects a changed result; keeps an unchanged one (or, for release,
// the freed addresses).
func (s step) gives(ips string) step { s.want, s.changed = ips, true; return s }
func (s step) keeps(ips string) step { s.want = ips; return s }

// fails expects an error of reason r whose message contains msg.
func (s step) fails(r Reason, msg string) step { s.err, s.msg = r, msg; return s }

// staleWith expects ips kept as stale, with one warning of reason r
// mentioning msg.
func (s step) staleWith(ips string, r Reason, msg string) step {
	s.stale, s.warns, s.msg = ips, []Reason{r}, msg
	return s
}

// warn expects warnings of these reasons.
func (s step) warn(r ...Reason) step { s.warns = r; return s }

// owns expects Owners: "ip=key,key".
func (s step) owns(o string) step { s.owners = o; return s }

// then expects the whole state after the step (dumpState and dumpStats).
func (s step) then(state, stats string) step {
	s.state, s.stats = state, stats
	return s
}

// harness replays steps and remembers the last request of each key, so that
// "restart" can rebuild a fresh Allocator the way the controller does.
type harness struct {
	t     *testing.T
	a     *Allocator
	pools *config.Pools
	reqs  map[string]Request
}

func (h *harness) run(i int, s step) {
	t := h.t
	t.Helper()
	beforeState, beforeStats := dumpState(h.a), dumpStats(h.a.Stats())
	var err error
	switch s.do {
	case "alloc":
		var res Result
		res, err = h.a.Allocate(s.req)
		if err == nil {
			h.reqs[s.req.Key] = s.req
			h.checkResult(i, s, res)
		}
	case "restore":
		if err = h.a.Restore(s.req, addrs(s.ips)); err == nil {
			h.reqs[s.req.Key] = s.req
		}
	case "release":
		if got := join(h.a.Release(s.key)); got != s.want {
			t.Errorf("step %d: Release(%s) freed %q, want %q", i, s.key, got, s.want)
		}
		delete(h.reqs, s.key)
	case "pools":
		h.pools = mkPools(s.pools...)
		h.a.SetPools(h.pools)
	case "restart":
		var refused map[string]error
		if h.a, refused = restartFrom(h.a, h.pools, h.reqs); len(refused) > 0 {
			t.Fatalf("step %d: restart refused %v", i, refused)
		}
	default:
		t.Fatalf("step %d: unknown op %q", i, s.do)
	}
	if ReasonOf(err) != s.err || (err != nil) != (s.err != "") {
		t.Fatalf("step %d (%s %s): error %v (reason %q), want reason %q", i, s.do, s.req.Key+s.key, err, ReasonOf(err), s.err)
	}
	if err != nil {
		if !strings.Contains(err.Error(), s.msg) {
			t.Errorf("step %d: error %q does not mention %q", i, err, s.msg)
		}
		if got, gotStats := dumpState(h.a), dumpStats(h.a.Stats()); got != beforeState || gotStats != beforeStats {
			t.Errorf("step %d: failed call changed the state:\n%s\n%s\nbefore:\n%s\n%s", i, got, gotStats, beforeState, beforeStats)
		}
	}
	if got := dumpState(h.a); got != s.state {
		t.Errorf("step %d (%s %s): state\n got %q\nwant %q", i, s.do, s.req.Key+s.key, got, s.state)
	}
	if got := dumpStats(h.a.Stats()); got != s.stats {
		t.Errorf("step %d (%s %s): stats\n got %q\nwant %q", i, s.do, s.req.Key+s.key, got, s.stats)
	}
	if s.owners != "" {
		ip, keys, _ := strings.Cut(s.owners, "=")
		if got := strings.Join(h.a.Owners(addrs(ip)[0]), ","); got != keys {
			t.Errorf("step %d: Owners(%s) = %q, want %q", i, ip, got, keys)
		}
	}
	checkInvariants(t, h.a)
}

func (h *harness) checkResult(i int, s step, res Result) {
	t := h.t
	t.Helper()
	if got := join(res.IPs); got != s.want {
		t.Errorf("step %d: Allocate(%s) = %q, want %q", i, s.req.Key, got, s.want)
	}
	if got := join(res.Stale); got != s.stale {
		t.Errorf("step %d: Allocate(%s) stale %q, want %q", i, s.req.Key, got, s.stale)
	}
	if res.Changed != s.changed {
		t.Errorf("step %d: Allocate(%s) changed %v, want %v", i, s.req.Key, res.Changed, s.changed)
	}
	var reasons []Reason
	for _, w := range res.Warnings {
		reasons = append(reasons, w.Reason)
	}
	if !slices.Equal(reasons, s.warns) {
		t.Errorf("step %d: Allocate(%s) warnings %v, want reasons %v", i, s.req.Key, res.Warnings, s.warns)
	}
	if len(res.Warnings) > 0 && !strings.Contains(res.Warnings[0].Msg, s.msg) {
		t.Errorf("step %d: warning %q does not mention %q", i, res.Warnings[0].Msg, s.msg)
	}
	if len(res.Pools) != len(res.IPs) {
		t.Fatalf("step %d: %d pools for %d IPs", i, len(res.Pools), len(res.IPs))
	}
	for j, ip := range res.IPs {
		if res.Pools[j] != h.a.PoolOf(ip) {
			t.Errorf("step %d: Result.Pools[%d] = %q, PoolOf(%s) = %q", i, j, res.Pools[j], ip, h.a.PoolOf(ip))
		}
	}
	if got := join(h.a.Holding(s.req.Key)); got != s.want {
		t.Errorf("step %d: Holding(%s) = %q after Allocate returned %q", i, s.req.Key, got, s.want)
	}
}

// restartFrom builds a fresh Allocator and restores every key of old, as the
// controller does from Service status at start-up, and returns the keys
// whose Restore was refused.
func restartFrom(old *Allocator, ps *config.Pools, reqs map[string]Request) (*Allocator, map[string]error) {
	a := New()
	a.SetPools(ps)
	refused := map[string]error{}
	for _, k := range slices.Sorted(maps.Keys(old.keys)) {
		if err := a.Restore(reqs[k], old.Holding(k)); err != nil {
			refused[k] = err
		}
	}
	return a, refused
}

func TestScenarios(t *testing.T) {
	maxI := strconv.FormatInt(math.MaxInt64, 10)
	for _, sc := range []scenario{{
		name:  "lowest free address, idempotence, release and exhaustion",
		pools: []v1alpha1.IPPool{pool("a", "10.0.0.0/30")},
		steps: []step{
			alloc(svc("ns/s1")).gives("10.0.0.0").then("ns/s1=10.0.0.0", "a v4 1/4"),
			alloc(svc("ns/s2")).gives("10.0.0.1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1", "a v4 2/4"),
			alloc(svc("ns/s1")).keeps("10.0.0.0").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1", "a v4 2/4"),
			release("ns/s1").keeps("10.0.0.0").then("ns/s2=10.0.0.1", "a v4 1/4"),
			alloc(svc("ns/s3")).gives("10.0.0.0").then("ns/s2=10.0.0.1 ns/s3=10.0.0.0", "a v4 2/4"),
			release("ns/unknown").then("ns/s2=10.0.0.1 ns/s3=10.0.0.0", "a v4 2/4"),
			alloc(svc("ns/s4")).gives("10.0.0.2").then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.2", "a v4 3/4"),
			alloc(svc("ns/s5")).gives("10.0.0.3").then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.2 ns/s5=10.0.0.3", "a v4 4/4"),
			alloc(svc("ns/s6")).fails(ReasonPoolExhausted, `no free IPv4 address for Service ns/s6 in pool "a"`).then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.2 ns/s5=10.0.0.3", "a v4 4/4"),
			release("ns/s2").keeps("10.0.0.1").then("ns/s3=10.0.0.0 ns/s4=10.0.0.2 ns/s5=10.0.0.3", "a v4 3/4"),
			alloc(svc("ns/s6")).gives("10.0.0.1").then("ns/s3=10.0.0.0 ns/s4=10.0.0.2 ns/s5=10.0.0.3 ns/s6=10.0.0.1", "a v4 4/4"),
			restart().then("ns/s3=10.0.0.0 ns/s4=10.0.0.2 ns/s5=10.0.0.3 ns/s6=10.0.0.1", "a v4 4/4"),
			alloc(svc("ns/s6")).keeps("10.0.0.1").then("ns/s3=10.0.0.0 ns/s4=10.0.0.2 ns/s5=10.0.0.3 ns/s6=10.0.0.1", "a v4 4/4"),
		},
	}, {
		name: "priority order, then name; pools without priority last",
		pools: []v1alpha1.IPPool{
			pool("zed", "10.3.0.0/31"),
			pool("b", "10.2.0.0/31", prio(2)),
			pool("a", "10.1.0.0/31", prio(2)),
			pool("first", "10.0.0.0/32", prio(1)),
		},
		steps: []step{
			alloc(svc("ns/s1")).gives("10.0.0.0").then("ns/s1=10.0.0.0", "a v4 0/2; b v4 0/2; first v4 1/1; zed v4 0/2"),
			alloc(svc("ns/s2")).gives("10.1.0.0").then("ns/s1=10.0.0.0 ns/s2=10.1.0.0", "a v4 1/2; b v4 0/2; first v4 1/1; zed v4 0/2"),
			alloc(svc("ns/s3")).gives("10.1.0.1").then("ns/s1=10.0.0.0 ns/s2=10.1.0.0 ns/s3=10.1.0.1", "a v4 2/2; b v4 0/2; first v4 1/1; zed v4 0/2"),
			alloc(svc("ns/s4")).gives("10.2.0.0").then("ns/s1=10.0.0.0 ns/s2=10.1.0.0 ns/s3=10.1.0.1 ns/s4=10.2.0.0", "a v4 2/2; b v4 1/2; first v4 1/1; zed v4 0/2"),
			alloc(svc("ns/s5")).gives("10.2.0.1").then("ns/s1=10.0.0.0 ns/s2=10.1.0.0 ns/s3=10.1.0.1 ns/s4=10.2.0.0 ns/s5=10.2.0.1", "a v4 2/2; b v4 2/2; first v4 1/1; zed v4 0/2"),
			alloc(svc("ns/s6")).gives("10.3.0.0").then("ns/s1=10.0.0.0 ns/s2=10.1.0.0 ns/s3=10.1.0.1 ns/s4=10.2.0.0 ns/s5=10.2.0.1 ns/s6=10.3.0.0", "a v4 2/2; b v4 2/2; first v4 1/1; zed v4 1/2"),
			release("ns/s2").keeps("10.1.0.0").then("ns/s1=10.0.0.0 ns/s3=10.1.0.1 ns/s4=10.2.0.0 ns/s5=10.2.0.1 ns/s6=10.3.0.0", "a v4 1/2; b v4 2/2; first v4 1/1; zed v4 1/2"),
			alloc(svc("ns/s7")).gives("10.1.0.0").then("ns/s1=10.0.0.0 ns/s3=10.1.0.1 ns/s4=10.2.0.0 ns/s5=10.2.0.1 ns/s6=10.3.0.0 ns/s7=10.1.0.0", "a v4 2/2; b v4 2/2; first v4 1/1; zed v4 1/2"),
		},
	}, {
		name: "autoAssign false and the named pool",
		pools: []v1alpha1.IPPool{
			pool("auto", "10.0.0.0/31"),
			pool("manual", "10.9.0.0/31", manual),
			pool("bad", "10.0.0.1/24"),
			pool("other", "10.5.0.0/31", onlyNS("other")),
		},
		steps: []step{
			alloc(svc("ns/s1")).gives("10.0.0.0").then("ns/s1=10.0.0.0", "auto v4 1/2; manual v4 0/2; other v4 0/2"),
			alloc(svc("ns/s2")).gives("10.0.0.1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1", "auto v4 2/2; manual v4 0/2; other v4 0/2"),
			alloc(svc("ns/s3")).fails(ReasonPoolExhausted, `in pool "auto"`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1", "auto v4 2/2; manual v4 0/2; other v4 0/2"),
			alloc(svc("ns/s3", inPool("manual"))).gives("10.9.0.0").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0", "auto v4 2/2; manual v4 1/2; other v4 0/2"),
			alloc(svc("ns/s4", want("10.9.0.1"))).gives("10.9.0.1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 2/2; other v4 0/2"),
			alloc(svc("ns/s5", inPool("missing"))).fails(ReasonUnknownPool, `pool "missing" named by beaconlb.io/pool does not exist`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 2/2; other v4 0/2"),
			alloc(svc("ns/s5", inPool("bad"))).fails(ReasonUnknownPool, `pool "bad" named by beaconlb.io/pool is invalid: CIDR "10.0.0.1/24" has host bits set`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 2/2; other v4 0/2"),
			alloc(svc("ns/s5", inPool("other"))).fails(ReasonNoPool, `pool "other" named by beaconlb.io/pool does not serve Service ns/s5`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 2/2; other v4 0/2"),
			alloc(svc("ns/s5", inPool("auto"), fams(v6))).fails(ReasonNoPool, `pool "auto" named by beaconlb.io/pool has no IPv6 addresses`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 2/2; other v4 0/2"),
			alloc(svc("ns/s5", inPool("manual"), want("10.0.0.0"))).fails(ReasonIPNotInPool, `10.0.0.0 belongs to pool "auto", not to pool "manual"`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 2/2; other v4 0/2"),
			alloc(svc("ns/s5", inPool("manual"))).fails(ReasonPoolExhausted, `in pool "manual"`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.9.0.0 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 2/2; other v4 0/2"),
			// Naming a pool moves a Service that held an address elsewhere.
			release("ns/s3").keeps("10.9.0.0").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s4=10.9.0.1", "auto v4 2/2; manual v4 1/2; other v4 0/2"),
			alloc(svc("ns/s1", inPool("manual"))).gives("10.9.0.0").then("ns/s1=10.9.0.0 ns/s2=10.0.0.1 ns/s4=10.9.0.1", "auto v4 1/2; manual v4 2/2; other v4 0/2"),
			// autoAssign governs new choices only: a held address stays.
			setPools(pool("auto", "10.0.0.0/31", manual), pool("manual", "10.9.0.0/31", manual)).then("ns/s1=10.9.0.0 ns/s2=10.0.0.1 ns/s4=10.9.0.1", "auto v4 1/2; manual v4 2/2"),
			alloc(svc("ns/s2")).keeps("10.0.0.1").then("ns/s1=10.9.0.0 ns/s2=10.0.0.1 ns/s4=10.9.0.1", "auto v4 1/2; manual v4 2/2"),
			alloc(svc("ns/s6")).fails(ReasonNoPool, `no IP pool with autoAssign serves IPv4 addresses to Service ns/s6 in namespace "ns"`).then("ns/s1=10.9.0.0 ns/s2=10.0.0.1 ns/s4=10.9.0.1", "auto v4 1/2; manual v4 2/2"),
		},
	}, {
		name: "namespaces, namespaceSelector and serviceSelector",
		pools: []v1alpha1.IPPool{
			pool("team", "10.1.0.0/31", prio(1), onlyNS("team")),
			pool("prod", "10.2.0.0/31", prio(2), nsSel("env=prod")),
			pool("web", "10.3.0.0/31", prio(3), svcSel("app=web")),
			pool("rest", "10.9.0.0/30"),
		},
		steps: []step{
			alloc(svc("team/a")).gives("10.1.0.0").then("team/a=10.1.0.0", "prod v4 0/2; rest v4 0/4; team v4 1/2; web v4 0/2"),
			alloc(svc("dev/a", nsLabels("env=dev"))).gives("10.9.0.0").then("dev/a=10.9.0.0 team/a=10.1.0.0", "prod v4 0/2; rest v4 1/4; team v4 1/2; web v4 0/2"),
			alloc(svc("shop/a", nsLabels("env=prod"))).gives("10.2.0.0").then("dev/a=10.9.0.0 shop/a=10.2.0.0 team/a=10.1.0.0", "prod v4 1/2; rest v4 1/4; team v4 1/2; web v4 0/2"),
			alloc(svc("shop/web", nsLabels("env=prod"), svcLabels("app=web"))).gives("10.2.0.1").then("dev/a=10.9.0.0 shop/a=10.2.0.0 shop/web=10.2.0.1 team/a=10.1.0.0", "prod v4 2/2; rest v4 1/4; team v4 1/2; web v4 0/2"),
			alloc(svc("dev/web", svcLabels("app=web"))).gives("10.3.0.0").then("dev/a=10.9.0.0 dev/web=10.3.0.0 shop/a=10.2.0.0 shop/web=10.2.0.1 team/a=10.1.0.0", "prod v4 2/2; rest v4 1/4; team v4 1/2; web v4 1/2"),
			alloc(svc("dev/x", want("10.1.0.1"))).fails(ReasonIPNotAllowed, `10.1.0.1 belongs to pool "team", which does not serve Service dev/x`).then("dev/a=10.9.0.0 dev/web=10.3.0.0 shop/a=10.2.0.0 shop/web=10.2.0.1 team/a=10.1.0.0", "prod v4 2/2; rest v4 1/4; team v4 1/2; web v4 1/2"),
			alloc(svc("dev/x", inPool("team"))).fails(ReasonNoPool, `pool "team" named by beaconlb.io/pool does not serve Service dev/x`).then("dev/a=10.9.0.0 dev/web=10.3.0.0 shop/a=10.2.0.0 shop/web=10.2.0.1 team/a=10.1.0.0", "prod v4 2/2; rest v4 1/4; team v4 1/2; web v4 1/2"),
			alloc(svc("dev/x", want("10.3.0.1"))).fails(ReasonIPNotAllowed, `pool "web"`).then("dev/a=10.9.0.0 dev/web=10.3.0.0 shop/a=10.2.0.0 shop/web=10.2.0.1 team/a=10.1.0.0", "prod v4 2/2; rest v4 1/4; team v4 1/2; web v4 1/2"),
			alloc(svc("team/b", nsLabels("env=prod"))).gives("10.1.0.1").then("dev/a=10.9.0.0 dev/web=10.3.0.0 shop/a=10.2.0.0 shop/web=10.2.0.1 team/a=10.1.0.0 team/b=10.1.0.1", "prod v4 2/2; rest v4 1/4; team v4 2/2; web v4 1/2"),
			alloc(svc("team/c", nsLabels("env=prod"))).gives("10.9.0.1").then("dev/a=10.9.0.0 dev/web=10.3.0.0 shop/a=10.2.0.0 shop/web=10.2.0.1 team/a=10.1.0.0 team/b=10.1.0.1 team/c=10.9.0.1", "prod v4 2/2; rest v4 2/4; team v4 2/2; web v4 1/2"),
			// The namespace loses its label: its address moves to a pool that serves it.
			alloc(svc("shop/a")).gives("10.9.0.2").then("dev/a=10.9.0.0 dev/web=10.3.0.0 shop/a=10.9.0.2 shop/web=10.2.0.1 team/a=10.1.0.0 team/b=10.1.0.1 team/c=10.9.0.1", "prod v4 1/2; rest v4 3/4; team v4 2/2; web v4 1/2"),
		},
	}, {
		name: "requested addresses",
		pools: []v1alpha1.IPPool{
			pool("a", "10.0.0.0/29"),
			pool("b", "10.1.0.0/30", onlyNS("b")),
		},
		steps: []step{
			alloc(svc("ns/s1", want("10.0.0.5"))).gives("10.0.0.5").then("ns/s1=10.0.0.5", "a v4 1/8; b v4 0/4"),
			alloc(svc("ns/s2")).gives("10.0.0.0").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", want("192.0.2.1"))).fails(ReasonIPNotInPool, "192.0.2.1 lies in no IP pool").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", want("10.1.0.1"))).fails(ReasonIPNotAllowed, `pool "b"`).then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", want("10.0.0.5"))).fails(ReasonIPInUse, "10.0.0.5 is in use by Service ns/s1").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", want("10.0.0.6,10.0.0.7"))).fails(ReasonBadRequest, "two IPv4 addresses (10.0.0.6 and 10.0.0.7)").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", want("fd00::1"))).fails(ReasonBadRequest, "fd00::1 is IPv6, but Service ns/s3 uses only IPv4").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", want("::ffff:10.0.0.6"))).fails(ReasonBadRequest, "plain").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", fams())).fails(ReasonBadRequest, "one or two IP families").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", fams(v4, v4))).fails(ReasonBadRequest, "twice").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("", fams(v4))).fails(ReasonBadRequest, "no Service key").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", fams(config.Family(5)))).fails(ReasonBadRequest, "unknown IP family Family(5)").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s3", func(r *Request) { r.IPs = []netip.Addr{{}} })).fails(ReasonBadRequest, "invalid (empty) IP address").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			restore(svc("ns/s3"), "fe80::1%eth0").fails(ReasonBadRequest, "fe80::1%eth0: use plain IPv4 or IPv6 notation").then("ns/s1=10.0.0.5 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			// Changing the requested address moves the Service.
			alloc(svc("ns/s1", want("10.0.0.6"))).gives("10.0.0.6").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			// An invalid new request leaves the old address in place.
			alloc(svc("ns/s1", want("10.0.0.0"))).fails(ReasonIPInUse, "ns/s2").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			alloc(svc("ns/s1", want("10.9.9.9"))).fails(ReasonIPNotInPool, "10.9.9.9").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			// Dropping the request keeps the address (still valid).
			alloc(svc("ns/s1")).keeps("10.0.0.6").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0", "a v4 2/8; b v4 0/4"),
			// Taken but shareable.
			alloc(svc("ns/s4", shared("k", "80/TCP"))).gives("10.0.0.1").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0 ns/s4=10.0.0.1", "a v4 3/8; b v4 0/4"),
			alloc(svc("ns/s5", want("10.0.0.1"), shared("k", "443/TCP"))).gives("10.0.0.1").owns("10.0.0.1=ns/s4,ns/s5").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0 ns/s4=10.0.0.1 ns/s5=10.0.0.1", "a v4 3/8; b v4 0/4"),
			release("ns/s4").owns("10.0.0.1=ns/s5").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0 ns/s5=10.0.0.1", "a v4 3/8; b v4 0/4"),
			restart().owns("10.0.0.1=ns/s5").then("ns/s1=10.0.0.6 ns/s2=10.0.0.0 ns/s5=10.0.0.1", "a v4 3/8; b v4 0/4"),
		},
	}, {
		name:  "sharing",
		pools: []v1alpha1.IPPool{pool("a", "10.0.0.0/30")},
		steps: []step{
			alloc(svc("ns/s1", shared("k", "80/TCP"))).gives("10.0.0.0").then("ns/s1=10.0.0.0", "a v4 1/4"),
			// Same port: cannot share, takes a free address.
			alloc(svc("ns/s2", shared("k", "80/TCP"))).gives("10.0.0.1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1", "a v4 2/4"),
			// Automatic choice prefers the lowest compatible shared address.
			alloc(svc("ns/s3", shared("k", "443/TCP", "80/UDP"))).gives("10.0.0.0").owns("10.0.0.0=ns/s1,ns/s3").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0", "a v4 2/4"),
			alloc(svc("ns/s4", shared("k", "443/TCP"))).gives("10.0.0.1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 2/4"),
			alloc(svc("ns/s5", shared("other", "53/UDP"), want("10.0.0.0"))).fails(ReasonSharingConflict, `shared under key "k" by Service ns/s1, but Service ns/s5 uses key "other"`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 2/4"),
			alloc(svc("ns/s5", shared("k", "80/TCP"), want("10.0.0.0"))).fails(ReasonSharingConflict, "port 80/TCP is used by both Service ns/s1 and Service ns/s5").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 2/4"),
			alloc(svc("ns/s5", want("10.0.0.0"))).fails(ReasonIPInUse, "10.0.0.0 is in use by Service ns/s1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 2/4"),
			alloc(svc("ns/s5", shared("k", "8080/TCP"), local("app=x"), want("10.0.0.0"))).fails(ReasonSharingConflict, "externalTrafficPolicy Local").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 2/4"),
			// Local: the same selector shares, another does not.
			alloc(svc("ns/l1", shared("L", "80/TCP"), local("app=x"))).gives("10.0.0.2").then("ns/l1=10.0.0.2 ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 3/4"),
			alloc(svc("ns/l2", shared("L", "443/TCP"), local("app=y"))).gives("10.0.0.3").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			alloc(svc("ns/l3", shared("L", "8443/TCP"), local("app=x"))).gives("10.0.0.2").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			alloc(svc("ns/l4", shared("L", "9/TCP"), local("app=z"))).fails(ReasonPoolExhausted, `pool "a"`).then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			// ns/s3 changes its ports to clash with ns/s1; no other address
			// fits, so it keeps the clashing one as stale.
			alloc(svc("ns/s3", shared("k", "80/TCP"))).keeps("10.0.0.0").staleWith("10.0.0.0", ReasonPoolExhausted, "keeping 10.0.0.0 although 10.0.0.0 cannot be shared: port 80/TCP is used by both Service ns/s1 and Service ns/s3: no replacement").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			// The stale holder keeps its old ports: 443/TCP still clashes.
			alloc(svc("ns/s6", shared("k", "443/TCP"), want("10.0.0.0"))).fails(ReasonSharingConflict, "port 443/TCP is used by both Service ns/s3 and Service ns/s6").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			release("ns/s1").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			// With ns/s1 gone the address is valid again.
			alloc(svc("ns/s3", shared("k", "80/TCP"))).keeps("10.0.0.0").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			// Ports change without a clash: kept.
			alloc(svc("ns/s4", shared("k", "8443/TCP"))).keeps("10.0.0.1").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			restart().then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.1", "a v4 4/4"),
			release("ns/s3").keeps("10.0.0.0").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s2=10.0.0.1 ns/s4=10.0.0.1", "a v4 3/4"),
			// Leaving the sharing key: the sole holder keeps its address.
			alloc(svc("ns/l2")).keeps("10.0.0.3").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/s2=10.0.0.1 ns/s4=10.0.0.1", "a v4 3/4"),
			alloc(svc("ns/l5", shared("L", "1/TCP"), local("app=y"))).gives("10.0.0.0").then("ns/l1=10.0.0.2 ns/l2=10.0.0.3 ns/l3=10.0.0.2 ns/l5=10.0.0.0 ns/s2=10.0.0.1 ns/s4=10.0.0.1", "a v4 4/4"),
		},
	}, {
		name: "dual-stack",
		pools: []v1alpha1.IPPool{
			pool("v4", "10.0.0.0/30", prio(1)),
			pool("v6", "fd00::/126", prio(2), onlyNS("six")),
			pool("dual", "10.1.0.0/31,fd01::/127", prio(3), onlyNS("dual")),
		},
		steps: []step{
			alloc(svc("six/a", fams(v6))).gives("fd00::").then("six/a=fd00::", "dual v4 0/2 v6 0/2; v4 v4 0/4; v6 v6 1/4"),
			alloc(svc("ns/p", prefer)).gives("10.0.0.0").warn(ReasonNoPool).then("ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 0/2; v4 v4 1/4; v6 v6 1/4"),
			alloc(svc("ns/r", require)).fails(ReasonNoPool, "IPv6").then("ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 0/2; v4 v4 1/4; v6 v6 1/4"),
			alloc(svc("dual/x", fams(v6, v4))).gives("fd01::,10.0.0.1").then("dual/x=fd01::,10.0.0.1 ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 1/2; v4 v4 2/4; v6 v6 1/4"),
			// Order of ipFamilies changes: same addresses, new order.
			alloc(svc("dual/x", fams(v4, v6))).gives("10.0.0.1,fd01::").then("dual/x=10.0.0.1,fd01:: ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 1/2; v4 v4 2/4; v6 v6 1/4"),
			// Dual to single stack releases the other family.
			alloc(svc("dual/x")).gives("10.0.0.1").then("dual/x=10.0.0.1 ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 0/2; v4 v4 2/4; v6 v6 1/4"),
			// Single to dual stack keeps the address it has.
			alloc(svc("dual/x", require)).gives("10.0.0.1,fd01::").then("dual/x=10.0.0.1,fd01:: ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 1/2; v4 v4 2/4; v6 v6 1/4"),
			alloc(svc("ns/f1")).gives("10.0.0.2").then("dual/x=10.0.0.1,fd01:: ns/f1=10.0.0.2 ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 1/2; v4 v4 3/4; v6 v6 1/4"),
			alloc(svc("ns/f2")).gives("10.0.0.3").then("dual/x=10.0.0.1,fd01:: ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 0/2 v6 1/2; v4 v4 4/4; v6 v6 1/4"),
			alloc(svc("dual/y", require)).gives("10.1.0.0,fd01::1").then("dual/x=10.0.0.1,fd01:: dual/y=10.1.0.0,fd01::1 ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 1/2 v6 2/2; v4 v4 4/4; v6 v6 1/4"),
			// RequireDualStack with no IPv6 left: all or nothing.
			alloc(svc("dual/z", require)).fails(ReasonPoolExhausted, `no free IPv6 address for Service dual/z in pool "dual"`).then("dual/x=10.0.0.1,fd01:: dual/y=10.1.0.0,fd01::1 ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 1/2 v6 2/2; v4 v4 4/4; v6 v6 1/4"),
			alloc(svc("dual/z", prefer)).gives("10.1.0.1").warn(ReasonPoolExhausted).then("dual/x=10.0.0.1,fd01:: dual/y=10.1.0.0,fd01::1 dual/z=10.1.0.1 ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 2/2 v6 2/2; v4 v4 4/4; v6 v6 1/4"),
			release("dual/x").keeps("10.0.0.1,fd01::").then("dual/y=10.1.0.0,fd01::1 dual/z=10.1.0.1 ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 2/2 v6 1/2; v4 v4 3/4; v6 v6 1/4"),
			alloc(svc("dual/z", prefer)).gives("10.1.0.1,fd01::").then("dual/y=10.1.0.0,fd01::1 dual/z=10.1.0.1,fd01:: ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 2/2 v6 2/2; v4 v4 3/4; v6 v6 1/4"),
			// Requesting only the IPv4 address of a dual-stack Service.
			alloc(svc("dual/w", require, want("10.0.0.1"))).fails(ReasonPoolExhausted, "IPv6").then("dual/y=10.1.0.0,fd01::1 dual/z=10.1.0.1,fd01:: ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 2/2 v6 2/2; v4 v4 3/4; v6 v6 1/4"),
			alloc(svc("dual/w", prefer, want("10.0.0.1"))).gives("10.0.0.1").warn(ReasonPoolExhausted).then("dual/w=10.0.0.1 dual/y=10.1.0.0,fd01::1 dual/z=10.1.0.1,fd01:: ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 2/2 v6 2/2; v4 v4 4/4; v6 v6 1/4"),
			// A failing requested address fails PreferDualStack too.
			alloc(svc("dual/v", prefer, want("fd01::"))).fails(ReasonIPInUse, "dual/z").then("dual/w=10.0.0.1 dual/y=10.1.0.0,fd01::1 dual/z=10.1.0.1,fd01:: ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 2/2 v6 2/2; v4 v4 4/4; v6 v6 1/4"),
			restart().then("dual/w=10.0.0.1 dual/y=10.1.0.0,fd01::1 dual/z=10.1.0.1,fd01:: ns/f1=10.0.0.2 ns/f2=10.0.0.3 ns/p=10.0.0.0 six/a=fd00::", "dual v4 2/2 v6 2/2; v4 v4 4/4; v6 v6 1/4"),
		},
	}, {
		name:  "avoidBuggyIPs",
		pools: []v1alpha1.IPPool{pool("a", "10.0.0.254-10.0.1.1,10.0.2.255/32", avoidBuggy)},
		steps: []step{
			alloc(svc("ns/s1")).gives("10.0.0.254").then("ns/s1=10.0.0.254", "a v4 1/2"),
			alloc(svc("ns/s2")).gives("10.0.1.1").then("ns/s1=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/2"),
			alloc(svc("ns/s3")).fails(ReasonPoolExhausted, `pool "a"`).then("ns/s1=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/2"),
			alloc(svc("ns/s3", want("10.0.0.255"))).fails(ReasonIPNotInPool, `10.0.0.255 is never handed out: pool "a" sets avoidBuggyIPs`).then("ns/s1=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/2"),
			// Restored from an old status: held, but counted nowhere.
			restore(svc("ns/old"), "10.0.1.0").then("ns/old=10.0.1.0 ns/s1=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/2"),
			alloc(svc("ns/old")).keeps("10.0.1.0").staleWith("10.0.1.0", ReasonPoolExhausted, "avoidBuggyIPs").then("ns/old=10.0.1.0 ns/s1=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/2"),
			release("ns/s1").keeps("10.0.0.254").then("ns/old=10.0.1.0 ns/s2=10.0.1.1", "a v4 1/2"),
			alloc(svc("ns/old")).gives("10.0.0.254").then("ns/old=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/2"),
			// Turning the option off makes the skipped addresses available.
			setPools(pool("a", "10.0.0.254-10.0.1.1,10.0.2.255/32")).then("ns/old=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/5"),
			alloc(svc("ns/s3")).gives("10.0.0.255").then("ns/old=10.0.0.254 ns/s2=10.0.1.1 ns/s3=10.0.0.255", "a v4 3/5"),
			// And on again: the holder of 10.0.0.255 is no longer counted.
			setPools(pool("a", "10.0.0.254-10.0.1.1,10.0.2.255/32", avoidBuggy)).then("ns/old=10.0.0.254 ns/s2=10.0.1.1 ns/s3=10.0.0.255", "a v4 2/2"),
			release("ns/s3").keeps("10.0.0.255").then("ns/old=10.0.0.254 ns/s2=10.0.1.1", "a v4 2/2"),
		},
	}, {
		name:  "pool edited: addresses fall outside, are kept, then move",
		pools: []v1alpha1.IPPool{pool("a", "10.0.0.0/30")},
		steps: []step{
			alloc(svc("ns/s1")).gives("10.0.0.0").then("ns/s1=10.0.0.0", "a v4 1/4"),
			alloc(svc("ns/s2")).gives("10.0.0.1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1", "a v4 2/4"),
			alloc(svc("ns/s3")).gives("10.0.0.2").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.2", "a v4 3/4"),
			alloc(svc("ns/s4")).gives("10.0.0.3").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.2 ns/s4=10.0.0.3", "a v4 4/4"),
			setPools(pool("a", "10.0.0.0/31")).owns("10.0.0.2=ns/s3").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.2 ns/s4=10.0.0.3", "a v4 2/2"),
			alloc(svc("ns/s3")).keeps("10.0.0.2").staleWith("10.0.0.2", ReasonPoolExhausted, "keeping 10.0.0.2 although 10.0.0.2 lies in no IP pool: no replacement: no free IPv4 address").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.2 ns/s4=10.0.0.3", "a v4 2/2"),
			restart().then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.0.0.2 ns/s4=10.0.0.3", "a v4 2/2"),
			release("ns/s1").keeps("10.0.0.0").then("ns/s2=10.0.0.1 ns/s3=10.0.0.2 ns/s4=10.0.0.3", "a v4 1/2"),
			alloc(svc("ns/s3")).gives("10.0.0.0").then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.3", "a v4 2/2"),
			alloc(svc("ns/s4")).keeps("10.0.0.3").staleWith("10.0.0.3", ReasonPoolExhausted, "lies in no IP pool").then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.3", "a v4 2/2"),
			// Growing back: the held address counts again and is valid.
			setPools(pool("a", "10.0.0.0/30")).then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.3", "a v4 3/4"),
			alloc(svc("ns/s4")).keeps("10.0.0.3").then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.3", "a v4 3/4"),
			// The pool stops serving the namespace: move to one that does.
			setPools(pool("a", "10.0.0.0/30", onlyNS("other")), pool("b", "10.1.0.0/31")).then("ns/s2=10.0.0.1 ns/s3=10.0.0.0 ns/s4=10.0.0.3", "a v4 3/4; b v4 0/2"),
			alloc(svc("ns/s2")).gives("10.1.0.0").then("ns/s2=10.1.0.0 ns/s3=10.0.0.0 ns/s4=10.0.0.3", "a v4 2/4; b v4 1/2"),
			alloc(svc("ns/s3")).gives("10.1.0.1").then("ns/s2=10.1.0.0 ns/s3=10.1.0.1 ns/s4=10.0.0.3", "a v4 1/4; b v4 2/2"),
			alloc(svc("ns/s4")).keeps("10.0.0.3").staleWith("10.0.0.3", ReasonPoolExhausted, `which does not serve Service ns/s4`).then("ns/s2=10.1.0.0 ns/s3=10.1.0.1 ns/s4=10.0.0.3", "a v4 1/4; b v4 2/2"),
			// The address moves from pool a's range to pool b's: counted in b.
			setPools(pool("a", "10.0.0.0/31"), pool("b", "10.0.0.2/31,10.1.0.0/31")).then("ns/s2=10.1.0.0 ns/s3=10.1.0.1 ns/s4=10.0.0.3", "a v4 0/2; b v4 3/4"),
			alloc(svc("ns/s4")).keeps("10.0.0.3").then("ns/s2=10.1.0.0 ns/s3=10.1.0.1 ns/s4=10.0.0.3", "a v4 0/2; b v4 3/4"),
		},
	}, {
		name:  "pool deleted and added",
		pools: []v1alpha1.IPPool{pool("a", "10.0.0.0/31"), pool("b", "10.1.0.0/31")},
		steps: []step{
			alloc(svc("ns/s1")).gives("10.0.0.0").then("ns/s1=10.0.0.0", "a v4 1/2; b v4 0/2"),
			alloc(svc("ns/s2", inPool("a"))).gives("10.0.0.1").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1", "a v4 2/2; b v4 0/2"),
			alloc(svc("ns/s3", inPool("b"))).gives("10.1.0.0").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.1.0.0", "a v4 2/2; b v4 1/2"),
			setPools(pool("b", "10.1.0.0/31")).owns("10.0.0.1=ns/s2").then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.1.0.0", "b v4 1/2"),
			alloc(svc("ns/s2", inPool("a"))).fails(ReasonUnknownPool, `pool "a"`).then("ns/s1=10.0.0.0 ns/s2=10.0.0.1 ns/s3=10.1.0.0", "b v4 1/2"),
			alloc(svc("ns/s1")).gives("10.1.0.1").then("ns/s1=10.1.0.1 ns/s2=10.0.0.1 ns/s3=10.1.0.0", "b v4 2/2"),
			alloc(svc("ns/s4")).fails(ReasonPoolExhausted, `pool "b"`).then("ns/s1=10.1.0.1 ns/s2=10.0.0.1 ns/s3=10.1.0.0", "b v4 2/2"),
			restart().owns("10.0.0.1=ns/s2").then("ns/s1=10.1.0.1 ns/s2=10.0.0.1 ns/s3=10.1.0.0", "b v4 2/2"),
			release("ns/s2").keeps("10.0.0.1").then("ns/s1=10.1.0.1 ns/s3=10.1.0.0", "b v4 2/2"),
			setPools(pool("a", "10.0.0.0/31"), pool("b", "10.1.0.0/31")).then("ns/s1=10.1.0.1 ns/s3=10.1.0.0", "a v4 0/2; b v4 2/2"),
			alloc(svc("ns/s4")).gives("10.0.0.0").then("ns/s1=10.1.0.1 ns/s3=10.1.0.0 ns/s4=10.0.0.0", "a v4 1/2; b v4 2/2"),
			setPools().then("ns/s1=10.1.0.1 ns/s3=10.1.0.0 ns/s4=10.0.0.0", ""),
			alloc(svc("ns/s4")).keeps("10.0.0.0").staleWith("10.0.0.0", ReasonNoPool, "no IP pool with autoAssign serves IPv4").then("ns/s1=10.1.0.1 ns/s3=10.1.0.0 ns/s4=10.0.0.0", ""),
			alloc(svc("ns/s5")).fails(ReasonNoPool, "no IP pool").then("ns/s1=10.1.0.1 ns/s3=10.1.0.0 ns/s4=10.0.0.0", ""),
		},
	}, {
		name:  "IPv6 /64",
		pools: []v1alpha1.IPPool{pool("big", "2001:db8:100::/64"), pool("top", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127")},
		steps: []step{
			alloc(svc("ns/s1", fams(v6))).gives("2001:db8:100::").then("ns/s1=2001:db8:100::", "big v6 1/"+maxI+"; top v6 0/2"),
			alloc(svc("ns/s2", fams(v6))).gives("2001:db8:100::1").then("ns/s1=2001:db8:100:: ns/s2=2001:db8:100::1", "big v6 2/"+maxI+"; top v6 0/2"),
			alloc(svc("ns/s2", fams(v6), want("2001:db8:100:0:ffff:ffff:ffff:ffff"))).gives("2001:db8:100:0:ffff:ffff:ffff:ffff").then("ns/s1=2001:db8:100:: ns/s2=2001:db8:100:0:ffff:ffff:ffff:ffff", "big v6 2/"+maxI+"; top v6 0/2"),
			alloc(svc("ns/s3", fams(v6))).gives("2001:db8:100::1").then("ns/s1=2001:db8:100:: ns/s2=2001:db8:100:0:ffff:ffff:ffff:ffff ns/s3=2001:db8:100::1", "big v6 3/"+maxI+"; top v6 0/2"),
			release("ns/s1").keeps("2001:db8:100::").then("ns/s2=2001:db8:100:0:ffff:ffff:ffff:ffff ns/s3=2001:db8:100::1", "big v6 2/"+maxI+"; top v6 0/2"),
			alloc(svc("ns/s4", fams(v6), want("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))).gives("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").then("ns/s2=2001:db8:100:0:ffff:ffff:ffff:ffff ns/s3=2001:db8:100::1 ns/s4=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "big v6 2/"+maxI+"; top v6 1/2"),
			alloc(svc("ns/s5", fams(v6), inPool("top"))).gives("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe").then("ns/s2=2001:db8:100:0:ffff:ffff:ffff:ffff ns/s3=2001:db8:100::1 ns/s4=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ns/s5=ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "big v6 2/"+maxI+"; top v6 2/2"),
			release("ns/s4").keeps("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").then("ns/s2=2001:db8:100:0:ffff:ffff:ffff:ffff ns/s3=2001:db8:100::1 ns/s5=ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "big v6 2/"+maxI+"; top v6 1/2"),
			restart().then("ns/s2=2001:db8:100:0:ffff:ffff:ffff:ffff ns/s3=2001:db8:100::1 ns/s5=ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "big v6 2/"+maxI+"; top v6 1/2"),
		},
	}, {
		name:  "restore",
		pools: []v1alpha1.IPPool{pool("a", "10.0.0.0/30")},
		steps: []step{
			restore(svc("ns/s1"), "10.0.0.1").then("ns/s1=10.0.0.1", "a v4 1/4"),
			restore(svc("ns/s2"), "10.0.0.1").fails(ReasonIPInUse, "10.0.0.1 is in use by Service ns/s1").then("ns/s1=10.0.0.1", "a v4 1/4"),
			restore(svc("ns/s2", shared("k", "80/TCP")), "fd00::5,10.0.0.1").fails(ReasonIPInUse, "ns/s1").then("ns/s1=10.0.0.1", "a v4 1/4"),
			restore(svc("ns/s3"), "192.0.2.1,fd00::1").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1", "a v4 1/4"),
			restore(svc("ns/s4"), "10.0.0.2,10.0.0.3").fails(ReasonBadRequest, "two IPv4 addresses").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1", "a v4 1/4"),
			restore(svc(""), "10.0.0.2").fails(ReasonBadRequest, "no Service key").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1", "a v4 1/4"),
			alloc(svc("ns/s5")).gives("10.0.0.0").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1 ns/s5=10.0.0.0", "a v4 2/4"),
			alloc(svc("ns/s6")).gives("10.0.0.2").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1 ns/s5=10.0.0.0 ns/s6=10.0.0.2", "a v4 3/4"),
			// Restoring a key again replaces its record.
			restore(svc("ns/s1", shared("k", "80/TCP")), "10.0.0.1").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1 ns/s5=10.0.0.0 ns/s6=10.0.0.2", "a v4 3/4"),
			restore(svc("ns/s7", shared("k", "443/TCP")), "10.0.0.1").owns("10.0.0.1=ns/s1,ns/s7").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1 ns/s5=10.0.0.0 ns/s6=10.0.0.2 ns/s7=10.0.0.1", "a v4 3/4"),
			restore(svc("ns/s8", shared("k", "443/TCP")), "10.0.0.1").fails(ReasonSharingConflict, "443/TCP").then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1 ns/s5=10.0.0.0 ns/s6=10.0.0.2 ns/s7=10.0.0.1", "a v4 3/4"),
			restore(svc("ns/s8", shared("j", "1/TCP")), "10.0.0.1").fails(ReasonSharingConflict, `key "k"`).then("ns/s1=10.0.0.1 ns/s3=192.0.2.1,fd00::1 ns/s5=10.0.0.0 ns/s6=10.0.0.2 ns/s7=10.0.0.1", "a v4 3/4"),
			// The orphaned restore is repaired by the next Allocate.
			alloc(svc("ns/s3")).gives("10.0.0.3").then("ns/s1=10.0.0.1 ns/s3=10.0.0.3 ns/s5=10.0.0.0 ns/s6=10.0.0.2 ns/s7=10.0.0.1", "a v4 4/4"),
			restore(svc("ns/s6"), "10.0.0.3").fails(ReasonIPInUse, "ns/s3").then("ns/s1=10.0.0.1 ns/s3=10.0.0.3 ns/s5=10.0.0.0 ns/s6=10.0.0.2 ns/s7=10.0.0.1", "a v4 4/4"),
			restore(svc("ns/s6"), "").then("ns/s1=10.0.0.1 ns/s3=10.0.0.3 ns/s5=10.0.0.0 ns/s7=10.0.0.1", "a v4 3/4"),
			release("ns/s1").then("ns/s3=10.0.0.3 ns/s5=10.0.0.0 ns/s7=10.0.0.1", "a v4 3/4"),
			release("ns/s7").keeps("10.0.0.1").then("ns/s3=10.0.0.3 ns/s5=10.0.0.0", "a v4 2/4"),
			release("ns/nobody").then("ns/s3=10.0.0.3 ns/s5=10.0.0.0", "a v4 2/4"),
		},
	}} {
		t.Run(sc.name, func(t *testing.T) {
			h := &harness{t: t, a: New(), pools: mkPools(sc.pools...), reqs: map[string]Request{}}
			h.a.SetPools(h.pools)
			checkInvariants(t, h.a)
			for i, s := range sc.steps {
				h.run(i, s)
			}
		})
	}
}
