package sim

import (
	"slices"
	"testing"
	"time"

	"github.com/beaconlb/beacon/speaker/member"
)

// testSeed makes the unit runs repeatable; they passed with seeds 1 to 12.
const testSeed = 7

// lossy is the bench's network at a size a unit test affords.
func lossy(nodes, watchers, legacy int) Config {
	c := Network
	c.Nodes, c.Watchers, c.Legacy, c.Seed = nodes, watchers, legacy, testSeed
	c.Interval, c.DeadAfter = Watch.Interval, Watch.DeadAfter
	if watchers == 0 {
		c.Interval, c.DeadAfter = Baseline.Interval, Baseline.DeadAfter
	}
	return c
}

// Version 3 fails over from every crash within DeadAfter and a stall,
// and sees no running node dead under loss and stalls; the all-to-all
// protocol under the same network does (which shows the stalls bite).
func TestFailoverAndFalseDeaths(t *testing.T) {
	for _, tc := range []struct {
		name      string
		watchers  int
		wantFalse bool
	}{{"all-to-all", 0, true}, {"watchers", 3, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := lossy(40, tc.watchers, 0)
			cfg.StallEvery = 2 * time.Second // many stalls in a short run
			s := New(cfg)
			s.Start()
			s.RunFor(2 * time.Second)
			if ok, why := s.AllSeeAll(); !ok {
				t.Fatalf("after start: %s", why)
			}
			s.RunFor(60 * time.Second)
			for k := range 5 {
				s.Crash(k * 7)
				s.RunFor(time.Second)
			}
			fo := s.Failovers()
			if len(fo) != 5 || s.PendingFailovers() != 0 {
				t.Fatalf("failovers %v, %d pending; want 5", fo, s.PendingFailovers())
			}
			// DeadAfter after the last beat, plus a stall of the watcher
			// or the successor, plus a lost notice's repeat.
			limit := cfg.DeadAfter + cfg.StallFor + 2*cfg.Interval
			for _, d := range fo {
				if d > limit {
					t.Errorf("failover took %v, want at most %v", d, limit)
				}
			}
			if got := s.FalseDeaths > 0; got != tc.wantFalse {
				t.Errorf("%d false deaths in %d stalls, want some: %v", s.FalseDeaths, s.Stalls, tc.wantFalse)
			}
			if tc.wantFalse {
				return // a false death may still be healing
			}
			if ok, why := s.AllSeeAll(); !ok {
				t.Errorf("after the crashes: %s", why)
			}
			t.Logf("failovers %v, %d false deaths, %d stalls", fo, s.FalseDeaths, s.Stalls)
		})
	}
}

// A rolling upgrade from the all-to-all version 2 to version 3, one node
// at a time with a clean stop, and a rollback of one node: nobody sees a
// running node dead, everyone sees everyone, a crash of either version
// fails over, and once all run version 3 the packet rate drops.
func TestRollingUpgrade(t *testing.T) {
	const n = 30
	cfg := lossy(n, 3, n)
	s := New(cfg)
	s.Start()
	s.RunFor(2 * time.Second)
	s.ResetCounts()
	s.RunFor(2 * time.Second)
	before := s.Rates()
	for i := range n {
		s.Stop(i)
		s.RunFor(500 * time.Millisecond)
		s.Restart(i, false)
		s.RunFor(time.Second)
		if ok, why := s.AllSeeAll(); !ok {
			t.Fatalf("after upgrading %d nodes: %s", i+1, why)
		}
		if i == n/2 {
			// Mixed: a crash of each version fails over.
			s.Crash(0)     // version 3
			s.Crash(n - 1) // version 2
			s.RunFor(time.Second)
			if len(s.Failovers()) != 2 || s.PendingFailovers() != 0 {
				t.Fatalf("mixed versions: failovers %v, %d pending", s.Failovers(), s.PendingFailovers())
			}
			s.Restart(0, false)
			s.Restart(n-1, true)
			s.RunFor(time.Second)
		}
	}
	if ok, why := s.AllSeeAll(); !ok {
		t.Fatalf("after the upgrade: %s", why)
	}
	s.ResetCounts()
	s.RunFor(2 * time.Second)
	after := s.Rates()
	if after.SentAvg*3 > before.SentAvg {
		t.Errorf("sent per node %.0f/s before, %.0f/s after: want a third or less", before.SentAvg, after.SentAvg)
	}
	// Rollback of one node to version 2.
	s.Stop(5)
	s.RunFor(500 * time.Millisecond)
	s.Restart(5, true)
	s.RunFor(2 * time.Second)
	if ok, why := s.AllSeeAll(); !ok {
		t.Fatalf("after a rollback: %s", why)
	}
	if s.FalseDeaths != 0 {
		t.Errorf("%d false deaths", s.FalseDeaths)
	}
	t.Logf("sent per node %.0f/s all-to-all, %.0f/s after; failovers %v; %d stalls", before.SentAvg, after.SentAvg, s.Failovers(), s.Stalls)
}

// A node that crashes with all its watchers is seen by nobody until its
// Node is not ready; then the nodes among its watcher candidates probe
// it, declare it dead and tell everyone, and its successor takes over
// within DeadAfter, a lost probe's repeat, a stall and a notice.
func TestWatchersDieWithTheNode(t *testing.T) {
	const n = 40
	cfg := lossy(n, 3, 0)
	s := New(cfg)
	s.Start()
	s.RunFor(2 * time.Second)
	const x = 11
	watchers := s.Engine(x).Watchers()
	if len(watchers) != cfg.Watchers {
		t.Fatalf("node %d has watchers %v, want %d", x, watchers, cfg.Watchers)
	}
	for _, w := range watchers {
		s.Crash(index(t, s, w))
	}
	s.Crash(x)
	s.RunFor(5 * time.Second)
	// Every watcher's death is seen (its own watchers live), x's not.
	if fo := s.Failovers(); len(fo) != cfg.Watchers || s.PendingFailovers() != 1 {
		t.Fatalf("before not ready: failovers %v, %d pending; want %d and x's pending", fo, s.PendingFailovers(), cfg.Watchers)
	}
	for i := range n {
		if e := s.Engine(i); !s.Crashed(i) && !e.Table().Alive(s.Names()[x]) {
			t.Fatalf("%s sees %s dead before its Node is not ready", s.Names()[i], s.Names()[x])
		}
	}
	notReady := s.Now()
	s.NotReady(x)
	s.RunFor(2 * time.Second)
	fo := s.Failovers()
	if len(fo) != cfg.Watchers+1 || s.PendingFailovers() != 0 {
		t.Fatalf("after not ready: failovers %v, %d pending", fo, s.PendingFailovers())
	}
	crashed := notReady - 5*time.Second
	took := slices.Max(fo) - (notReady - crashed)
	limit := cfg.DeadAfter + 2*cfg.Interval + cfg.StallFor
	if took > limit {
		t.Errorf("took over %v after not ready, want at most %v", took, limit)
	}
	if ok, why := s.AllSeeAll(); !ok {
		t.Errorf("after: %s", why)
	}
	if s.FalseDeaths != 0 {
		t.Errorf("%d false deaths: %v", s.FalseDeaths, s.FalseLog)
	}
	t.Logf("taken over %v after the Node went not ready; %d stalls", took, s.Stalls)
}

// A node whose Node was already not ready (its speaker answered then)
// and that crashes later with all its watchers is found by the next
// probe, within ProbeEvery.
func TestWatchersDieWhileNotReady(t *testing.T) {
	cfg := lossy(40, 3, 0)
	s := New(cfg)
	s.Start()
	s.RunFor(2 * time.Second)
	const x = 11
	s.NotReady(x)
	s.RunFor(3 * time.Second)
	if s.FalseDeaths != 0 {
		t.Fatalf("%d false deaths while not ready: %v", s.FalseDeaths, s.FalseLog)
	}
	for _, w := range s.Engine(x).Watchers() {
		s.Crash(index(t, s, w))
	}
	s.Crash(x)
	s.RunFor(member.ProbeEvery + time.Second)
	if s.PendingFailovers() != 0 {
		t.Fatalf("%d failovers pending %v after the crash", s.PendingFailovers(), member.ProbeEvery+time.Second)
	}
	fo := s.Failovers()
	limit := member.ProbeEvery + cfg.DeadAfter + 2*cfg.Interval + cfg.StallFor
	if took := fo[len(fo)-1]; took > limit {
		t.Errorf("taken over %v after the crash, want at most %v", took, limit)
	}
	t.Logf("taken over %v after the crash", fo[len(fo)-1])
}

// A node whose Node is not ready while its speaker runs (a stopped
// kubelet) answers the probes and stays alive everywhere.
func TestNotReadyButRunning(t *testing.T) {
	s := New(lossy(40, 3, 0))
	s.Start()
	s.RunFor(2 * time.Second)
	s.NotReady(11)
	s.RunFor(2 * time.Second)
	if ok, why := s.AllSeeAll(); !ok || s.FalseDeaths != 0 {
		t.Fatalf("%d false deaths: %s %v", s.FalseDeaths, why, s.FalseLog)
	}
}

func index(t *testing.T, s *Sim, name string) int {
	t.Helper()
	i := slices.Index(s.Names(), name)
	if i < 0 {
		t.Fatalf("no node %s", name)
	}
	return i
}

// At thousands of nodes a starting node's greetings take longer than
// DeadAfter (HelloBurst per tick), and a greeting to a node whose speaker
// has not started yet is lost. A peer heard only in older versions (its
// version 3 greeting lost, its older copies not) is then greeted every
// interval for DeadAfter from when it was heard, so that its answer
// arrives before its silence counts: a version 3 peer stops sending once
// it heard this node's greeting. The same start with a small HelloBurst
// and 10% loss, at a size a unit test affords, sees no running node
// dead; without that rule it saw 6 to 14 (seeds 1, 2, 3, 7), all of the
// kind the 5,000-node bench met.
func TestLargeStartNoFalseDeaths(t *testing.T) {
	cfg := lossy(600, 3, 0)
	cfg.HelloBurst = 8 // 75 ticks of first greetings, 2.6 s
	cfg.Loss = 0.1
	cfg.StallEvery = 0 // stalls with this loss kill for their own reasons
	s := New(cfg)
	s.Start()
	s.RunFor(4 * time.Second)
	// Not every pair has heard each other yet at this loss (peers never
	// heard are greeted every HelloBackoff); none saw a running peer die.
	if s.FalseDeaths != 0 {
		t.Fatalf("%d false deaths; first: %v", s.FalseDeaths, s.FalseLog[0])
	}
}
