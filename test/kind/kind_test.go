package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const beaconNS = "beacon-system"

// TestChartPods: the chart's own pods run as the chart ships them.
func TestChartPods(t *testing.T) {
	c := need(t)
	ctx := context.Background()

	// A speaker per worker; per node where it stands in for kube-proxy
	// (kind-up sets speaker.tolerateControlPlane then).
	onControlPlane := c.releaseValues(t).Speaker.TolerateControlPlane
	workers := 0
	nodes, err := c.kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp || onControlPlane {
			workers++
		}
	}
	eventually(t, 2*time.Minute, "every speaker and both controllers ready", func() error {
		dss, err := c.kube.AppsV1().DaemonSets(beaconNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		deps, err := c.kube.AppsV1().Deployments(beaconNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(dss.Items) != 1 || len(deps.Items) != 1 {
			return fmt.Errorf("want 1 DaemonSet and 1 Deployment in %s, got %d and %d", beaconNS, len(dss.Items), len(deps.Items))
		}
		ds, dep := dss.Items[0].Status, deps.Items[0].Status
		if int(ds.DesiredNumberScheduled) != workers || ds.NumberReady != ds.DesiredNumberScheduled {
			return fmt.Errorf("speakers: %d of %d ready, want one per worker (control planes too: %v): %d", ds.NumberReady, ds.DesiredNumberScheduled, onControlPlane, workers)
		}
		if dep.ReadyReplicas != 2 {
			return fmt.Errorf("controller: %d ready replicas, want 2", dep.ReadyReplicas)
		}
		return nil
	})

	// What helm installed is the chart rendered: every running pod must have
	// exactly those security contexts.
	manifest, err := run(ctx, c.env["HELM"], "--kubeconfig", c.env["KUBECONFIG"], "get", "manifest", "beacon", "-n", beaconNS)
	if err != nil {
		t.Fatal(err)
	}
	shipped := map[string]corev1.PodSpec{} // by app.kubernetes.io/component
	for _, doc := range strings.Split(manifest, "\n---") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil || (meta.Kind != "DaemonSet" && meta.Kind != "Deployment") {
			continue
		}
		var w struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &w); err != nil {
			t.Fatal(err)
		}
		shipped[meta.Kind] = w.Spec.Template.Spec
	}
	if len(shipped) != 2 {
		t.Fatalf("helm get manifest: want a DaemonSet and a Deployment, got %v", slices.Collect(mapKeys(shipped)))
	}
	pods, err := c.kube.CoreV1().Pods(beaconNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		kind := ""
		for _, o := range p.OwnerReferences {
			switch o.Kind {
			case "DaemonSet":
				kind = "DaemonSet"
			case "ReplicaSet":
				kind = "Deployment"
			}
		}
		want, ok := shipped[kind]
		if !ok {
			t.Errorf("pod %s: not from the chart's DaemonSet or Deployment", p.Name)
			continue
		}
		// The API server stores an unset pod securityContext as an empty one.
		wantPod := want.SecurityContext
		if wantPod == nil {
			wantPod = &corev1.PodSecurityContext{}
		}
		if !reflect.DeepEqual(p.Spec.SecurityContext, wantPod) {
			t.Errorf("pod %s: pod securityContext %+v, chart ships %+v", p.Name, p.Spec.SecurityContext, want.SecurityContext)
		}
		for _, wc := range want.Containers {
			i := slices.IndexFunc(p.Spec.Containers, func(pc corev1.Container) bool { return pc.Name == wc.Name })
			if i < 0 {
				t.Errorf("pod %s: no container %s", p.Name, wc.Name)
				continue
			}
			if got := p.Spec.Containers[i].SecurityContext; !reflect.DeepEqual(got, wc.SecurityContext) {
				t.Errorf("pod %s container %s: securityContext %s, chart ships %s", p.Name, wc.Name, asJSON(got), asJSON(wc.SecurityContext))
			}
		}
		// No error in the logs (klog's error lines start with E and the date).
		for _, ctr := range p.Spec.Containers {
			raw, err := c.kube.CoreV1().Pods(beaconNS).GetLogs(p.Name, &corev1.PodLogOptions{Container: ctr.Name}).DoRaw(ctx)
			if err != nil {
				t.Errorf("logs of %s/%s: %v", p.Name, ctr.Name, err)
				continue
			}
			for _, line := range strings.Split(string(raw), "\n") {
				if klogError.MatchString(line) && !leaseConflict.MatchString(line) && !leaseNotYetGranted.MatchString(line) {
					t.Errorf("%s/%s logged an error: %s", p.Name, ctr.Name, line)
				}
			}
		}
	}
}

var klogError = regexp.MustCompile(`^E\d{4} `)

// leaseConflict is client-go's leader election logging, at error level, an
// optimistic-concurrency conflict on the Lease: two replicas renewing or
// acquiring at the same moment. The loser retries at the next retry period;
// it is not a fault of Beacon's (the failover tests check the behaviour).
var leaseConflict = regexp.MustCompile(`leaderelection\.go:\d+\] "Failed to update lease" err="Operation cannot be fulfilled on leases\.coordination\.k8s\.io`)

// leaseNotYetGranted is client-go's leader election logging, at error
// level, that it may not create the Lease yet: helm writes the Role and
// RoleBinding just before the Deployment, and on a busy API server its
// authorizer can see the binding a moment after the first pod asks. Only
// the first creation of the Lease logs this; the elector retries, and the
// leader tests check that a leader is elected.
var leaseNotYetGranted = regexp.MustCompile(`leaderelection\.go:\d+\] "Error initially creating lease lock" err="leases\.coordination\.k8s\.io is forbidden`)

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func asJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestL2: kubectl expose gets an address from the LAN pool, kubectl shows it
// like the documentation does, and the host on the LAN reaches it by ARP.
func TestL2(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	ip := c.expose(t, ns, "web")
	if !inRange(t, c.env["LAN_POOL"], ip) {
		t.Fatalf("EXTERNAL-IP %s not in the LAN pool %s", ip, c.env["LAN_POOL"])
	}

	out, err := c.kubectl(ctx, "-n", ns, "get", "svc", "web")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "EXTERNAL-IP") || !strings.Contains(lines[0], "PORT(S)") ||
		!regexp.MustCompile(`^web\s+LoadBalancer\s+\S+\s+`+regexp.QuoteMeta(ip.String())+`\s+80:3\d{4}/TCP\s`).MatchString(lines[1]) {
		t.Errorf("kubectl get svc web:\n%s\nwant EXTERNAL-IP %s and PORT(S) 80:3xxxx/TCP", out, ip)
	}

	// The host is a station on the nodes' LAN: it resolves the address by
	// ARP to one node's MAC and gets an answer from an echo pod.
	t.Logf("host -> %s: %s", ip, strings.TrimSpace(c.httpFromHost(t, ip)))
	if n := c.announcer(t, ip); n == "" {
		t.Errorf("the host's neighbour entry for %s holds no node's MAC", ip)
	} else {
		t.Logf("%s is announced by %s", ip, n)
	}
}

// routerNextHops returns the next hops of ip's host route in the router's
// RIB (what zebra installs) as a sorted list.
func (c *cluster) routerNextHops(ctx context.Context, ip netip.Addr) ([]netip.Addr, error) {
	host := netip.PrefixFrom(ip, ip.BitLen()).String()
	show := "show ip route "
	if ip.Is6() {
		show = "show ipv6 route "
	}
	out, err := c.exec(ctx, c.env["ROUTER"], "vtysh", "-c", show+host+" json")
	if err != nil {
		return nil, err
	}
	var routes map[string][]struct {
		Protocol  string `json:"protocol"`
		Installed bool   `json:"installed"`
		Nexthops  []struct {
			IP     string `json:"ip"`
			Active bool   `json:"active"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("show ip route: %w: %s", err, out)
	}
	var hops []netip.Addr
	for _, r := range routes[host] {
		if r.Protocol != "bgp" || !r.Installed {
			continue
		}
		for _, nh := range r.Nexthops {
			if a, err := netip.ParseAddr(nh.IP); err == nil && nh.Active {
				hops = append(hops, a)
			}
		}
	}
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, nil
}

// wantNextHops waits until the router's next hops for ip are exactly the
// addresses (of ip's family) of the given nodes.
func (c *cluster) wantNextHops(t *testing.T, ip netip.Addr, nodes map[string]bool) {
	t.Helper()
	ips := c.nodeAddrs(t, ip.Is6())
	var want []netip.Addr
	for n := range nodes {
		want = append(want, ips[n])
	}
	slices.SortFunc(want, netip.Addr.Compare)
	eventually(t, time.Minute, fmt.Sprintf("router next hops for %s = %v", ip, want), func() error {
		got, err := c.routerNextHops(context.Background(), ip)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("next hops %v", got)
		}
		return nil
	})
}

// clientGet fetches http://ip/ from the client behind the router.
func (c *cluster) clientGet(t *testing.T, ip netip.Addr) (reply string) {
	t.Helper()
	eventually(t, time.Minute, "HTTP from the client to "+ip.String(), func() error {
		out, err := c.exec(context.Background(), c.env["CLIENT"], "curl", "-sS", "--max-time", "2", "http://"+netip.AddrPortFrom(ip, 80).String()+"/")
		if err != nil {
			return err
		}
		if _, err := parseReply(out); err != nil {
			return err
		}
		reply = out
		return nil
	})
	return reply
}

func workerNodes(t *testing.T, c *cluster) map[string]bool {
	t.Helper()
	nodes, err := c.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := map[string]bool{}
	for _, n := range nodes.Items {
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp {
			w[n.Name] = true
		}
	}
	return w
}

// TestBGP: a Service from the routed pool has one ECMP next hop per speaker
// node at the router, BFD is up with every node, and the client behind the
// router reaches it.
func TestBGP(t *testing.T) {
	c := need(t)
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	ip := c.expose(t, ns, "routed", `--overrides={"apiVersion":"v1","metadata":{"annotations":{"beaconlb.io/pool":"routed"}}}`)
	if !netip.MustParsePrefix(c.env["BGP_POOL"]).Contains(ip) {
		t.Fatalf("EXTERNAL-IP %s not in the routed pool %s", ip, c.env["BGP_POOL"])
	}
	workers := workerNodes(t, c)
	c.wantNextHops(t, ip, workers)
	c.wantBFDUp(t, workers, false)
	t.Logf("client -> %s: %s", ip, strings.TrimSpace(c.clientGet(t, ip)))
}

// wantBFDUp waits until the router has a BFD session up with each of the
// nodes' addresses of one family.
func (c *cluster) wantBFDUp(t *testing.T, nodes map[string]bool, ipv6 bool) {
	t.Helper()
	ctx := context.Background()
	ips := c.nodeAddrs(t, ipv6)
	eventually(t, time.Minute, "BFD up with every speaker node", func() error {
		out, err := c.exec(ctx, c.env["ROUTER"], "vtysh", "-c", "show bfd peers json")
		if err != nil {
			return err
		}
		var peers []struct {
			Peer   string `json:"peer"`
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(out), &peers); err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		up := map[string]bool{}
		for _, p := range peers {
			if p.Status == "up" {
				up[p.Peer] = true
			}
		}
		for n := range nodes {
			if !up[ips[n].String()] {
				return fmt.Errorf("no BFD session up with %s (%s): %s", n, ips[n], out)
			}
		}
		return nil
	})
}

// TestLocalPolicy: with externalTrafficPolicy Local the pod sees the
// client's own address, and only nodes with a ready pod are announced;
// announcements follow the pods as the Deployment scales.
func TestLocalPolicy(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	ip := c.expose(t, ns, "local", `--overrides={"apiVersion":"v1","metadata":{"annotations":{"beaconlb.io/pool":"routed"}},"spec":{"externalTrafficPolicy":"Local"}}`)
	c.wantNextHops(t, ip, c.readyNodes(t, ns))

	r, err := parseReply(c.clientGet(t, ip))
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParseAddr(c.env["CLIENT_IP"]); r.Client.Addr() != want {
		t.Errorf("pod %s saw client %s, want the client's own address %s", r.Pod, r.Client, want)
	}

	for _, n := range []int32{1, 2} {
		if _, err := c.kubectl(ctx, "-n", ns, "scale", "deployment", "echo", fmt.Sprintf("--replicas=%d", n)); err != nil {
			t.Fatal(err)
		}
		c.waitReady(t, ns, n)
		ready := c.readyNodes(t, ns)
		if len(ready) != int(n) {
			t.Fatalf("%d ready pods on %d nodes, want one per node", n, len(ready))
		}
		c.wantNextHops(t, ip, ready)
		t.Logf("%d pod(s) ready on %v: router next hops follow", n, slices.Collect(mapKeys(ready)))
	}
}

// TestExternalIPsGuard: the chart's admission policy refuses a Service that
// claims an externalIP outside every pool that allows it.
func TestExternalIPsGuard(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := c.namespace(t)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "hostile", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Ports:       []corev1.ServicePort{{Port: 80}},
			ExternalIPs: []string{c.env["ROUTER_IP"]},
		},
	}
	_, err := c.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "CVE-2020-8554") {
		t.Fatalf("creating a Service with externalIPs [%s]: err = %v, want a refusal by Beacon's guard", c.env["ROUTER_IP"], err)
	}
	t.Logf("refused: %v", err)
}
