package provider_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"net/netip"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	cloudprovider "k8s.io/cloud-provider"
	servicecontroller "k8s.io/cloud-provider/controllers/service"
	"k8s.io/component-base/featuregate"
	controllersmetrics "k8s.io/component-base/metrics/prometheus/controllers"

	"github.com/beaconlb/beacon/allocator/provider"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// builder is the ControllerClientBuilder a cloud-controller-manager passes
// to Initialize.
type builder struct{ cfg *rest.Config }

func (b builder) Config(string) (*rest.Config, error) { return rest.CopyConfig(b.cfg), nil }
func (b builder) ConfigOrDie(string) *rest.Config     { return rest.CopyConfig(b.cfg) }
func (b builder) Client(string) (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(b.cfg)
}
func (b builder) ClientOrDie(string) kubernetes.Interface { return kubernetes.NewForConfigOrDie(b.cfg) }

// TestUpstreamServiceController hosts Beacon's registered cloud provider
// ("beacon", as --cloud-provider=beacon would) in the upstream
// k8s.io/cloud-provider service controller, against a real API server. Its
// Initialize loads the IPPools and the address a Service already holds; a
// new LoadBalancer Service gets the pool's other address, a third waits
// until the pool grows, and deleting a Service returns its address.
func TestUpstreamServiceController(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "t-upstream"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.18.30.0/31"}
	if err := e.Beacon.Create(ctx, client.IPPools, pool); err != nil {
		t.Fatalf("create pool: %v", err)
	}
	t.Cleanup(func() { _ = e.Beacon.Delete(context.Background(), client.IPPools, pool.Name) })

	// A Ready Node, as a real cluster has; the controller passes Nodes to
	// EnsureLoadBalancer (Beacon ignores them).
	node, err := e.Kube.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "t-upstream-node"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create node: %v", err)
	}
	t.Cleanup(func() { _ = e.Kube.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	node.Status.Conditions = []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}
	if _, err := e.Kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("node status: %v", err)
	}

	ns, err := e.Kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	svcs := e.Kube.CoreV1().Services(ns.Name)
	create := func(name string) {
		t.Helper()
		if _, err := svcs.Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create service %s: %v", name, err)
		}
	}
	// "old" already holds the pool's lowest address, as after a restart.
	create("old")
	old, err := svcs.Get(ctx, "old", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	old.Status.LoadBalancer = *provider.StatusFor([]netip.Addr{netip.MustParseAddr("198.18.30.0")})
	if _, err := svcs.UpdateStatus(ctx, old, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status of old: %v", err)
	}

	cloud, err := cloudprovider.GetCloudProvider(provider.ProviderName, nil)
	if err != nil {
		t.Fatalf("registered provider: %v", err)
	}
	stopCh := make(chan struct{})
	defer close(stopCh)
	cloud.Initialize(builder{e.Config}, stopCh)
	lbi, _ := cloud.LoadBalancer()
	lb := lbi.(*provider.LoadBalancer)
	if got := lb.Holding(ns.Name + "/old"); len(got) != 1 || got[0].String() != "198.18.30.0" {
		t.Fatalf("after Initialize the provider holds %v for old, want [198.18.30.0]", got)
	}

	factory := informers.NewSharedInformerFactory(e.Kube, 0)
	sc, err := servicecontroller.New(cloud, e.Kube,
		factory.Core().V1().Services(), factory.Core().V1().Nodes(), "beacon-test", featuregate.NewFeatureGate())
	if err != nil {
		t.Fatalf("service controller: %v", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	factory.Start(runCtx.Done())
	go func() {
		defer close(done)
		sc.Run(runCtx, 2, controllersmetrics.NewControllerManagerMetrics("beacon-test"))
	}()
	defer func() { stop(); <-done; factory.Shutdown() }()

	var last string
	waitIngress := func(name, want string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			s, err := svcs.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			last = fmt.Sprintf("ingress %+v, finalizers %v", s.Status.LoadBalancer.Ingress, s.Finalizers)
			in := s.Status.LoadBalancer.Ingress
			return len(in) == 1 && in[0].IP == want && in[0].IPMode != nil && *in[0].IPMode == v1.LoadBalancerIPModeVIP &&
				len(s.Finalizers) == 1 && s.Finalizers[0] == "service.kubernetes.io/load-balancer-cleanup", nil
		})
		if err != nil {
			t.Fatalf("%s: EXTERNAL-IP %s through the upstream controller: %v (last: %s)", name, want, err, last)
		}
	}
	create("web")
	waitIngress("web", "198.18.30.1")
	waitIngress("old", "198.18.30.0") // kept, and now with the finalizer

	// The pool is full: "more" waits, and gets the address the pool
	// gains (the provider follows the IPPool).
	create("more")
	if err := e.Beacon.Get(ctx, client.IPPools, pool.Name, pool); err != nil {
		t.Fatal(err)
	}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.18.30.0/30"}
	if err := e.Beacon.Update(ctx, client.IPPools, pool.Name, pool); err != nil {
		t.Fatalf("grow pool: %v", err)
	}
	waitIngress("more", "198.18.30.2")

	// Deletion runs EnsureLoadBalancerDeleted before the finalizer goes.
	if err := svcs.Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete service: %v", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := svcs.Get(ctx, "web", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("service not deleted: %v", err)
	}
	if got := lb.Holding(ns.Name + "/web"); len(got) != 0 {
		t.Errorf("provider still holds %v after deletion", got)
	}
}
