package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
)

// TestBenchBGP is `make bench-bgp`: over 20 runs each, (1) from a Service
// getting its IP to its route in the router's kernel FIB (stricter than the
// RIB: FRR installs after it selects), (2) from a node's link cut to its
// removal from the router's ECMP set with BFD 100 ms x 3, (3) requests lost
// from client-ext while a speaker restarts with graceful restart.
func TestBenchBGP(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "bgp" {
		t.Skip("a benchmark: run `make bench-bgp`")
	}
	runs := 20
	if v, err := strconv.Atoi(os.Getenv("BEACON_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	bfd := lab.BFDProfile{TransmitInterval: 100 * time.Millisecond, ReceiveInterval: 100 * time.Millisecond, DetectMultiplier: 3}
	s, l := bgpSiteWith(t, lab.Config{Nodes: 3, PodsPerNode: 1, Router: lab.RouterConfig{BFD: bfd}}, 100)
	r := l.Router()
	all := []string{"node1", "node2", "node3"}
	fmt.Printf("bench-bgp: 3 nodes, FRR router, %d runs per case\n", runs)
	// Measure announcements, not session set-up: wait for all six
	// sessions (IPv4 and IPv6 per node) first.
	s.Poll(60*time.Second, "every session Established", func() (bool, string) {
		var list v1alpha1.BGPSessionStateList
		if err := s.BC.List(s.Ctx, "", client.BGPSessionStates, &list); err != nil {
			return false, err.Error()
		}
		up := 0
		for _, st := range list.Items {
			if st.State == v1alpha1.SessionEstablished {
				up++
			}
		}
		return up == 6, fmt.Sprintf("%d of %d up", up, len(list.Items))
	})

	// (1) Service IP -> route in the router's FIB.
	var announce []time.Duration
	for i := range runs {
		name := fmt.Sprintf("bench-%d", i)
		svc := bgpService(name, corev1.ServiceExternalTrafficPolicyCluster, map[string]string{lab.LabelApp: "echo"})
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicySingleStack)
		svc.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		s.Apply(svc)
		var ip string
		var got time.Time
		s.Poll(30*time.Second, "ingress of "+name, func() (bool, string) {
			o, err := l.Kube().CoreV1().Services("default").Get(s.Ctx, name, metav1.GetOptions{})
			if err != nil || len(o.Status.LoadBalancer.Ingress) == 0 {
				return false, fmt.Sprint(err)
			}
			got, ip = time.Now(), o.Status.LoadBalancer.Ingress[0].IP
			return true, ""
		})
		ctx, cancel := context.WithTimeout(s.Ctx, 20*time.Second)
		_, err := r.WaitFIBNextHops(ctx, hostPrefix(ip), nodeAddrs(l, ip, all...)...)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		announce = append(announce, time.Since(got))
		if err := l.Kube().CoreV1().Services("default").Delete(s.Ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		s.waitNextHops(ip, 20*time.Second)
	}
	report(t, "Service IP -> route in FIB", announce)
	fmt.Println("  (polled every 10 ms for the ingress, 5 ms for the FIB; target p99 <= 200ms)")

	// A long-lived Service for the next two cases.
	s.Apply(bgpService("bench", corev1.ServiceExternalTrafficPolicyCluster, map[string]string{lab.LabelApp: "echo"}))
	ip := s.Ingress("bench")[0]
	s.waitNextHops(ip, 30*time.Second, all...)

	// (2) Link cut -> out of the ECMP set (BFD 100 ms x 3).
	var cuts []time.Duration
	for range runs {
		s.waitNextHops(ip, 60*time.Second, all...)
		if err := l.SetCable(s.Ctx, "node2", false); err != nil {
			t.Fatal(err)
		}
		cuts = append(cuts, s.waitNextHops(ip, 10*time.Second, "node1", "node3"))
		if err := l.SetCable(s.Ctx, "node2", true); err != nil {
			t.Fatal(err)
		}
	}
	report(t, "link cut -> out of ECMP", cuts)
	fmt.Println("  (BFD 100 ms x 3 on both sides; target p99 <= 600ms)")

	// (3) Requests lost while a speaker restarts (graceful restart).
	var lost []int
	total := 0
	for i := range runs {
		node := all[i%len(all)]
		s.waitNextHops(ip, 60*time.Second, all...)
		stop := make(chan struct{})
		res := make(chan [2]int)
		go func() {
			sent, failed := 0, 0
			for {
				select {
				case <-stop:
					res <- [2]int{sent, failed}
					return
				default:
				}
				sent++
				if _, err := s.get(lab.ClientExt, ip, 80); err != nil {
					failed++
				}
			}
		}()
		s.StopSpeaker(node)
		s.StartSpeaker(node)
		s.Poll(60*time.Second, node+"'s session back", func() (bool, string) {
			st := s.session(v4Session(node))
			return st.State == "Established", st.State
		})
		s.waitNextHops(ip, 30*time.Second, all...)
		close(stop)
		c := <-res
		lost = append(lost, c[1])
		total += c[0]
	}
	sorted := slices.Clone(lost)
	slices.Sort(sorted)
	fmt.Printf("%-28s n=%d  lost per restart: max %d, total %d of %d requests\n  raw: %v\n", "graceful speaker restart", runs, sorted[len(sorted)-1], sumInts(lost), total, lost)
	fmt.Println("  (sequential requests from client-ext; target 0 lost)")
}

func sumInts(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// v4Session names the BGPSessionState of a node's IPv4 session in bgpSite
// (node3 has its own BGPPeers).
func v4Session(node string) string {
	if node == "node3" {
		return "router-node3-node3"
	}
	return "router-" + node
}
