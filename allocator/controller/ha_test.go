package controller_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/internal/testenv"
)

// replica is one beacon-controller process.
type replica struct {
	name string
	args []string
	cmd  *exec.Cmd
	log  *os.File
}

func (r *replica) start(t *testing.T, bin string) {
	t.Helper()
	r.cmd = exec.Command(bin, r.args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r.name, err)
	}
}

func (r *replica) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Two controller processes with leader election; the leader is killed with
// SIGKILL again and again while Services are created. No address may ever
// be held by two Services, and no Service's address may change.
func TestTwoReplicasKillLeader(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	bin := filepath.Join(testenv.BuildOnce(t, "./cmd/beacon-controller"), "beacon-controller")
	h.pool("t-ha", nil, "198.18.13.0/24")

	replicas := make([]*replica, 2)
	for i := range replicas {
		name := fmt.Sprintf("replica-%d", i)
		f, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = &replica{name: name, log: f, args: []string{
			"--kubeconfig", h.env.Kubeconfig,
			"--leader-elect-namespace", h.ns, "--leader-elect-name", "beacon-ha",
			"--leader-elect-identity", name,
			// Distinct ports per replica on one host.
			"--metrics-addr", testenv.FreeAddr(t),
			"--health-addr", testenv.FreeAddr(t),
		}}
		replicas[i].start(t, bin)
	}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.kill()
			_ = r.log.Close()
		}
		if t.Failed() {
			for _, r := range replicas {
				b, _ := os.ReadFile(r.log.Name())
				t.Logf("--- %s log (tail) ---\n%s", r.name, testenv.Tail(string(b), 3000))
			}
		}
	})

	const total = 60
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	var wg sync.WaitGroup
	// Watch: record each Service's first address; flag any change or duplicate.
	var mu sync.Mutex
	first := map[string]string{}
	var violations []string
	check := func(ctx context.Context) {
		list, err := h.env.Kube.CoreV1().Services(h.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		owner := map[string]string{}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range list.Items {
			for _, ip := range ingress(&s) {
				if o, dup := owner[ip]; dup {
					violations = append(violations, fmt.Sprintf("%s held by %s and %s", ip, o, s.Name))
				}
				owner[ip] = s.Name
				if f, ok := first[s.Name]; !ok {
					first[s.Name] = ip
				} else if f != ip {
					violations = append(violations, fmt.Sprintf("%s changed %s -> %s", s.Name, f, ip))
				}
			}
		}
	}
	wg.Go(func() {
		for ctx.Err() == nil {
			check(ctx)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	// Create Services steadily.
	wg.Go(func() {
		for i := range total {
			h.service(fmt.Sprintf("ha-%02d", i), nil)
			select {
			case <-ctx.Done():
				return
			case <-time.After(150 * time.Millisecond):
			}
		}
	})
	// Kill the current leader three times, restarting it each time.
	for round := range 3 {
		leader := h.waitLeader("beacon-ha", 20*time.Second)
		for _, r := range replicas {
			if r.name == leader {
				r.kill()
				t.Logf("round %d: killed leader %s", round, leader)
				h.eventually(20*time.Second, "new leader", func() (bool, string) {
					l := h.leaseHolder("beacon-ha")
					return l != "" && l != leader, l
				})
				r.start(t, bin)
			}
		}
	}
	// SIGTERM releases the Lease after the last write, so the standby takes
	// over at its next retry instead of waiting for the Lease to expire (4 s).
	leader := h.waitLeader("beacon-ha", 20*time.Second)
	for _, r := range replicas {
		if r.name == leader {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			start := time.Now()
			h.eventually(3*time.Second, "takeover after SIGTERM", func() (bool, string) {
				l := h.leaseHolder("beacon-ha")
				return l != "" && l != leader, l
			})
			t.Logf("takeover after SIGTERM of %s: %v", leader, time.Since(start))
			if err := r.cmd.Wait(); err != nil {
				t.Errorf("%s exited with %v after SIGTERM, want 0", r.name, err)
			}
			r.cmd = nil
		}
	}
	for i := range total {
		h.waitAnyIPs(fmt.Sprintf("ha-%02d", i), 1)
	}
	cancel()
	wg.Wait()
	check(h.ctx) // the final state, after every Service got its address
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Fatalf("%d violations, first: %v", len(violations), violations[0])
	}
	if len(first) != total {
		t.Fatalf("saw addresses for %d Services, want %d", len(first), total)
	}
}

func (h *harness) leaseHolder(name string) string {
	l, err := h.env.Kube.CoordinationV1().Leases(h.ns).Get(h.ctx, name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func (h *harness) waitLeader(name string, timeout time.Duration) string {
	h.t.Helper()
	var l string
	h.eventually(timeout, "a leader", func() (bool, string) {
		l = h.leaseHolder(name)
		return l != "", l
	})
	return l
}
