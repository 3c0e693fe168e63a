package agent_test

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/agent"
)

// Side by side with another load balancer (MetalLB during a migration),
// Beacon handles its own class and the other one the Services without a
// class. The speaker announces only Beacon's Services, but its dataplane
// input holds the ingress addresses of every LoadBalancer Service, the
// other controller's too: the migration guide tells users so.
func TestAgentForwardsOtherControllersAddresses(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bg := context.Background()
	const node, class = "sbs-node", "beaconlb.io/side-by-side"
	n, err := e.Kube.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Kube.CoreV1().Nodes().Delete(bg, node, metav1.DeleteOptions{}) }()
	n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.31"}}
	if _, err := e.Kube.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "side-by-side"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.51.100.128/28"}
	if err := e.Beacon.Create(ctx, client.IPPools, pool); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Beacon.Delete(bg, client.IPPools, pool.Name) }()
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "side-by-side"}}
	ad.Spec.IPPools = []string{pool.Name}
	if err := e.Beacon.Create(ctx, client.L2Advertisements, ad); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.Beacon.Delete(bg, client.L2Advertisements, ad.Name) }()

	// Two Services with addresses of the pool, as their controllers would
	// have assigned them: one of Beacon's class, one without a class.
	ours := netip.MustParseAddr("198.51.100.130")
	theirs := netip.MustParseAddr("198.51.100.131")
	for _, s := range []struct {
		name  string
		class *string
		ip    netip.Addr
	}{{"sbs-beacon", ptr.To(class), ours}, {"sbs-metallb", nil, theirs}} {
		svc, err := e.Kube.CoreV1().Services("default").Create(ctx, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.name},
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, LoadBalancerClass: s.class,
				Ports: []v1.ServicePort{{Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = e.Kube.CoreV1().Services("default").Delete(bg, s.name, metav1.DeleteOptions{}) }()
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: s.ip.String()}}
		if _, err := e.Kube.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	links := &fakeLinks{ips: map[string][]netip.Addr{}}
	a := newAgent(t, agent.Config{
		Node: node, Clients: cli.Clients{Kube: e.Kube, Beacon: e.Beacon}, LoadBalancerClass: class,
		Liveness: &fakeLiveness{alive: map[string]bool{node: true}, ch: make(chan struct{}, 1)},
		Links:    links, Recorder: record.NewFakeRecorder(100), Log: logr.Discard(), MemberPort: 7946,
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = a.Run(ctx) })

	forwarded := func(in nodeport.Input, ip netip.Addr) bool {
		return slices.ContainsFunc(in.Services, func(s nodeport.Service) bool { return slices.Contains(s.LoadBalancerIPs, ip) })
	}
	var in nodeport.Input
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		if in, err = a.NodeportInput(nodeport.ModeExternal); err != nil {
			return false, nil // caches not synced yet
		}
		return slices.Contains(links.announced("eth0"), ours) && forwarded(in, ours) && forwarded(in, theirs), nil
	})
	if err != nil {
		t.Fatalf("want Beacon's address announced and both forwarded: announced %v, dataplane services %+v", links.announced("eth0"), in.Services)
	}
	if slices.Contains(links.announced("eth0"), theirs) {
		t.Errorf("the other controller's address %s is announced too: %v", theirs, links.announced("eth0"))
	}
	// With the dataplane off, the same caches convert nothing.
	off, err := a.NodeportInput(nodeport.ModeOff)
	if err != nil || len(off.Services) != 0 || off.Mode != nodeport.ModeOff {
		t.Errorf("NodeportInput(off) = %d Services, mode %q, %v; want none, off, no error", len(off.Services), off.Mode, err)
	}
}
