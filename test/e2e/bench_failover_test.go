package e2e

import (
	"fmt"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

func percentile(sorted []time.Duration, q int) time.Duration {
	i := (len(sorted)*q + 99) / 100
	return sorted[max(i-1, 0)]
}

func report(t *testing.T, name string, gaps []time.Duration) {
	sorted := append([]time.Duration(nil), gaps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	raw := make([]string, len(gaps))
	for i, g := range gaps {
		raw[i] = g.Round(time.Millisecond).String()
	}
	fmt.Printf("%-28s n=%d  p50 %v  p99 %v  max %v\n  raw: %s\n", name, len(gaps),
		percentile(sorted, 50).Round(time.Millisecond), percentile(sorted, 99).Round(time.Millisecond),
		sorted[len(sorted)-1].Round(time.Millisecond), strings.Join(raw, " "))
}

// TestBenchFailover is `make bench-failover`: the time with no successful
// reply when the announcing speaker is killed, its link cut, or it is
// stopped gracefully (and restarted), 20 times each, with a request every
// 10 ms from client-lan, and the requests that failed; and the speaker's RSS
// with 1,000 announced addresses.
func TestBenchFailover(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "failover" {
		t.Skip("a benchmark: run `make bench-failover`")
	}
	runs := 20
	if v, err := strconv.Atoi(os.Getenv("BEACON_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s := startBeaconWithin(t, l, 25*time.Minute)
	s.LANPool()
	s.Apply(labtest.AllEchoService("bench", corev1.ServiceExternalTrafficPolicyCluster))
	ip := s.Ingress("bench")[0]
	target := net.JoinHostPort(ip, "80")
	p := labtest.StartProber(s.Ctx, l, lab.ClientLAN, target)
	measure := func(name string, fail, heal func(node string)) {
		measureFailover(s, p, "bench", ip, runs, name, fail, heal)
	}
	fmt.Printf("bench-failover: 3 nodes, a request every 10 ms from client-lan to %s, %d runs per case\n", target, runs)
	// BEACON_BENCH_CASES (kill,link,sigterm) picks cases, for a long run of one.
	cases := os.Getenv("BEACON_BENCH_CASES")
	want := func(c string) bool { return cases == "" || slices.Contains(strings.Split(cases, ","), c) }
	if want("kill") {
		measure("kill -9 announcing speaker", s.KillSpeaker, s.StartSpeaker)
	}
	if want("link") {
		measure("cut announcer's LAN link", func(n string) {
			_ = l.SetCable(s.Ctx, n, false)
		}, func(n string) {
			_ = l.SetCable(s.Ctx, n, true)
		})
	}
	if want("sigterm") {
		measure("SIGTERM (rolling restart)", s.StopSpeaker, s.StartSpeaker)
	}
	sent, failed := p.Counts()
	fmt.Printf("requests: %d sent, %d failed in total\n", sent, failed)
	fmt.Println("targets: p50 <= 300ms, p99 <= 1s; no failed request across SIGTERM")

	// RSS with 1,000 announced addresses, all on node1.
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "rss"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.18.128.0/22"}
	pool.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: 1}
	s.Apply(pool)
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "rss"}}
	ad.Spec.IPPools = []string{"rss"}
	ad.Spec.Interfaces = []v1alpha1.InterfaceName{lab.LANInterface}
	ad.Spec.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/hostname": "node1"}}
	s.Apply(ad)
	for i := range 1000 {
		s.Apply(&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rss-%04d", i), Namespace: "default"},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, AllocateLoadBalancerNodePorts: ptr.To(false),
				Ports: []corev1.ServicePort{{Port: 80}},
			},
		})
	}
	s.Poll(3*time.Minute, "1,000 addresses announced by node1", func() (bool, string) {
		n := s.metric("node1", `beacon_l2_announced_ips{family="ipv4",interface="eth0"}`)
		return n >= 1000, fmt.Sprint(n)
	})
	fmt.Printf("speaker RSS on node1 announcing %v addresses: %s\n",
		s.metric("node1", `beacon_l2_announced_ips{family="ipv4",interface="eth0"}`), s.rss("speaker-node1"))
}

func nodeMAC(l *lab.Lab, node string) string {
	n, _ := l.Node(node)
	return strings.ToLower(n.MAC.String())
}

// measureFailover runs a failover case: fail the stable announcer of the
// Service's address ip, measure the longest silence of the prober, heal, runs
// times; it prints the figures (report) and the failed requests.
func measureFailover(s *site, p *labtest.Prober, service, ip string, runs int, name string, fail, heal func(node string)) {
	t := s.T
	stable := func() string {
		var who string
		s.Poll(20*time.Second, "stable announcer with traffic", func() (bool, string) {
			a := s.Announcers(service)
			if len(a) != 1 {
				return false, fmt.Sprint(a)
			}
			who = a[0]
			now := time.Now()
			g, ok := p.Outage(now.Add(-time.Second), now.Add(-10*time.Millisecond))
			// Requests fail up to 1 s after they start: a run starts
			// after the previous fault's failures have all been seen.
			if !ok || g >= 100*time.Millisecond || !p.QuietFor(1500*time.Millisecond) || !s.ready(who) {
				return false, fmt.Sprint(g)
			}
			// Each run starts with the client sending to the announcer.
			out, _ := s.L.Exec(s.Ctx, "client-lan", "ip", "neigh", "show", ip)
			return strings.Contains(strings.ToLower(string(out)), nodeMAC(s.L, who)), "client-lan's neighbour entry: " + strings.TrimSpace(string(out))
		})
		return who
	}
	var gaps []time.Duration
	stable() // failures from before (start-up, the previous case) do not count
	_, failedBefore := p.Counts()
	defer func() {
		_, failed := p.Counts()
		fmt.Printf("  failed requests over the %d runs (and returns): %d\n", runs, failed-failedBefore)
		if failed > failedBefore {
			fmt.Printf("  last failures: %q\n", p.LastErrors())
		}
	}()
	for range runs {
		node := stable()
		at := time.Now()
		fail(node)
		// The window runs well past any failover we expect; the longest
		// silence inside it is the outage.
		var g time.Duration
		s.Poll(30*time.Second, "traffic back after "+name, func() (bool, string) {
			var ok bool
			g, ok = p.Outage(at, at.Add(3*time.Second))
			return ok, ""
		})
		gaps = append(gaps, g)
		heal(node)
	}
	report(t, name, gaps)
}

// TestBenchFailoverCarrier is `make bench-failover`'s link-aware case: on a
// lab whose nodes send heartbeats over a second NIC, the announcer's LAN
// cable is pulled (its speaker stays alive and reports NoCarrier) and
// plugged back, 10 times (BEACON_BENCH_RUNS).
func TestBenchFailoverCarrier(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "failover" {
		t.Skip("a benchmark: run `make bench-failover`")
	}
	if c := os.Getenv("BEACON_BENCH_CASES"); c != "" && !slices.Contains(strings.Split(c, ","), "carrier") {
		t.Skip("BEACON_BENCH_CASES does not list carrier")
	}
	runs := 10
	if v, err := strconv.Atoi(os.Getenv("BEACON_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1, HeartbeatNetwork: true})
	s := startBeaconWithin(t, l, 25*time.Minute)
	s.LANPool()
	s.Apply(labtest.AllEchoService("bench", corev1.ServiceExternalTrafficPolicyCluster))
	ip := s.Ingress("bench")[0]
	p := labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(ip, "80"))
	fmt.Printf("bench-failover carrier: 3 nodes with heartbeats on eth1, a request every 10 ms from client-lan to %s, %d runs\n", ip, runs)
	measureFailover(s, p, "bench", ip, runs, "announcer's LAN loses carrier", func(n string) {
		_ = l.SetCable(s.Ctx, n, false)
	}, func(n string) {
		_ = l.SetCable(s.Ctx, n, true)
	})
	fmt.Println("target: p99 <= 1s")
}
