package allocator

import (
	"net/netip"
	"testing"
)

// Addresses other hosts use are never chosen automatically, a Service that
// holds one without having asked for it moves, one that asked keeps it,
// and an address is free again once the conflict is over.
func TestConflicts(t *testing.T) {
	a := newWith(t, pool("a", "10.0.0.0/30"))
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	mustAlloc := func(req Request, want string) Result {
		t.Helper()
		res, err := a.Allocate(req)
		if err != nil {
			t.Fatalf("%s: %v", req.Key, err)
		}
		if got := join(res.IPs); got != want {
			t.Fatalf("%s got %s, want %s", req.Key, got, want)
		}
		return res
	}
	mustAlloc(svc("ns/x"), "10.0.0.0")
	a.SetConflicts([]netip.Addr{ip("10.0.0.0"), ip("10.0.0.1")})
	// A new Service skips both.
	mustAlloc(svc("ns/new"), "10.0.0.2")
	// x moves (make before break), and 10.0.0.0 does not become free.
	res := mustAlloc(svc("ns/x"), "10.0.0.3")
	if !res.Changed || len(res.Conflicting) != 0 {
		t.Errorf("x: changed %v, conflicting %v", res.Changed, res.Conflicting)
	}
	if got := dumpStats(a.Stats()); got != "a v4 2/4" {
		t.Errorf("stats %s", got)
	}
	if st := a.Stats()["a"].IPv4; st.Conflicting != 2 {
		t.Errorf("conflicting %d, want 2", st.Conflicting)
	}
	// The pool is full for automatic choice; a request for a conflicting
	// address is granted.
	if _, err := a.Allocate(svc("ns/full")); ReasonOf(err) != ReasonPoolExhausted {
		t.Errorf("full pool: %v", err)
	}
	if res := mustAlloc(svc("ns/asks", want("10.0.0.1")), "10.0.0.1"); join(res.Conflicting) != "10.0.0.1" {
		t.Errorf("requested conflicting address: Conflicting %v", res.Conflicting)
	}
	// A pool edit keeps conflicting addresses out of the free set.
	a.SetPools(mkPools(pool("a", "10.0.0.0/29")))
	mustAlloc(svc("ns/after-edit"), "10.0.0.4")
	// Conflicts over: 10.0.0.0 is free again, 10.0.0.1 stays held.
	a.SetConflicts(nil)
	mustAlloc(svc("ns/later"), "10.0.0.0")
	a.Release("ns/asks")
	mustAlloc(svc("ns/last"), "10.0.0.1")
}

// A Service holding a conflicting address with nowhere to go keeps it,
// with a warning.
func TestConflictNoReplacement(t *testing.T) {
	a := newWith(t, pool("a", "10.0.0.0/32"))
	if _, err := a.Allocate(svc("ns/x")); err != nil {
		t.Fatal(err)
	}
	a.SetConflicts([]netip.Addr{netip.MustParseAddr("10.0.0.0")})
	res, err := a.Allocate(svc("ns/x"))
	if err != nil || join(res.IPs) != "10.0.0.0" || len(res.Warnings) != 1 || len(res.Stale) != 1 || join(res.Conflicting) != "10.0.0.0" {
		t.Fatalf("got %+v, %v", res, err)
	}
	if a.Stats()["a"].IPv4.Conflicting != 0 {
		t.Error("a held address counted as conflicting")
	}
	a.Release("ns/x")
	if _, err := a.Allocate(svc("ns/y")); ReasonOf(err) != ReasonPoolExhausted {
		t.Fatalf("released conflicting address handed out: %v", err)
	}
}
