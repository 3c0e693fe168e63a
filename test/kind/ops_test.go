package kind

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// chartDir is the chart kind-up installed, from this package's directory.
var chartDir = filepath.Join("..", "..", "charts", "beacon")

// helm runs helm on the cluster with a deadline long enough for --wait.
func (c *cluster) helm(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	return runUntil(ctx, c.env["HELM"], append([]string{"--kubeconfig", c.env["KUBECONFIG"], "-n", beaconNS}, args...)...)
}

// waitBeacon waits until every speaker and both controllers are updated and
// ready, so the next step starts from a whole installation.
func (c *cluster) waitBeacon(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, r := range []string{"daemonset/beacon-speaker", "deployment/beacon-controller"} {
		if _, err := c.kubectl(ctx, "-n", beaconNS, "rollout", "status", r, "--timeout=110s"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSpeakerRollingRestart: kubectl rollout restart of the speakers, with
// the chart's update strategy, fails no request to an L2 or a BGP address.
func TestSpeakerRollingRestart(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	c.waitBeacon(t)
	s := c.newSite(t, 3)
	before := c.addresses(t)
	ld := c.startLoad(t, s)
	start := time.Now()
	if _, err := c.kubectl(ctx, "-n", beaconNS, "rollout", "restart", "daemonset/beacon-speaker"); err != nil {
		t.Fatal(err)
	}
	c.waitBeacon(t)
	t.Logf("rollout of %d speakers took %v", len(workerNodes(t, c)), time.Since(start).Round(time.Second))
	c.wantNextHops(t, s.bgp, workerNodes(t, c))
	ld.settle(t, 3*time.Second)
	noFailures(t, ld.report(t, "speaker rollout restart"))
	sameAddresses(t, before, c.addresses(t))
}

// TestControllerLeaderDeleted: with the leading controller's pod deleted, a
// Service created right after gets its address within 5 s from the other
// replica, and no Service's address changes.
func TestControllerLeaderDeleted(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	c.waitBeacon(t)
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 1)
	c.expose(t, ns, "first")
	before := c.addresses(t)

	lease, err := c.kube.CoordinationV1().Leases(beaconNS).Get(ctx, "beacon-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leader := ""
	if lease.Spec.HolderIdentity != nil {
		leader = *lease.Spec.HolderIdentity
	}
	if _, err := c.kube.CoreV1().Pods(beaconNS).Get(ctx, leader, metav1.GetOptions{}); err != nil {
		t.Fatalf("the Lease's holder %q is no controller pod: %v", leader, err)
	}
	if err := c.kube.CoreV1().Pods(beaconNS).Delete(ctx, leader, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "second", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "echo"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(5000)}},
		},
	}
	if _, err := c.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	var took time.Duration
	eventually(t, 30*time.Second, "an address for Service second", func() error {
		s, err := c.kube.CoreV1().Services(ns).Get(ctx, "second", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(s.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Errorf("no ingress yet")
		}
		took = time.Since(created)
		return nil
	})
	t.Logf("leader %s deleted; Service created %v later got its address %v after its creation",
		leader, created.Sub(deleted).Round(time.Millisecond), took.Round(100*time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("Service created after the leader's pod was deleted got its address after %v, want <= 5s", took)
	}
	// The deleted pod may still hold the Lease (and may even have given the
	// address) until its SIGTERM arrives; then the other replica takes over.
	eventually(t, 30*time.Second, "the Lease held by another replica than "+leader, func() error {
		lease, err := c.kube.CoordinationV1().Leases(beaconNS).Get(ctx, "beacon-controller", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if h := lease.Spec.HolderIdentity; h == nil || *h == "" || *h == leader {
			return fmt.Errorf("holder %q", ptr.Deref(h, ""))
		}
		return nil
	})
	sameAddresses(t, before, c.addresses(t))
	c.waitBeacon(t)
	sameAddresses(t, before, c.addresses(t))
}

// TestHelmUpgrade: helm upgrade to another image tag rolls every pod of the
// chart while traffic runs, fails no request and changes no address.
func TestHelmUpgrade(t *testing.T) {
	c := need(t)
	if c.env["UPGRADE_IMAGE"] == "" {
		t.Skip("kind-up wrote no UPGRADE_IMAGE= line (an older kind-up): re-run make kind-up")
	}
	ctx := context.Background()
	c.waitBeacon(t)
	s := c.newSite(t, 3)
	before := c.addresses(t)

	ds, err := c.kube.AppsV1().DaemonSets(beaconNS).Get(ctx, "beacon-speaker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Both tags are the same build; each run upgrades to the one not running.
	to := c.env["UPGRADE_IMAGE"]
	if ds.Spec.Template.Spec.Containers[0].Image == to {
		to = c.env["IMAGE"]
	}
	tag := to[strings.LastIndex(to, ":")+1:]

	ld := c.startLoad(t, s)
	start := time.Now()
	if _, err := c.helm(ctx, "upgrade", "beacon", chartDir, "--reuse-values", "--set", "image.tag="+tag, "--wait", "--timeout", "5m"); err != nil {
		t.Fatal(err)
	}
	c.waitBeacon(t)
	t.Logf("helm upgrade to %s took %v", to, time.Since(start).Round(time.Second))
	c.wantNextHops(t, s.bgp, workerNodes(t, c))
	ld.settle(t, 3*time.Second)
	noFailures(t, ld.report(t, "helm upgrade"))
	sameAddresses(t, before, c.addresses(t))

	pods, err := c.kube.CoreV1().Pods(beaconNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && p.Spec.Containers[0].Image != to {
			t.Errorf("pod %s runs %s after the upgrade, want %s", p.Name, p.Spec.Containers[0].Image, to)
		}
	}
}

// TestDrain: kubectl drain of the node announcing an L2 address fails no
// request to Services whose pods run on other nodes (the speaker, a
// DaemonSet pod, stays; the controller replica moves).
func TestDrain(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	c.waitBeacon(t)
	s := c.newSite(t, 3)
	// The host must have resolved the address to know its announcer.
	c.httpFromHost(t, s.l2)
	node := c.announcer(t, s.l2)

	// Move the pods off that node.
	patch := fmt.Sprintf(`{"spec":{"replicas":2,"template":{"spec":{"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/hostname","operator":"NotIn","values":[%q]}]}]}}}}}}}`, node)
	if _, err := c.kube.AppsV1().Deployments(s.ns).Patch(ctx, "echo", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, s.ns, 2)
	if c.readyNodes(t, s.ns)[node] {
		t.Fatalf("an echo pod is still ready on %s", node)
	}
	c.httpFromHost(t, s.l2)
	if n := c.announcer(t, s.l2); n != node {
		t.Logf("announcer of %s moved from %s to %s with the pods; draining %s", s.l2, node, n, n)
		node = n
	}
	before := c.addresses(t)

	ld := c.startLoad(t, s)
	t.Cleanup(func() {
		if _, err := c.kubectl(ctx, "uncordon", node); err != nil {
			t.Errorf("uncordon %s: %v", node, err)
		}
	})
	onNode, err := c.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	var evicted []string
	for _, p := range onNode.Items {
		if len(p.OwnerReferences) == 0 || p.OwnerReferences[0].Kind != "DaemonSet" {
			evicted = append(evicted, p.Namespace+"/"+p.Name)
		}
	}
	start := time.Now()
	if _, err := c.kubectl(ctx, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=100s"); err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl drain %s took %v; it evicted %d pods %v", node, time.Since(start).Round(time.Second), len(evicted), evicted)
	c.waitBeacon(t)
	ld.settle(t, 3*time.Second)
	noFailures(t, ld.report(t, "drain of "+node))
	sameAddresses(t, before, c.addresses(t))
	if n := c.announcer(t, s.l2); n != node {
		t.Logf("after the drain %s is announced by %s", s.l2, n)
	}
}

// httpFromHost waits until the host gets an echo reply from ip (either
// family) and returns it.
func (c *cluster) httpFromHost(t *testing.T, ip netip.Addr) string {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + netip.AddrPortFrom(ip, 80).String() + "/"
	var reply string
	eventually(t, time.Minute, "HTTP from the host to "+url, func() error {
		resp, err := hc.Get(url)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if _, err := parseReply(string(b)); err != nil {
			return err
		}
		reply = string(b)
		return nil
	})
	return reply
}
