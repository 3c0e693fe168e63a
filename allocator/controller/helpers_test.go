package controller_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// harness gives each test its own namespace and removes what it made.
type harness struct {
	t   *testing.T
	env *testenv.Env
	ctx context.Context
	ns  string
}

func newHarness(t *testing.T) *harness {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	h := &harness{t: t, env: e, ctx: ctx}
	ns, err := e.Kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	h.ns = ns.Name
	t.Cleanup(h.cleanupServices)
	return h
}

// cleanupServices deletes the test's Services, stripping the finalizer so
// that they go even though no controller runs any more.
func (h *harness) cleanupServices() {
	ctx := context.Background()
	svcs, err := h.env.Kube.CoreV1().Services(h.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		h.t.Logf("cleanup: %v", err)
		return
	}
	for _, s := range svcs.Items {
		_, _ = h.env.Kube.CoreV1().Services(h.ns).Patch(ctx, s.Name, types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
		_ = h.env.Kube.CoreV1().Services(h.ns).Delete(ctx, s.Name, metav1.DeleteOptions{})
	}
}

// startController runs an in-process controller until the test ends or the
// returned stop function is called.
func (h *harness) startController(mut func(*app.Options)) (stop func()) {
	h.t.Helper()
	o := app.Options{
		RestConfig:  h.env.Config,
		Workers:     8,
		QPS:         500,
		Burst:       1000,
		MetricsAddr: "0",
		HealthAddr:  "0",
	}
	if mut != nil {
		mut(&o)
	}
	ready := make(chan struct{})
	o.Ready = func(*controller.Controller) { close(ready) }
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	log := ktesting.NewLogger(h.t, ktesting.NewConfig(ktesting.Verbosity(2)))
	go func() { done <- app.Run(ctx, log, o) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		h.t.Fatalf("controller exited before ready: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		h.t.Fatal("controller not ready after 30s")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("controller: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

func (h *harness) pool(name string, mut func(*v1alpha1.IPPool), addrs ...string) {
	h.t.Helper()
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(a))
	}
	if mut != nil {
		mut(p)
	}
	if err := h.env.Beacon.Create(h.ctx, client.IPPools, p); err != nil {
		h.t.Fatalf("create pool %s: %v", name, err)
	}
	h.t.Cleanup(func() { _ = h.env.Beacon.Delete(context.Background(), client.IPPools, name) })
}

func (h *harness) getPool(name string) *v1alpha1.IPPool {
	h.t.Helper()
	p := &v1alpha1.IPPool{}
	if err := h.env.Beacon.Get(h.ctx, client.IPPools, name, p); err != nil {
		h.t.Fatalf("get pool: %v", err)
	}
	return p
}

func (h *harness) editPool(name string, mut func(*v1alpha1.IPPool)) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(h.ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		p := h.getPool(name)
		mut(p)
		err := h.env.Beacon.Update(ctx, client.IPPools, name, p)
		if apierrors.IsConflict(errors.Unwrap(err)) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		h.t.Fatalf("edit pool %s: %v", name, err)
	}
}

func (h *harness) service(name string, mut func(*v1.Service)) *v1.Service {
	h.t.Helper()
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns, Annotations: map[string]string{}},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(5000), Protocol: v1.ProtocolTCP}},
		},
	}
	if mut != nil {
		mut(s)
	}
	out, err := h.env.Kube.CoreV1().Services(h.ns).Create(h.ctx, s, metav1.CreateOptions{})
	if err != nil {
		h.t.Fatalf("create service %s: %v", name, err)
	}
	return out
}

func (h *harness) getService(name string) (*v1.Service, error) {
	return h.env.Kube.CoreV1().Services(h.ns).Get(h.ctx, name, metav1.GetOptions{})
}

func (h *harness) updateService(name string, mut func(*v1.Service)) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(h.ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := h.getService(name)
		if err != nil {
			return false, err
		}
		mut(s)
		_, err = h.env.Kube.CoreV1().Services(h.ns).Update(ctx, s, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		h.t.Fatalf("update service %s: %v", name, err)
	}
}

func (h *harness) deleteService(name string) {
	h.t.Helper()
	if err := h.env.Kube.CoreV1().Services(h.ns).Delete(h.ctx, name, metav1.DeleteOptions{}); err != nil {
		h.t.Fatalf("delete service %s: %v", name, err)
	}
}

func ingress(s *v1.Service) []string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return out
}

// eventually polls cond every 20 ms until it holds or the timeout passes.
func (h *harness) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	h.t.Helper()
	testenv.Poll(h.t, h.ctx, 20*time.Millisecond, timeout, what, cond)
}

// waitIPs waits until the Service's ingress equals want (in order).
func (h *harness) waitIPs(name string, want ...string) {
	h.t.Helper()
	h.eventually(10*time.Second, "ingress of "+name, func() (bool, string) {
		s, err := h.getService(name)
		if err != nil {
			return false, err.Error()
		}
		got := ingress(s)
		return strings.Join(got, ",") == strings.Join(want, ","), fmt.Sprint(got)
	})
}

// waitAnyIPs waits until the Service has n ingress addresses and returns them.
func (h *harness) waitAnyIPs(name string, n int) []string {
	h.t.Helper()
	var got []string
	h.eventually(10*time.Second, "ingress of "+name, func() (bool, string) {
		s, err := h.getService(name)
		if err != nil {
			return false, err.Error()
		}
		got = ingress(s)
		return len(got) == n, fmt.Sprint(got)
	})
	return got
}

// waitEvent waits for an Event on the Service with the reason whose message
// contains substr.
func (h *harness) waitEvent(name, reason, substr string) {
	h.t.Helper()
	h.eventually(10*time.Second, fmt.Sprintf("event %s %q on %s", reason, substr, name), func() (bool, string) {
		evs, err := h.env.Kube.CoreV1().Events(h.ns).List(h.ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name != name {
				continue
			}
			seen = append(seen, e.Reason+": "+e.Message)
			if e.Reason == reason && strings.Contains(e.Message, substr) {
				return true, ""
			}
		}
		return false, strings.Join(seen, " | ")
	})
}

// holdsNoDuplicates fails if two Services in the namespace share an address.
func (h *harness) assertNoDuplicates(svcs []v1.Service) {
	h.t.Helper()
	owner := map[string]string{}
	for _, s := range svcs {
		for _, ip := range ingress(&s) {
			if o, dup := owner[ip]; dup {
				h.t.Fatalf("address %s held by both %s and %s", ip, o, s.Name)
			}
			owner[ip] = s.Name
		}
	}
}
