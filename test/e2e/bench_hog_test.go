package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// hogCounts are the faults seen during one phase of TestBenchHog.
type hogCounts struct {
	moves          map[string]float64 // per speaker: beacon_l2_election_changes_total
	bfdDowns       int                // router: BFD session-down events over every peer
	bgpDrops       int                // router: BGP connections dropped over every neighbour
	l2Sent, l2Fail int
	bgpSent        int
	bgpFail        int
}

// TestBenchHog is the busy-node part of `make bench-scale`: steady L2 and
// BGP traffic (BFD 300 ms × 3) for a phase without load, then the same
// phase with a CPU spinner per core in every node, counting announcer
// moves, BFD downs, BGP drops and failed requests; then, still under load,
// kills of the L2 announcer with the outage each caused.
func TestBenchHog(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "hog" {
		t.Skip("a benchmark: run `make bench-scale` (BEACON_BENCH=hog)")
	}
	phase := time.Minute
	if v := os.Getenv("BEACON_HOG_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("BEACON_HOG_DURATION=%q: not a positive duration", v)
		}
		phase = d
	}
	kills := 10
	if v, err := strconv.Atoi(os.Getenv("BEACON_HOG_KILLS")); err == nil && v >= 0 {
		kills = v
	}
	s, l := bgpSiteWithin(t, lab.Config{Nodes: 3, PodsPerNode: 1}, 300, 2*phase+15*time.Minute)
	all := []string{"node1", "node2", "node3"}
	s.Poll(2*time.Minute, "every BGP session Established", func() (bool, string) {
		ns, err := l.Router().Neighbors(s.Ctx)
		if err != nil {
			return false, err.Error()
		}
		up := 0
		for _, n := range ns {
			if n.State == "Established" {
				up++
			}
		}
		return up == 6, fmt.Sprintf("%d of 6 up", up) // IPv4 and IPv6 per node
	})
	s.LANPool()
	s.Apply(labtest.AllEchoService("hog-l2", corev1.ServiceExternalTrafficPolicyCluster))
	s.Apply(bgpService("hog-bgp", corev1.ServiceExternalTrafficPolicyCluster, map[string]string{lab.LabelApp: "echo"}))
	l2IP, bgpIP := s.Ingress("hog-l2")[0], s.Ingress("hog-bgp")[0]
	s.waitNextHops(bgpIP, time.Minute, all...)

	count := func() hogCounts {
		c := hogCounts{moves: map[string]float64{}}
		for _, n := range all {
			c.moves[n] = s.metric(n, "beacon_l2_election_changes_total")
		}
		c.bfdDowns, c.bgpDrops = routerFaults(t, s)
		return c
	}
	run := func(name string, hog bool) hogCounts {
		if hog {
			startHogs(t, l, all)
			defer stopHogs(t, l, all)
		}
		l2 := labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(l2IP, "80"))
		ext := labtest.StartProber(s.Ctx, l, lab.ClientExt, net.JoinHostPort(bgpIP, "80"))
		before := count()
		time.Sleep(phase) // the measuring window, with traffic running
		after := count()
		l2.Stop()
		ext.Stop()
		d := hogCounts{moves: map[string]float64{}, bfdDowns: after.bfdDowns - before.bfdDowns, bgpDrops: after.bgpDrops - before.bgpDrops}
		for _, n := range all {
			d.moves[n] = after.moves[n] - before.moves[n]
		}
		d.l2Sent, d.l2Fail = l2.Counts()
		d.bgpSent, d.bgpFail = ext.Counts()
		if d.l2Fail+d.bgpFail > 0 {
			t.Logf("%s: last failures: L2 %q, BGP %q", name, l2.LastErrors(), ext.LastErrors())
		}
		return d
	}
	base := run("no load", false)
	busy := run("CPU hog", true)

	// Failover under load: kill the L2 announcer, outage until requests
	// pass again.
	var gaps []time.Duration
	if kills > 0 {
		startHogs(t, l, all)
		p := labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(l2IP, "80"))
		for range kills {
			var who string
			s.Poll(2*time.Minute, "one announcer, traffic flowing", func() (bool, string) {
				a := s.Announcers("hog-l2")
				now := time.Now()
				g, ok := p.Outage(now.Add(-time.Second), now.Add(-10*time.Millisecond))
				if len(a) != 1 || !ok || g >= 100*time.Millisecond || !p.QuietFor(1500*time.Millisecond) || !s.ready(a[0]) {
					return false, fmt.Sprint(a, g)
				}
				who = a[0]
				return true, ""
			})
			at := time.Now()
			s.KillSpeaker(who)
			var g time.Duration
			s.Poll(30*time.Second, "traffic back after the kill", func() (bool, string) {
				var ok bool
				g, ok = p.Outage(at, at.Add(3*time.Second))
				return ok, ""
			})
			gaps = append(gaps, g)
			s.StartSpeaker(who)
		}
		p.Stop()
		stopHogs(t, l, all)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nbusy nodes (3 lab nodes on %d cores; L2 and BGP requests every 10 ms; BFD 300 ms × 3; %v per phase)\n", runtime.NumCPU(), phase)
	fmt.Fprintf(&b, "  %-34s %12s %12s\n", "", "no load", "CPU hog")
	row := func(what string, f func(hogCounts) string) {
		fmt.Fprintf(&b, "  %-34s %12s %12s\n", what, f(base), f(busy))
	}
	row("announcer moves (max over nodes)", func(c hogCounts) string {
		m := 0.0
		for _, v := range c.moves {
			m = max(m, v)
		}
		return fmt.Sprint(m)
	})
	row("BFD session downs (router)", func(c hogCounts) string { return fmt.Sprint(c.bfdDowns) })
	row("BGP connections dropped (router)", func(c hogCounts) string { return fmt.Sprint(c.bgpDrops) })
	row("failed L2 requests", func(c hogCounts) string { return fmt.Sprintf("%d/%d", c.l2Fail, c.l2Sent) })
	row("failed BGP requests", func(c hogCounts) string { return fmt.Sprintf("%d/%d", c.bgpFail, c.bgpSent) })
	if len(gaps) > 0 {
		sorted := slices.Clone(gaps)
		slices.Sort(sorted)
		fmt.Fprintf(&b, "  kill -9 announcer under the hog, n=%d: p50 %v, p99 %v, max %v\n    raw: %v\n", len(gaps),
			percentile(sorted, 50).Round(time.Millisecond), percentile(sorted, 99).Round(time.Millisecond),
			sorted[len(sorted)-1].Round(time.Millisecond), gaps)
	}
	fmt.Fprintf(&b, "  goals: 0 moves, 0 BFD downs, 0 failed requests under the hog; failover p99 ≤ 1 s\n")
	t.Log(b.String())
	fmt.Print(b.String())
}

// startHogs starts one busy loop per CPU in every node's namespace.
func startHogs(t *testing.T, l *lab.Lab, nodes []string) {
	t.Helper()
	for _, n := range nodes {
		for i := range runtime.NumCPU() {
			if _, err := l.StartProcess(lab.ProcessSpec{Name: fmt.Sprintf("hog-%s-%d", n, i), Netns: n,
				Argv: []string{"sh", "-c", "while :; do :; done"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func stopHogs(t *testing.T, l *lab.Lab, nodes []string) {
	t.Helper()
	for _, n := range nodes {
		for i := range runtime.NumCPU() {
			if err := l.StopProcess(fmt.Sprintf("hog-%s-%d", n, i)); err != nil {
				t.Errorf("stop hog: %v", err)
			}
		}
	}
}

// routerFaults sums the router's BFD session-down events and dropped BGP
// connections over every peer (FRR's counters only grow).
func routerFaults(t *testing.T, s *site) (bfdDowns, bgpDrops int) {
	t.Helper()
	r := s.L.Router()
	var bfd []map[string]json.RawMessage
	if err := r.VtyshJSON(s.Ctx, "show bfd peers counters json", &bfd); err != nil {
		t.Fatalf("bfd counters: %v", err)
	}
	for _, p := range bfd {
		var n int
		if err := json.Unmarshal(p["session-down"], &n); err != nil {
			t.Fatalf("bfd counters: no session-down in %v", p)
		}
		bfdDowns += n
	}
	var nbs map[string]json.RawMessage
	if err := r.VtyshJSON(s.Ctx, "show bgp neighbors json", &nbs); err != nil {
		t.Fatalf("bgp neighbours: %v", err)
	}
	for addr, raw := range nbs {
		if net.ParseIP(addr) == nil {
			continue // not a neighbour
		}
		var nb struct {
			Dropped *int `json:"connectionsDropped"`
		}
		if err := json.Unmarshal(raw, &nb); err != nil || nb.Dropped == nil {
			t.Fatalf("bgp neighbour %s: no connectionsDropped (%v)", addr, err)
		}
		bgpDrops += *nb.Dropped
	}
	return bfdDowns, bgpDrops
}
