package kind

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// TestFailback: the speaker pod of the node announcing an L2 address is
// deleted (a graceful stop: it tells its peers it leaves) and the
// DaemonSet starts a new one. The address moves to another node at once.
// With failback: Never it stays there when the new speaker is up; with
// Immediate it moves back. Either way under steady traffic from the host no
// request fails. Each case uses its own pool and L2Advertisement; the
// Immediate case, a control for the Never case's count of moves, runs only
// with make e2e-kind-ops.
func TestFailback(t *testing.T) {
	c := need(t)
	c.waitBeacon(t)
	lan := netip.MustParsePrefix(c.env["LAN_CIDR"])
	for i, tc := range []struct {
		failback v1alpha1.Failback
		moves    int
	}{
		{v1alpha1.FailbackNever, 1},
		{v1alpha1.FailbackImmediate, 2},
	} {
		t.Run(string(tc.failback), func(t *testing.T) {
			if tc.failback == v1alpha1.FailbackImmediate && os.Getenv("BEACON_KIND_OPS") != "1" {
				t.Skip("the control case (the address does move back) takes another 25 s: it runs with make e2e-kind-ops (BEACON_KIND_OPS=1)")
			}
			a := lan.Addr().As4()
			a[3] = byte(180 + i)
			ip := netip.AddrFrom4(a)
			if inRange(t, c.env["LAN_POOL"], ip) {
				t.Fatalf("%s is in the LAN pool %s", ip, c.env["LAN_POOL"])
			}
			c.failback(t, ip, tc.failback, tc.moves)
		})
	}
}

func (c *cluster) failback(t *testing.T, ip netip.Addr, failback v1alpha1.Failback, wantMoves int) {
	ctx := context.Background()
	pool := "e2e-failback-" + strings.ToLower(string(failback))
	c.l2Pool(t, pool, []string{ip.String() + "/32"}, func(s *v1alpha1.L2AdvertisementSpec) { s.Failback = failback })
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	if got := c.expose(t, ns, "web", `--overrides={"apiVersion":"v1","metadata":{"annotations":{"beaconlb.io/pool":"`+pool+`"}}}`); got != ip {
		t.Fatalf("the Service got %s, want %s", got, ip)
	}
	c.httpFromHost(t, ip)
	first := c.announcer(t, ip)
	if got := c.l2Announcers(t, ns, ip); !slices.Equal(got, []string{first}) {
		t.Fatalf("ServiceAnnouncements: %v announce %s, the host's neighbour entry says %s", got, ip, first)
	}
	speaker := c.speakerPod(t, first)

	ld := startHostLoad(t, ip)
	neigh := c.watchNeighbour(t, ip)
	deleted := time.Now()
	if err := c.kube.CoreV1().Pods(beaconNS).Delete(ctx, speaker.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var taker string
	eventually(t, 30*time.Second, fmt.Sprintf("the host's neighbour entry for %s off %s", ip, first), func() error {
		if taker = c.announcer(t, ip); taker == first {
			return fmt.Errorf("still %s", taker)
		}
		return nil
	})
	movedAfter := time.Since(deleted)
	// The new speaker on first is running once it has written its session
	// reports again, after it has heard its peers.
	eventually(t, 2*time.Minute, "a new ready speaker on "+first, func() error {
		p := c.speakerPod(t, first)
		if p.UID == speaker.UID || !podReady(p) {
			return fmt.Errorf("%s ready %v", p.Name, podReady(p))
		}
		return nil
	})
	c.waitBeacon(t)
	back := time.Now()
	eventually(t, 30*time.Second, "the new speaker on "+first+" with established BGP sessions", func() error {
		for _, s := range c.sessions(t, first) {
			if s.State == "Established" && s.Since != nil && s.Since.After(deleted) {
				return nil
			}
		}
		return fmt.Errorf("sessions %+v", c.sessions(t, first))
	})
	want := taker
	if failback == v1alpha1.FailbackImmediate {
		want = first
	}
	eventually(t, 30*time.Second, fmt.Sprintf("ServiceAnnouncements: %s announced by %s only", ip, want), func() error {
		if got := c.l2Announcers(t, ns, ip); !slices.Equal(got, []string{want}) {
			return fmt.Errorf("announced by %v", got)
		}
		if n := c.announcer(t, ip); n != want {
			return fmt.Errorf("host's neighbour entry on %s", n)
		}
		return nil
	})
	// What could still change does so within a few heartbeats of the new
	// speaker's start: the announcer must stay for 5 s more.
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		if got := c.l2Announcers(t, ns, ip); !slices.Equal(got, []string{want}) {
			t.Fatalf("failback %s: %s announced by %v, was %s", failback, ip, got, want)
		}
		time.Sleep(250 * time.Millisecond) // the observation's sampling interval
	}
	neigh.close()
	t.Logf("failback %s: %s deleted on %s; the address moved after %v; the new speaker was ready %v after the deletion; the host's neighbour entry: %s",
		failback, speaker.Name, first, movedAfter.Round(time.Millisecond), back.Sub(deleted).Round(100*time.Millisecond), neigh)
	if moves := len(neigh.nodes()) - 1; moves != wantMoves {
		t.Errorf("failback %s: the address moved %d times (%v), want %d", failback, moves, neigh.nodes(), wantMoves)
	}
	if got := c.l2Announcers(t, ns, ip); !slices.Equal(got, []string{want}) {
		t.Errorf("failback %s: announced by %v at the end, want %s", failback, got, want)
	}
	noFailures(t, ld.report(t, "failback "+string(failback)+": restart of the speaker on "+first))
}

// speakerPod returns the speaker pod on node (the newest if two).
func (c *cluster) speakerPod(t *testing.T, node string) corev1.Pod {
	t.Helper()
	pods, err := c.kube.CoreV1().Pods(beaconNS).List(context.Background(), metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/component=speaker", FieldSelector: "spec.nodeName=" + node,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 {
		t.Fatalf("no speaker pod on %s", node)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return b.CreationTimestamp.Compare(a.CreationTimestamp.Time) })
	return pods.Items[0]
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
		}
	}
	return false
}
