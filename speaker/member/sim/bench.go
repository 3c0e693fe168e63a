package sim

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/beaconlb/beacon/speaker/member"
)

// Protocol is one membership setting under comparison.
type Protocol struct {
	Name      string
	Watchers  int
	Interval  time.Duration
	DeadAfter time.Duration
}

// Baseline is the all-to-all protocol with the speaker's version 2
// defaults.
var Baseline = Protocol{Name: "all-to-all v2 (60/240 ms)", Interval: member.DefaultInterval, DeadAfter: member.DefaultDeadAfter}

// Watch is the version 3 protocol with the speaker's defaults.
var Watch = Protocol{Name: "watchers v3 (k=3, 32/280 ms)", Watchers: member.DefaultWatchers, Interval: member.DefaultWatchInterval, DeadAfter: member.DefaultWatchDeadAfter}

// Network is the bench's network and scheduling: 2% loss, 100–200 µs
// one-way latency, a 100 ms stall per node every 10 s on average.
var Network = Config{Loss: 0.02, Latency: 100 * time.Microsecond, StallEvery: 10 * time.Second, StallFor: 100 * time.Millisecond}

// BenchOptions sizes the bench. Simulated time is the cost: the baseline
// moves n² packets per interval.
type BenchOptions struct {
	// Sizes are the cluster sizes simulated for both protocols.
	Sizes []int
	// BaselineMax is the largest size whose baseline is simulated; above
	// it the baseline's rates are computed ((n−1)/Interval each way).
	// Above 200 nodes the baseline runs for a short window without
	// crashes, and above 1,000 for two Intervals after three.
	BaselineMax int
	// WatchMax is the largest size whose version 3 run is simulated
	// (memory: every node holds every peer); above it the rates come from
	// the watcher ranking alone.
	WatchMax int
	// Soak is how long each simulated version 3 run goes on after its
	// crashes, counting false deaths.
	Soak time.Duration
	// Crashes per size and protocol, for failover times.
	Crashes int
	// Hour is the simulated time of the false-failover runs, and HourNodes
	// their size.
	Hour      time.Duration
	HourNodes int
	// BaselineHour is the simulated time of the baseline's false-failover
	// run, which costs n² packets per interval.
	BaselineHour time.Duration
	Seed         uint64
	// Loss overrides Network's loss when positive: the false deaths of
	// 2% loss are too rare to count, those of more loss tell their odds.
	Loss float64
}

// Bench prints the baseline and the version 3 protocol side by side.
func Bench(w io.Writer, o BenchOptions) {
	printf := func(format string, a ...any) { _, _ = fmt.Fprintf(w, format, a...) }
	net := Network
	if o.Loss > 0 {
		net.Loss = o.Loss
	}
	printf("membership: %g%% loss, latency %v–%v, a %v stall per node every %v on average (mean)\n",
		net.Loss*100, net.Latency, 2*net.Latency, net.StallFor, net.StallEvery)
	printf("%-30s %6s  %-24s %-24s %-24s  %-22s %s\n", "protocol", "nodes", "sent/s per node avg/max", "recv/s avg/max", "both avg/max", "failover p50/p99 (n)", "false deaths")
	for _, n := range o.Sizes {
		for _, p := range []Protocol{Baseline, Watch} {
			simulate := (p.Watchers == 0 && n <= o.BaselineMax) || (p.Watchers > 0 && n <= o.WatchMax)
			if !simulate {
				r := computedRates(p, n)
				printf("%-30s %6d  %-24s %-24s %-24s  %-22s %s\n", p.Name, n,
					pair(r.SentAvg, r.SentMax), pair(r.RecvAvg, r.RecvMax), pair(r.BothAvg, r.BothMax), "-", "- (computed, not simulated)")
				continue
			}
			s := New(with(net, p, n, o.Seed))
			s.Start()
			warm, count := 2*time.Second, 5*time.Second
			switch {
			case p.Watchers == 0 && n > 1000:
				// n² packets per Interval: every node has ticked three
				// times, and the window holds two ticks of each (three
				// of a node whose tick a stall delayed into it).
				warm, count = 3*p.Interval, 2*p.Interval
			case p.Watchers == 0 && n > 200:
				warm, count = 500*time.Millisecond, 500*time.Millisecond
			}
			s.RunFor(warm)
			s.ResetCounts()
			s.RunFor(count)
			r := s.Rates()
			busiest := s.Busiest()
			crashes := o.Crashes
			if p.Watchers == 0 && n > 200 {
				crashes = 0 // n² packets per interval: too slow to simulate for long
			}
			for k := range crashes {
				s.Crash((k*7919 + 1) % n)
				s.RunFor(max(2*p.DeadAfter, 500*time.Millisecond))
			}
			if p.Watchers > 0 {
				s.RunFor(o.Soak)
			}
			fo := s.Failovers()
			failover := percentiles(fo, s.PendingFailovers())
			if crashes == 0 {
				failover = "- (not run)"
			}
			printf("%-30s %6d  %-24s %-24s %-24s  %-22s %d in %v (%d stalls)\n", p.Name, n,
				pair(r.SentAvg, r.SentMax), pair(r.RecvAvg, r.RecvMax), pair(r.BothAvg, r.BothMax),
				failover, s.FalseDeaths, s.Now().Round(time.Second), s.Stalls)
			if p.Watchers > 0 {
				printf("  busiest sender in the counted %v: %v\n", count, busiest)
				for _, f := range s.FalseLog {
					printf("  false death %v\n", f)
				}
				printf("  %s\n", allWatchersDie(s, o.Seed))
			}
		}
	}
	if o.Hour <= 0 && o.BaselineHour <= 0 {
		return
	}
	printf("false failovers over simulated time, %d nodes:\n", o.HourNodes)
	for _, c := range []struct {
		p Protocol
		d time.Duration
	}{{Baseline, o.BaselineHour}, {Watch, o.Hour}} {
		if c.d <= 0 {
			continue
		}
		s := New(with(net, c.p, o.HourNodes, o.Seed+1))
		s.Start()
		s.RunFor(2 * time.Second)
		s.FalseDeaths, s.FalseSilences, s.Stalls = 0, 0, 0
		s.RunFor(c.d)
		perHour := float64(s.FalseDeaths) * float64(time.Hour) / float64(c.d)
		printf("%-30s %6d nodes  %v simulated: %d false deaths (%d found by silence, the rest told), %d stalls (%.0f false deaths per hour)\n",
			c.p.Name, o.HourNodes, c.d, s.FalseDeaths, s.FalseSilences, s.Stalls, perHour)
	}
}

// allWatchersDie crashes a running node together with all its watchers,
// checks that nobody sees it dead for 2 s, then marks its Node not ready
// and reports how long its successor took to take over from then.
func allWatchersDie(s *Sim, seed uint64) string {
	x := int(seed*7919+5) % len(s.names)
	for s.Crashed(x) {
		x = (x + 1) % len(s.names)
	}
	watchers := s.Engine(x).Watchers()
	for _, w := range watchers {
		s.Crash(s.index[w])
	}
	done := len(s.Failovers())
	s.Crash(x)
	s.RunFor(2 * time.Second)
	if s.PendingFailovers() != 1 {
		return fmt.Sprintf("node and its %d watchers crashed: %d failovers pending after 2 s, want 1", len(watchers), s.PendingFailovers())
	}
	s.NotReady(x)
	s.RunFor(2 * time.Second)
	fo := s.Failovers()
	if s.PendingFailovers() != 0 || len(fo) == done {
		return fmt.Sprintf("node and its %d watchers crashed: not taken over 2 s after its Node went not ready", len(watchers))
	}
	// The last failover is x's: the watchers' were done before. It is
	// timed from the crash, 2 s before the Node went not ready.
	took := fo[len(fo)-1] - 2*time.Second
	return fmt.Sprintf("node and its %d watchers crashed: nobody saw it dead in 2 s; taken over %v after its Node went not ready",
		len(watchers), took.Round(time.Millisecond))
}

func with(net Config, p Protocol, n int, seed uint64) Config {
	c := net
	c.Nodes, c.Watchers, c.Interval, c.DeadAfter, c.Seed = n, p.Watchers, p.Interval, p.DeadAfter, seed
	return c
}

// computedRates are the steady-state rates without loss: all-to-all sends
// and receives n−1 beats per interval; version 3 sends k and receives one
// per node that ranks this one among its k watchers (member.RankWatchers,
// the code the engine uses).
func computedRates(p Protocol, n int) Rates {
	perSec := float64(time.Second) / float64(p.Interval)
	if p.Watchers == 0 {
		x := float64(n-1) * perSec
		return Rates{x, x, x, x, 2 * x, 2 * x}
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("node-%05d", i)
	}
	index := make(map[string]int, n)
	for i, name := range names {
		index[name] = i
	}
	watchedBy := make([]int, n)
	for _, name := range names {
		for _, w := range member.RankWatchers(name, names, p.Watchers) {
			watchedBy[index[w]]++
		}
	}
	var r Rates
	r.SentAvg, r.SentMax = float64(p.Watchers)*perSec, float64(p.Watchers)*perSec
	for _, c := range watchedBy {
		recv := float64(c) * perSec
		r.RecvAvg += recv / float64(n)
		r.RecvMax = max(r.RecvMax, recv)
		r.BothMax = max(r.BothMax, r.SentMax+recv)
	}
	r.BothAvg = r.SentAvg + r.RecvAvg
	return r
}

func pair(avg, maxv float64) string { return fmt.Sprintf("%.0f / %.0f", avg, maxv) }

// percentiles formats p50 and p99 (nearest rank) and the count, and how
// many crashes never failed over.
func percentiles(d []time.Duration, pending int) string {
	if len(d) == 0 {
		return fmt.Sprintf("- (0, %d pending)", pending)
	}
	slices.Sort(d)
	at := func(q int) time.Duration { return d[(len(d)*q+99)/100-1] }
	s := fmt.Sprintf("%v / %v (%d)", at(50).Round(time.Millisecond), at(99).Round(time.Millisecond), len(d))
	if pending > 0 {
		s += fmt.Sprintf(" %d pending", pending)
	}
	return s
}
