package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// replica is one beacon-controller process that can be killed and
// restarted.
type replica struct {
	name string
	args []string
	log  *os.File

	mu  sync.Mutex
	cmd *exec.Cmd
}

func (r *replica) start(t *testing.T, bin string) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmd = exec.Command(bin, r.args...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r.name, err)
	}
}

func (r *replica) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Signal(syscall.SIGKILL)
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// counts is what a chaos scenario reports.
type counts struct {
	sent, failed, duplicated, changed atomic.Int64
}

func (c *counts) report(t *testing.T, scenario string, extra string) {
	line := fmt.Sprintf("CHAOS %s: requests sent %d, failed %d, IPs duplicated %d, IPs changed %d%s",
		scenario, c.sent.Load(), c.failed.Load(), c.duplicated.Load(), c.changed.Load(), extra)
	fmt.Println(line)
	t.Log(line)
}

// TestControllerChurn: two controller replicas; 1,000 Services created
// and deleted in waves while the leader is SIGKILLed every few seconds and
// restarted. Checked continuously and at the end: no address held by two
// Services, no Service's address ever changes, every live Service gets an
// address, deleted Services go away, and pool status counts what is held.
func TestControllerChurn(t *testing.T) {
	needChaos(t)
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cfg := rest.CopyConfig(e.Config)
	cfg.QPS, cfg.Burst = 300, 600
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "churn-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svcs := kube.CoreV1().Services(ns.Name)
	t.Cleanup(func() {
		ctx := context.Background()
		list, _ := svcs.List(ctx, metav1.ListOptions{})
		if list != nil {
			for _, s := range list.Items {
				_, _ = svcs.Patch(ctx, s.Name, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
				_ = svcs.Delete(ctx, s.Name, metav1.DeleteOptions{})
			}
		}
	})
	const poolName = "chaos-churn"
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: poolName}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.18.96.0/22"} // 1,024: more than ever live at once
	if err := e.Beacon.Create(ctx, client.IPPools, pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Beacon.Delete(context.Background(), client.IPPools, poolName) })

	bin := filepath.Join(t.TempDir(), "beacon-controller")
	testenv.Build(t, filepath.Dir(bin), "./cmd/beacon-controller")
	dir := t.TempDir()
	replicas := make([]*replica, 2)
	for i := range replicas {
		name := fmt.Sprintf("replica-%d", i)
		f, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = &replica{name: name, log: f, args: []string{
			"--kubeconfig", e.Kubeconfig,
			"--leader-elect-namespace", ns.Name, "--leader-elect-name", "beacon-churn",
			"--leader-elect-identity", name,
			"--metrics-addr", testenv.FreeAddr(t), "--health-addr", testenv.FreeAddr(t),
			"--externalips-param", "",
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

	var c counts
	var mu sync.Mutex
	first := map[types.UID]string{} // first address seen per Service
	var violations []string
	check := func(ctx context.Context) error {
		list, err := svcs.List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		owner := map[string]string{}
		mu.Lock()
		defer mu.Unlock()
		for _, s := range list.Items {
			ip := ingressOf(&s)
			if ip == "" {
				continue
			}
			if o, dup := owner[ip]; dup {
				c.duplicated.Add(1)
				violations = append(violations, fmt.Sprintf("%s held by %s and %s", ip, o, s.Name))
			}
			owner[ip] = s.Name
			if f, ok := first[s.UID]; !ok {
				first[s.UID] = ip
			} else if f != ip {
				c.changed.Add(1)
				violations = append(violations, fmt.Sprintf("%s changed %s -> %s", s.Name, f, ip))
				first[s.UID] = ip
			}
		}
		return nil
	}
	runCtx, stopRun := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for runCtx.Err() == nil {
			_ = check(runCtx)
			select {
			case <-runCtx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	// Kill the leader every 3 s and restart it at once.
	var kills atomic.Int64
	wg.Go(func() {
		for {
			select {
			case <-runCtx.Done():
				return
			case <-time.After(3 * time.Second):
			}
			holder := leaseHolder(runCtx, kube, ns.Name, "beacon-churn")
			for _, r := range replicas {
				if r.name == holder {
					r.kill()
					kills.Add(1)
					r.start(t, bin)
				}
			}
		}
	})

	// Waves: create 200, then delete a random-ish half of what lives. At
	// least 5 waves, and more (up to 15) until the leader was killed
	// twice: a fast machine finishes 5 waves before the second kill.
	const minWaves, maxWaves, perWave = 5, 15, 200
	waves := 0
	live := map[string]bool{}
	do := func(what string, f func() error) {
		c.sent.Add(1)
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return f() == nil, nil
		})
		if err != nil {
			c.failed.Add(1)
			t.Errorf("%s: %v", what, err)
		}
	}
	start := time.Now()
	for w := 0; w < minWaves || (kills.Load() < 2 && w < maxWaves); w++ {
		waves++
		var cwg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range perWave {
			name := fmt.Sprintf("w%d-%03d", w, i)
			live[name] = true
			sem <- struct{}{}
			cwg.Go(func() {
				defer func() { <-sem }()
				do("create "+name, func() error {
					_, err := svcs.Create(ctx, lbService(ns.Name, name), metav1.CreateOptions{})
					if err != nil && strings.Contains(err.Error(), "already exists") {
						return nil
					}
					return err
				})
			})
		}
		cwg.Wait()
		// Delete every other live Service, oldest first.
		names := sortedKeys(live)
		for i, name := range names {
			if i%2 == 1 {
				continue
			}
			delete(live, name)
			sem <- struct{}{}
			cwg.Go(func() {
				defer func() { <-sem }()
				do("delete "+name, func() error {
					err := svcs.Delete(ctx, name, metav1.DeleteOptions{})
					if err != nil && strings.Contains(err.Error(), "not found") {
						return nil
					}
					return err
				})
			})
		}
		cwg.Wait()
	}
	churnTime := time.Since(start)

	// Converge: every live Service has an address, every deleted one is
	// gone, pool status counts exactly the live ones.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := svcs.List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		if len(list.Items) != len(live) {
			return false, nil
		}
		for _, s := range list.Items {
			if !live[s.Name] || ingressOf(&s) == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		list, _ := svcs.List(ctx, metav1.ListOptions{})
		pending, extra := 0, 0
		if list != nil {
			for _, s := range list.Items {
				if !live[s.Name] {
					extra++
				} else if ingressOf(&s) == "" {
					pending++
				}
			}
		}
		t.Errorf("not converged within 90 s: %d live Services without address, %d deleted Services still present", pending, extra)
	}
	stopRun()
	wg.Wait()
	if err := check(ctx); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p := &v1alpha1.IPPool{}
		if err := e.Beacon.Get(ctx, client.IPPools, poolName, p); err != nil {
			return false, nil
		}
		return p.Status.IPv4 != nil && p.Status.IPv4.Used == int64(len(live)) && p.Status.IPv4.Available == 1024-int64(len(live)), nil
	})
	if err != nil {
		p := &v1alpha1.IPPool{}
		_ = e.Beacon.Get(ctx, client.IPPools, poolName, p)
		t.Errorf("pool status %+v, want used %d", p.Status.IPv4, len(live))
	}
	c.report(t, "controller-churn", fmt.Sprintf(" (%d Services created, %d live at the end, %d leader kills, churn %.1fs)",
		waves*perWave, len(live), kills.Load(), churnTime.Seconds()))
	mu.Lock()
	defer mu.Unlock()
	if len(violations) > 0 {
		t.Errorf("%d violations, first: %v", len(violations), violations[:min(5, len(violations))])
	}
	if kills.Load() < 2 {
		t.Errorf("only %d leader kills during the churn; the scenario did not exercise failover", kills.Load())
	}
}

func lbService(ns, name string) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: v1.ProtocolTCP}},
		},
	}
}

func ingressOf(s *v1.Service) string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return strings.Join(out, ",")
}

func leaseHolder(ctx context.Context, kube kubernetes.Interface, ns, name string) string {
	l, err := kube.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
