package sim

import (
	"testing"
	"time"
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
