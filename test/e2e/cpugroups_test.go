package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

// cpuGroups shares the CPU between lab processes as kubelet shares it
// between pods: a cgroup per lab node, of equal weight, holding one cgroup
// per "pod" weighted by its CPU request with kubelet's formula. It works
// with cgroup v1 (cpu.shares) and v2 (cpu.weight); everything it made is
// removed, and the processes it moved go back, when the test ends.
type cpuGroups struct {
	root string // the benchmark's cgroup
	v2   bool
}

func newCPUGroups(t *testing.T) *cpuGroups {
	t.Helper()
	g := &cpuGroups{root: "/sys/fs/cgroup/cpu/beacon-bench-hog"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		g = &cpuGroups{root: "/sys/fs/cgroup/beacon-bench-hog", v2: true}
		// The cpu controller must be on for the root's children and ours.
		g.write(t, "/sys/fs/cgroup/cgroup.subtree_control", "+cpu")
	}
	remove := func() {
		// Children first; a process still inside goes back to the parent
		// of the benchmark's cgroup, where the test runs.
		dirs, _ := filepath.Glob(filepath.Join(g.root, "*", "*", "cgroup.procs"))
		more, _ := filepath.Glob(filepath.Join(g.root, "*", "cgroup.procs"))
		for _, procs := range append(dirs, more...) {
			b, _ := os.ReadFile(procs)
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(filepath.Dir(g.root), "cgroup.procs"), []byte(pid), 0)
			}
			_ = os.Remove(filepath.Dir(procs))
		}
		_ = os.Remove(g.root)
	}
	remove() // left by an interrupted run
	t.Cleanup(remove)
	if err := os.Mkdir(g.root, 0o755); err != nil {
		t.Fatalf("CPU cgroups: %v", err)
	}
	if g.v2 {
		g.write(t, filepath.Join(g.root, "cgroup.subtree_control"), "+cpu")
	}
	return g
}

// set gives the pod named who on node the weight of a CPU request of
// milli millicores, making its cgroup (and the node's) if new.
func (g *cpuGroups) set(t *testing.T, node, who string, milli int64) {
	t.Helper()
	dir := filepath.Join(g.root, node, who)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("CPU cgroups: %v", err)
	}
	if g.v2 {
		g.write(t, filepath.Join(g.root, node, "cgroup.subtree_control"), "+cpu")
	}
	// kubelet: shares = milli × 1024 / 1000, at least 2; cgroup v2 maps
	// shares to a weight of 1 + (shares − 2) × 9999 / 262142.
	shares := max(milli*1024/1000, 2)
	if g.v2 {
		g.write(t, filepath.Join(dir, "cpu.weight"), strconv.FormatInt(1+(shares-2)*9999/262142, 10))
		return
	}
	g.write(t, filepath.Join(dir, "cpu.shares"), strconv.FormatInt(shares, 10))
}

// grantRT gives the pod's cgroup, and its node's and the benchmark's,
// real-time time (us of every second) where the kernel schedules
// real-time threads by group (cgroup v1 with CONFIG_RT_GROUP_SCHED): a
// group has none by default, and a process with a real-time thread
// cannot even move in. Elsewhere there is nothing to grant.
func (g *cpuGroups) grantRT(t *testing.T, node, who string, us int) {
	t.Helper()
	if g.v2 {
		return
	}
	root := filepath.Join(g.root, "cpu.rt_runtime_us")
	if _, err := os.Stat(root); err != nil {
		return
	}
	// Parents first; each holds what its children were given.
	nodes, _ := filepath.Glob(filepath.Join(g.root, "*", "cpu.rt_runtime_us"))
	g.write(t, root, strconv.Itoa(us*len(nodes)))
	g.write(t, filepath.Join(g.root, node, "cpu.rt_runtime_us"), strconv.Itoa(us))
	g.write(t, filepath.Join(g.root, node, who, "cpu.rt_runtime_us"), strconv.Itoa(us))
}

// move puts the process (all its threads) into the pod's cgroup.
func (g *cpuGroups) move(t *testing.T, node, who string, pid int) {
	t.Helper()
	g.write(t, filepath.Join(g.root, node, who, "cgroup.procs"), strconv.Itoa(pid))
}

func (g *cpuGroups) write(t *testing.T, file, value string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(value), 0); err != nil {
		t.Fatalf("CPU cgroups: write %q to %s: %v", value, file, err)
	}
}

// milliCPU parses a Kubernetes CPU quantity ("50m", "0.25") in millicores.
func milliCPU(t *testing.T, q string) int64 {
	t.Helper()
	v, err := resource.ParseQuantity(q)
	if err != nil {
		t.Fatalf("CPU request %q: %v", q, err)
	}
	return v.MilliValue()
}
