package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// wakeupResult is what one sleeper measured: how late each of its
// wake-ups came.
type wakeupResult struct {
	Mode     string          `json:"mode"`
	Refused  string          `json:"refused,omitempty"` // the kernel refused the mode
	Lateness []time.Duration `json:"lateness"`
}

// The scheduling modes TestBenchWakeup compares.
const (
	wakeDefault = "default"    // SCHED_OTHER, the kernel's slice
	wakeSlice   = "slice"      // SCHED_OTHER with a 100 µs custom slice (EEVDF, Linux 6.12+)
	wakeFIFO    = "SCHED_FIFO" // real-time, priority 1
)

const (
	wakeInterval = 32 * time.Millisecond // the speaker's heartbeat interval
	wakeWork     = time.Millisecond      // CPU per wake-up: about the speaker's 30m
)

// TestBenchWakeup is the scheduler part of `make bench-scale`: how late a
// thread that sleeps for a heartbeat interval wakes up when it sits in a
// pod that requests 50m next to a pod that keeps every core busy and
// requests the rest of the node, on three nodes sharing the machine
// (kubelet's CPU weights, as TestBenchHog), for each way the speaker could
// ask the kernel for its CPU: the default, a short EEVDF slice, and
// SCHED_FIFO. It prints each mode's lateness side by side with the same
// thread on an idle machine, and how many wake-ups came later than the
// 280 ms death timeout: what a thread of its own in a real-time class, or
// a short slice, would give the speaker's heartbeats.
func TestBenchWakeup(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "wakeup" {
		t.Skip("a benchmark: run `make bench-scale` (BEACON_BENCH=wakeup)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes CPU cgroups")
	}
	dur := 20 * time.Second
	if v := os.Getenv("BEACON_WAKEUP_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("BEACON_WAKEUP_DURATION=%q: not a positive duration", v)
		}
		dur = d
	}
	const request = 50 // the chart's speaker request, millicores
	// Three nodes share the machine, as in TestBenchHog; the sleeper is
	// node1's speaker.
	nodes := []string{"node1", "node2", "node3"}
	node := int64(runtime.NumCPU()) * 1000 / int64(len(nodes))
	cg := newCPUGroups(t)
	for _, n := range nodes {
		cg.set(t, n, "speaker", request)
		cg.set(t, n, "hog", node-request)
	}
	cg.grantRT(t, "node1", "speaker", 50000) // 5% of a CPU
	idle := sleep(t, cg, wakeDefault, dur)
	var spinners []*exec.Cmd
	for _, n := range nodes {
		for range runtime.NumCPU() {
			c := exec.Command("sh", "-c", "while :; do :; done")
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			spinners = append(spinners, c)
			cg.move(t, n, "hog", c.Process.Pid)
		}
	}
	t.Cleanup(func() {
		for _, c := range spinners {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	})
	var busy []wakeupResult
	for _, m := range []string{wakeDefault, wakeSlice, wakeFIFO} {
		busy = append(busy, sleep(t, cg, m, dur))
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\nwake-up lateness of a thread sleeping %v at a time in a pod requesting %dm, %v per mode (%d nodes of %dm on %d cores)\n", wakeInterval, request, dur, len(nodes), node, runtime.NumCPU())
	fmt.Fprintf(&b, "  busy: on every node a spinner per core in a pod requesting the rest of the node (%dm), kubelet's CPU weights\n", node-request)
	fmt.Fprintf(&b, "  %-26s %9s %9s %9s %9s %8s %8s\n", "", "wake-ups", "p50", "p99", "max", ">100ms", ">280ms")
	row := func(name string, r wakeupResult) {
		if r.Refused != "" {
			fmt.Fprintf(&b, "  %-26s refused: %s\n", name, r.Refused)
			return
		}
		l := slices.Clone(r.Lateness)
		slices.Sort(l)
		over := func(d time.Duration) int {
			n := 0
			for _, x := range l {
				if x > d {
					n++
				}
			}
			return n
		}
		fmt.Fprintf(&b, "  %-26s %9d %9v %9v %9v %8d %8d\n", name, len(l),
			percentile(l, 50).Round(10*time.Microsecond), percentile(l, 99).Round(10*time.Microsecond),
			l[len(l)-1].Round(time.Millisecond), over(100*time.Millisecond), over(280*time.Millisecond))
	}
	row("idle machine, "+wakeDefault, idle)
	for _, r := range busy {
		row("busy, "+r.Mode, r)
	}
	fmt.Print(b.String())
	if len(idle.Lateness) == 0 || len(busy[0].Lateness) == 0 {
		t.Error("a sleeper measured nothing")
	}
}

// sleep runs a sleeper in mode in node1's speaker cgroup for d and returns
// what it measured.
func sleep(t *testing.T, cg *cpuGroups, mode string, d time.Duration) wakeupResult {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^TestWakeupSleeper$", "-test.v")
	c.Env = append(os.Environ(), "BEACON_WAKEUP_SLEEPER="+mode, "BEACON_WAKEUP_DURATION="+d.String())
	in, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// Into the cgroup first, then measure.
	cg.move(t, "node1", "speaker", c.Process.Pid)
	if _, err := io.WriteString(in, "go\n"); err != nil {
		t.Fatal(err)
	}
	var res wakeupResult
	found := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if raw, ok := strings.CutPrefix(sc.Text(), "wakeup-result "); ok {
			if err := json.Unmarshal([]byte(raw), &res); err != nil {
				t.Fatalf("sleeper %s: %v", mode, err)
			}
			found = true
		}
	}
	if err := c.Wait(); err != nil || !found {
		t.Fatalf("sleeper %s: %v (result found: %v)", mode, err, found)
	}
	return res
}

// TestWakeupSleeper is TestBenchWakeup's sleeper, run in a process of its
// own: it takes the scheduling mode, waits for "go" on stdin (it has been
// moved into its cgroup by then), then on one locked thread sleeps until
// the next interval again and again for the duration, using wakeWork of
// CPU after each wake-up, and prints how late each one came.
func TestWakeupSleeper(t *testing.T) {
	mode := os.Getenv("BEACON_WAKEUP_SLEEPER")
	if mode == "" {
		t.Skip("run by TestBenchWakeup")
	}
	d, err := time.ParseDuration(os.Getenv("BEACON_WAKEUP_DURATION"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	res := wakeupResult{Mode: mode}
	if err := schedMode(mode); err != nil {
		res.Refused = err.Error()
	} else {
		var sink uint64
		next := time.Now()
		for end := next.Add(d); next.Before(end); {
			next = next.Add(wakeInterval)
			ts := unix.NsecToTimespec(next.UnixNano())
			for unix.ClockNanosleep(unix.CLOCK_REALTIME, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
			}
			late := time.Since(next)
			res.Lateness = append(res.Lateness, late)
			if late > wakeInterval {
				next = time.Now() // as a ticker does: no burst to catch up
			}
			// The speaker's CPU use in the lab (about 30m) lands in its
			// cgroup too: a millisecond of CPU per interval.
			var ts0, ts1 unix.Timespec
			_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts0)
			for ts1 = ts0; ts1.Nano()-ts0.Nano() < int64(wakeWork); _ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts1) {
				sink++
			}
		}
		_ = sink
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("wakeup-result %s\n", b)
}

// schedAttr is struct sched_attr (include/uapi/linux/sched/types.h).
type schedAttr struct {
	size, policy      uint32
	flags             uint64
	nice              int32
	priority          uint32
	runtime, deadline uint64
	period            uint64
	utilMin, utilMax  uint32
}

// schedMode puts the calling thread into mode.
func schedMode(mode string) error {
	a := schedAttr{}
	switch mode {
	case wakeDefault:
		return nil
	case wakeSlice:
		a.policy, a.runtime = unix.SCHED_NORMAL, uint64(100*time.Microsecond)
	case wakeFIFO:
		a.policy, a.priority = unix.SCHED_FIFO, 1
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	a.size = uint32(unsafe.Sizeof(a))
	if _, _, e := unix.Syscall(unix.SYS_SCHED_SETATTR, 0, uintptr(unsafe.Pointer(&a)), 0); e != 0 {
		return fmt.Errorf("sched_setattr %s: %w", mode, e)
	}
	return nil
}
