package agent_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/agent"
)

// TestAgentMemory is a measurement, not a check: the live heap of one
// agent holding N LoadBalancer Services × 5 endpoints, all announced by
// it, against a real API server, per dataplane mode (the dataplane's
// input is built the way its syncer builds it). BEACON_HEAPPROFILE=dir
// writes a heap profile per mode. It breaks the heap down where the
// lab's RSS figures (make bench-scale) cannot.
func TestAgentMemory(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "agentmem" {
		t.Skip("a measurement: runs with BEACON_BENCH=agentmem (SCALE_SERVICES, default 10000)")
	}
	e := testenv.Need(t, env)
	n := 10000
	if s := os.Getenv("SCALE_SERVICES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 || n > 16000 {
			t.Fatalf("SCALE_SERVICES=%q", s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cfg := *e.Config
	cfg.QPS, cfg.Burst = 5000, 5000
	kube, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The speaker's own client allows 5 writes/s: 10,000 reports would
	// take half an hour. The heap is measured once all are written.
	bc, err := client.New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ns = "mem"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	l2Site(ctx, t, e, "mem", "198.18.192.0/18", netip.MustParseAddr("198.18.255.255"),
		map[string]netip.Addr{"node1": netip.MustParseAddr("198.51.100.11"), "node2": netip.MustParseAddr("198.51.100.12")})
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error { return memService(gctx, kube, ns, i) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d Services × 5 endpoints created in %v", n, time.Since(start).Round(time.Second))

	for _, mode := range []nodeport.Mode{nodeport.ModeOff, nodeport.ModeExternal, nodeport.ModeFull} {
		live := &fakeLiveness{alive: map[string]bool{"node1": true}, ch: make(chan struct{}, 16)} // node2 runs no speaker: node1 announces all
		links := &fakeLinks{ips: map[string][]netip.Addr{}}
		a := newAgent(t, agent.Config{
			Node: "node1", Clients: cli.Clients{Kube: kube, Beacon: bc}, Liveness: live, Links: links,
			Recorder: &record.FakeRecorder{}, Log: logr.Discard(), MemberPort: 7946, Forwarding: mode, // discards Events
		})
		actx, acancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { _ = a.Run(actx); close(done) }()
		var in nodeport.Input
		testenv.Poll(t, ctx, 200*time.Millisecond, 10*time.Minute, "every address announced", func() (bool, string) {
			got := len(links.announced("eth0"))
			return got >= n, fmt.Sprintf("%d of %d", got, n)
		})
		testenv.Poll(t, ctx, 2*time.Second, 10*time.Minute, "every address reported", func() (bool, string) {
			var list v1alpha1.ServiceAnnouncementList
			if err := bc.List(ctx, ns, client.ServiceAnnouncements, &list); err != nil {
				return false, err.Error()
			}
			return len(list.Items) >= n, fmt.Sprintf("%d of %d", len(list.Items), n)
		})
		// What the dataplane's syncer holds between syncs.
		in, err = a.NodeportInput(mode)
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("agent --dataplane=%-8s %d Services: heap in use %6.1f MiB, live objects %d, dataplane Services %d\n",
			mode, n, float64(ms.HeapInuse)/(1<<20), ms.HeapObjects, len(in.Services))
		if dir := os.Getenv("BEACON_HEAPPROFILE"); dir != "" {
			f, err := os.Create(fmt.Sprintf("%s/heap-%s.pprof", dir, mode))
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.WriteHeapProfile(f); err != nil {
				t.Fatal(err)
			}
			_ = f.Close()
		}
		runtime.KeepAlive(in)
		acancel()
		<-done
	}
}

// memService creates LoadBalancer Service i with its ingress address and
// an EndpointSlice of 5 endpoints over node1 and node2.
func memService(ctx context.Context, kube kubernetes.Interface, ns string, i int) error {
	name := fmt.Sprintf("s%05d", i)
	svc, err := kube.CoreV1().Services(ns).Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
			Ports: []v1.ServicePort{{Name: "http", Protocol: v1.ProtocolTCP, Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("service %d: %w", i, err)
	}
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: netip.AddrFrom4([4]byte{198, 18, byte(192 + i>>8), byte(i)}).String()}}
	if _, err := kube.CoreV1().Services(ns).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("service %d status: %w", i, err)
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-a", Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "bench.beaconlb.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}},
	}
	for j := range 5 {
		k := i*5 + j
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{fmt.Sprintf("198.18.%d.%d", 64+(k>>8)%128, k&255)}, NodeName: ptr.To(fmt.Sprintf("node%d", 1+j%2)),
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
		})
	}
	if _, err := kube.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("slice %d: %w", i, err)
	}
	return nil
}

// Caches trimmed for --dataplane=off hold no endpoint addresses: a
// forwarding dataplane must not be fed from them.
func TestNodeportInputOfTrimmedCaches(t *testing.T) {
	for _, c := range []struct {
		caches, mode nodeport.Mode
		wantTrimErr  bool
	}{
		{nodeport.ModeOff, nodeport.ModeFull, true},
		{nodeport.ModeOff, nodeport.ModeExternal, true},
		{nodeport.ModeOff, nodeport.ModeOff, false},
		{nodeport.ModeExternal, nodeport.ModeExternal, false},
		{"", nodeport.ModeFull, false},
	} {
		a := newAgent(t, agent.Config{Node: "node1", Forwarding: c.caches})
		_, err := a.NodeportInput(c.mode)
		// Not synced: any other call fails with ErrInputNotReady.
		if trimErr := err != nil && !errors.Is(err, nodeport.ErrInputNotReady); trimErr != c.wantTrimErr {
			t.Errorf("caches for %q, input for %q: error %v; want a refusal: %v", c.caches, c.mode, err, c.wantTrimErr)
		}
	}
}
