package kind

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// TestUninstall follows docs/install.md's uninstall procedure and checks
// that it leaves nothing behind: no Beacon nftables table, hand-off rule or
// route, pool address or neighbour entry on any node, no route at the
// router, no Service holding Beacon's finalizer, no CRD; Services keep
// working through kube-proxy (without kube-proxy, where Beacon served
// them, their NodePorts stop answering). Then it installs Beacon again as kind-up
// did, so it runs last and leaves the cluster as it found it.
func TestUninstall(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	c.waitBeacon(t)
	s := c.newSite(t, 1)
	nodePort := func() int32 {
		svc, err := c.kube.CoreV1().Services(s.ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return svc.Spec.Ports[0].NodePort
	}()
	values, err := c.helm(ctx, "get", "values", "beacon", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	valuesFile := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.reinstall(t, valuesFile) })

	// What the checks below look for is there before: they can fail.
	for node := range workerNodes(t, c) {
		if left := c.leftovers(t, node); len(left) == 0 {
			t.Fatalf("%s holds no Beacon state before the uninstall: the check cannot see it", node)
		}
	}

	// 1. Beacon releases every address while it still runs: each
	// LoadBalancer Service becomes a NodePort Service (same node ports), so
	// Beacon drops its ingress and finalizer and the speakers withdraw.
	start := time.Now()
	svcs, err := c.kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range svcs.Items {
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		if _, err := c.kubectl(ctx, "-n", svc.Namespace, "patch", "service", svc.Name, "-p", `{"spec":{"type":"NodePort"}}`); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, time.Minute, "no Service with Beacon's address or finalizer", func() error {
		svcs, err := c.kube.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, svc := range svcs.Items {
			if len(svc.Status.LoadBalancer.Ingress) > 0 || slices.Contains(svc.Finalizers, controller.Finalizer) {
				return fmt.Errorf("%s/%s: ingress %v, finalizers %v", svc.Namespace, svc.Name, svc.Status.LoadBalancer.Ingress, svc.Finalizers)
			}
		}
		return nil
	})
	// 2. Every speaker turns cleaner: the nodes' kernels forget Beacon.
	if _, err := c.helm(ctx, "upgrade", "beacon", chartDir, "--reuse-values", "--set", "speaker.cleanup=true", "--wait", "--timeout", "5m"); err != nil {
		t.Fatal(err)
	}
	// helm's --wait counts a DaemonSet ready with maxUnavailable pods
	// not Ready: a node's cleaner may not have finished.
	if _, err := c.kubectl(ctx, "-n", beaconNS, "rollout", "status", "daemonset/beacon-speaker", "--timeout=5m"); err != nil {
		t.Fatal(err)
	}
	// 3. The release goes, then the CRDs (and with them every Beacon
	// object: pools, advertisements, peers, reports).
	if _, err := c.helm(ctx, "uninstall", "beacon", "--wait", "--timeout", "5m"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.kubectl(ctx, "delete", "-f", filepath.Join(chartDir, "crds"), "--wait"); err != nil {
		t.Fatal(err)
	}
	// 4. helm uninstall --wait waits for the DaemonSet and Deployment, not
	// for their pods, which the garbage collector deletes afterwards.
	waitStart := time.Now()
	if _, err := c.kubectl(ctx, "-n", beaconNS, "wait", "--for=delete", "pod", "--all", "--timeout=2m"); err != nil {
		t.Fatal(err)
	}
	t.Logf("uninstall procedure took %v, of which %v waiting for the pods to go",
		time.Since(start).Round(time.Second), time.Since(waitStart).Round(100*time.Millisecond))

	for node := range c.nodeIPs(t) {
		if left := c.leftovers(t, node); len(left) > 0 {
			t.Errorf("%s after the uninstall: %s", node, strings.Join(left, "; "))
		}
	}
	eventually(t, 30*time.Second, "no BGP route at the router", func() error {
		out, err := c.exec(ctx, c.env["ROUTER"], "vtysh", "-c", "show ip route bgp")
		if err != nil {
			return err
		}
		if strings.Contains(out, "B>") || strings.Contains(out, "B ") {
			return fmt.Errorf("%s", out)
		}
		return nil
	})
	pods, err := c.kube.CoreV1().Pods(beaconNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) > 0 {
		t.Errorf("%d pods left in %s", len(pods.Items), beaconNS)
	}
	if out, err := c.kubectl(ctx, "get", "crd", "-o", "name"); err != nil || strings.Contains(out, "beaconlb.io") {
		t.Errorf("CRDs after the uninstall (%v): %s", err, out)
	}

	// kube-proxy still serves the Service's NodePort, on every node.
	// Without kube-proxy Beacon served it, and nothing does now: the
	// cleaners removed its tables.
	for node, ip := range c.nodeIPs(t) {
		url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(ip, uint16(nodePort)))
		if c.env["KUBE_PROXY_MODE"] == "none" {
			eventually(t, 30*time.Second, "NodePort of "+node+" not served (no kube-proxy, Beacon gone)", func() error {
				if out, err := run(ctx, "curl", "-sS", "--max-time", "2", url); err == nil {
					return fmt.Errorf("answered: %s", out)
				}
				return nil
			})
			continue
		}
		eventually(t, 30*time.Second, "NodePort of "+node+" answering", func() error {
			out, err := run(ctx, "curl", "-sS", "--max-time", "2", url)
			if err != nil {
				return err
			}
			_, err = parseReply(out)
			return err
		})
	}
	// Nothing holds the Service: it goes at once.
	if err := c.kube.CoreV1().Services(s.ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "Service web deleted", func() error {
		_, err := c.kube.CoreV1().Services(s.ns).Get(ctx, "web", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
}

// reinstall installs Beacon and its configuration again, as kind-up did.
func (c *cluster) reinstall(t *testing.T, valuesFile string) {
	t.Helper()
	ctx := context.Background()
	// A failed run may have stopped anywhere in the procedure.
	if _, err := c.helm(ctx, "status", "beacon"); err == nil {
		if _, err := c.helm(ctx, "upgrade", "beacon", chartDir, "-f", valuesFile, "--wait", "--timeout", "5m"); err != nil {
			t.Fatalf("reinstall: %v", err)
		}
	} else if _, err := c.helm(ctx, "install", "beacon", chartDir, "-f", valuesFile, "--wait", "--timeout", "5m"); err != nil {
		t.Fatalf("reinstall: %v", err)
	}
	// The pools' addresses as kind-up lists them: the IPv6 ranges too on a
	// dual-stack cluster, which also has an IPv6 session with the router.
	pools := func(keys ...string) string {
		var q []string
		for _, k := range keys {
			if v := c.env[k]; v != "" {
				q = append(q, strconv.Quote(v))
			}
		}
		return strings.Join(q, ", ")
	}
	files := []string{"beacon-config.yaml"}
	if c.env["ROUTER_IP6"] != "" {
		files = append(files, "beacon-config-ipv6.yaml")
	}
	for _, name := range files {
		raw, err := os.ReadFile(filepath.Join("..", "..", "hack", "kind", "manifests", name))
		if err != nil {
			t.Fatal(err)
		}
		cfg := string(raw)
		for _, k := range []string{"ROUTER_IP", "ROUTER_IP6", "ROUTER_ASN", "NODE_ASN"} {
			cfg = strings.ReplaceAll(cfg, "@"+k+"@", c.env[k])
		}
		cfg = strings.ReplaceAll(cfg, "@LAN_POOLS@", pools("LAN_POOL", "LAN_POOL6"))
		cfg = strings.ReplaceAll(cfg, "@BGP_POOLS@", pools("BGP_POOL", "BGP_POOL6"))
		c.applyKept(t, cfg)
	}
	c.waitBeacon(t)
	c.serviceWritesWork(t)
}

// serviceWritesWork checks that the externalIPs guard lets an ordinary
// Service in after a reinstall, without restarting kube-apiserver. Its
// param is an ExternalIPsAllowList: with a ConfigMap param, kube-apiserver
// v1.36 stops its ConfigMap param informer for good when the uninstall
// deletes the last binding that uses ConfigMaps, and then refuses every
// Service write ("no params found") until it restarts.
func (c *cluster) serviceWritesWork(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ns := c.namespace(t)
	start := time.Now()
	refused := 0
	var last error
	eventually(t, time.Minute, "an ordinary Service admitted after the reinstall", func() error {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
		}
		_, err := c.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			refused++
			last = err
			return err
		}
		return nil
	})
	t.Logf("after the reinstall an ordinary Service was admitted %v after the first try (%d refusals before; last: %v)",
		time.Since(start).Round(100*time.Millisecond), refused, last)
	// The guard works again: a foreign externalIPs address is refused.
	foreign := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: ns},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}, ExternalIPs: []string{"198.51.100.70"}},
	}
	if _, err := c.kube.CoreV1().Services(ns).Create(ctx, foreign, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "CVE-2020-8554") {
		t.Errorf("after the reinstall, a Service with externalIPs outside every pool: got %v, want refused by the guard", err)
	}
}

// leftovers lists what Beacon left in a node's network namespace: nftables
// tables named beacon*, the hand-off policy rules and route table, and
// addresses or neighbour entries from the pools.
func (c *cluster) leftovers(t *testing.T, node string) []string {
	t.Helper()
	pid, err := run(context.Background(), c.env["ENGINE"], "inspect", "-f", "{{.State.Pid}}", node)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/" + strings.TrimSpace(pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var left []string

	nft, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := nft.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, "beacon") {
			left = append(left, "nftables table "+tb.Name)
		}
	}

	h, err := netlink.NewHandleAt(netns.NsHandle(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := h.RuleList(fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.Table == handoff.DefaultRouting || r.Priority == handoff.RulePriority {
				left = append(left, "rule "+r.String())
			}
		}
		routes, err := h.RouteListFiltered(fam, &netlink.Route{Table: handoff.DefaultRouting}, netlink.RT_FILTER_TABLE)
		if err != nil && !errors.Is(err, unix.ENOENT) {
			t.Fatal(err)
		}
		for _, r := range routes {
			left = append(left, "route "+r.String())
		}
		addrs, err := h.AddrList(nil, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if ip, ok := netip.AddrFromSlice(a.IP); ok && c.inPools(t, ip.Unmap()) {
				left = append(left, "address "+a.String())
			}
		}
		neighs, err := h.NeighList(0, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range neighs {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && c.inPools(t, ip.Unmap()) {
				left = append(left, "neighbour "+n.String())
			}
		}
	}
	return left
}

func (c *cluster) inPools(t *testing.T, ip netip.Addr) bool {
	return inRange(t, c.env["LAN_POOL"], ip) || inRange(t, c.env["BGP_POOL"], ip)
}
