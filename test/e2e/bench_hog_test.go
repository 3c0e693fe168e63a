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
	moves          map[string]float64       // per speaker: beacon_l2_election_changes_total
	cpu            map[string]time.Duration // per speaker: CPU time used (user + system)
	bfdDowns       int                      // router: BFD session-down events over every peer
	bgpDrops       int                      // router: BGP connections dropped over every neighbour
	l2Sent, l2Fail int
	bgpSent        int
	bgpFail        int
}

// TestBenchHog is the busy-node part of `make bench-scale`: steady L2 and
// BGP traffic (BFD 300 ms × 3) for a phase without load, then the same
// phase with a CPU spinner per core in every node once per speaker CPU
// request of BEACON_HOG_REQUESTS, counting announcer moves, BFD downs, BGP
// drops and failed requests; then, still under load with the first
// request, kills of the L2 announcer with the outage each caused.
//
// The CPU is shared as kubelet shares it: each node gets a CPU cgroup of
// equal weight (nodes share this machine's cores, so a node has
// cores/nodes), holding the speaker's cgroup, weighted by its request as
// kubelet weights a pod's, and the spinners' cgroup, weighted as a pod
// that requests the rest of the node (the scheduler fills a node to its
// allocatable CPU, and not beyond). Under the spinners the speaker thus
// gets its request, and more only when they leave some.
// BEACON_HOG_REQUESTS=none leaves every process in the test's own cgroup
// (each thread then weighs as much as a spinner).
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
	requests := []string{"50m", "200m"}
	if v := os.Getenv("BEACON_HOG_REQUESTS"); v == "none" {
		requests = []string{""}
	} else if v != "" {
		requests = strings.Split(v, ",")
	}
	var cg *cpuGroups
	if requests[0] != "" {
		cg = newCPUGroups(t)
	}
	s, l := bgpSiteWithin(t, lab.Config{Nodes: 3, PodsPerNode: 1}, 300, time.Duration(1+len(requests))*phase+15*time.Minute)
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
		c := hogCounts{moves: map[string]float64{}, cpu: map[string]time.Duration{}}
		for _, n := range all {
			c.moves[n] = s.metric(n, "beacon_l2_election_changes_total")
			c.cpu[n] = cpuTime(t, s.Process("speaker-"+n).Pid)
		}
		c.bfdDowns, c.bgpDrops = routerFaults(t, s)
		return c
	}
	// A node's share of this machine: the scheduler fills a node up to its
	// allocatable CPU, so the spinners' pod requests what the speaker
	// leaves.
	nodeMilli := int64(runtime.NumCPU()) * 1000 / int64(len(all))
	// hogs starts the spinners, with the speakers requesting request.
	hogs := func(request string) {
		hs := startHogs(t, l, all)
		if cg == nil {
			return
		}
		speaker := milliCPU(t, request)
		if speaker >= nodeMilli {
			t.Fatalf("speaker request %s: a node here has %dm", request, nodeMilli)
		}
		for _, n := range all {
			cg.set(t, n, "hog", nodeMilli-speaker)
			cg.set(t, n, "speaker", speaker)
			cg.move(t, n, "speaker", s.Process("speaker-"+n).Pid)
			for _, h := range hs[n] {
				cg.move(t, n, "hog", h)
			}
		}
	}
	run := func(name string, hog bool, request string) hogCounts {
		if hog {
			hogs(request)
			defer stopHogs(t, l, all)
		}
		l2 := labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(l2IP, "80"))
		ext := labtest.StartProber(s.Ctx, l, lab.ClientExt, net.JoinHostPort(bgpIP, "80"))
		before := count()
		time.Sleep(phase) // the measuring window, with traffic running
		after := count()
		l2.Stop()
		ext.Stop()
		d := hogCounts{moves: map[string]float64{}, cpu: map[string]time.Duration{}, bfdDowns: after.bfdDowns - before.bfdDowns, bgpDrops: after.bgpDrops - before.bgpDrops}
		for _, n := range all {
			d.moves[n] = after.moves[n] - before.moves[n]
			d.cpu[n] = after.cpu[n] - before.cpu[n]
		}
		d.l2Sent, d.l2Fail = l2.Counts()
		d.bgpSent, d.bgpFail = ext.Counts()
		if d.l2Fail+d.bgpFail > 0 {
			t.Logf("%s: last failures: L2 %q, BGP %q", name, l2.LastErrors(), ext.LastErrors())
		}
		return d
	}
	base := run("no load", false, "")
	var busy []hogCounts
	for _, r := range requests {
		busy = append(busy, run("CPU hog "+r, true, r))
	}

	// Failover under load: kill the L2 announcer, outage until requests
	// pass again.
	var gaps []time.Duration
	if kills > 0 {
		hogs(requests[0])
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
			if cg != nil {
				cg.move(t, who, "speaker", s.Process("speaker-"+who).Pid)
			}
		}
		p.Stop()
		stopHogs(t, l, all)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nbusy nodes (3 lab nodes on %d cores; L2 and BGP requests every 10 ms; BFD 300 ms × 3; %v per phase)\n", runtime.NumCPU(), phase)
	if cg != nil {
		fmt.Fprintf(&b, "  CPU cgroups as kubelet's: a node has %dm; the speaker's pod requests the column's figure, the spinners' pod the rest\n", nodeMilli)
	} else {
		fmt.Fprintf(&b, "  no CPU cgroups: every thread weighs as much as a spinner\n")
	}
	fmt.Fprintf(&b, "  %-34s %12s", "", "no load")
	for _, r := range requests {
		fmt.Fprintf(&b, " %16s", strings.TrimSpace("hog "+r))
	}
	fmt.Fprintln(&b)
	row := func(what string, f func(hogCounts) string) {
		fmt.Fprintf(&b, "  %-34s %12s", what, f(base))
		for _, c := range busy {
			fmt.Fprintf(&b, " %16s", f(c))
		}
		fmt.Fprintln(&b)
	}
	row("announcer moves (max over nodes)", func(c hogCounts) string {
		m := 0.0
		for _, v := range c.moves {
			m = max(m, v)
		}
		return fmt.Sprint(m)
	})
	row("speaker CPU, millicores (max)", func(c hogCounts) string {
		m := time.Duration(0)
		for _, v := range c.cpu {
			m = max(m, v)
		}
		return fmt.Sprint(m.Milliseconds() * 1000 / phase.Milliseconds())
	})
	row("BFD session downs (router)", func(c hogCounts) string { return fmt.Sprint(c.bfdDowns) })
	row("BGP connections dropped (router)", func(c hogCounts) string { return fmt.Sprint(c.bgpDrops) })
	row("failed L2 requests", func(c hogCounts) string { return fmt.Sprintf("%d/%d", c.l2Fail, c.l2Sent) })
	row("failed BGP requests", func(c hogCounts) string { return fmt.Sprintf("%d/%d", c.bgpFail, c.bgpSent) })
	if len(gaps) > 0 {
		sorted := slices.Clone(gaps)
		slices.Sort(sorted)
		fmt.Fprintf(&b, "  kill -9 announcer under the hog %s, n=%d: p50 %v, p99 %v, max %v\n    raw: %v\n", requests[0], len(gaps),
			percentile(sorted, 50).Round(time.Millisecond), percentile(sorted, 99).Round(time.Millisecond),
			sorted[len(sorted)-1].Round(time.Millisecond), gaps)
	}
	fmt.Fprintf(&b, "  goals: 0 moves, 0 BFD downs, 0 failed requests under the hog; failover p99 ≤ 1 s\n")
	t.Log(b.String())
	fmt.Print(b.String())
}

// startHogs starts one busy loop per CPU in every node's namespace and
// returns their pids by node.
func startHogs(t *testing.T, l *lab.Lab, nodes []string) map[string][]int {
	t.Helper()
	pids := map[string][]int{}
	for _, n := range nodes {
		for i := range runtime.NumCPU() {
			p, err := l.StartProcess(lab.ProcessSpec{Name: fmt.Sprintf("hog-%s-%d", n, i), Netns: n,
				Argv: []string{"sh", "-c", "while :; do :; done"}})
			if err != nil {
				t.Fatal(err)
			}
			pids[n] = append(pids[n], p.Pid)
		}
	}
	return pids
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

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("CPU time: %v", err)
	}
	// The fields after the command, which is in parentheses and may hold
	// spaces: state is the first; utime and stime are the 12th and 13th.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		t.Fatalf("CPU time: /proc/%d/stat: %q", pid, b)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("CPU time: /proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}
