package lab_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/echo"
	"github.com/beaconlb/beacon/lab/labtest"
)

// labRanges are every range the lab may use; the root namespace must have
// no address or route in them.
var labRanges = []netip.Prefix{
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func inLabRanges(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	a = a.Unmap()
	for _, p := range labRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// rootLabState lists the test's (root) namespace addresses and routes that
// fall in a lab range. The lab must not change it. (It need not be empty:
// this machine's own uplink may use a documentation range too.)
func rootLabState(t *testing.T) string {
	t.Helper()
	var out []string
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if inLabRanges(a.IP) {
			out = append(out, "addr "+a.IPNet.String())
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst != nil && inLabRanges(r.Dst.IP) {
			out = append(out, "route "+r.Dst.String())
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func assertRootUntouched(t *testing.T, before string) {
	t.Helper()
	if now := rootLabState(t); now != before {
		t.Errorf("the lab changed the root namespace's addresses/routes in lab ranges:\nbefore:\n%s\nnow:\n%s", before, now)
	}
}

// assertGone checks that nothing of the inventory taken while the lab was
// up survives, and that no lab namespace, link or state is left.
func assertGone(t *testing.T, before *lab.Inventory) {
	t.Helper()
	surv, err := before.Survivors()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range surv {
		t.Errorf("process survived: %s pid %d (%s)", p.Name, p.Pid, p.Netns)
	}
	after, err := lab.TakeInventory()
	if err != nil {
		t.Fatal(err)
	}
	if !after.Empty() {
		t.Errorf("leftovers: %v", after)
	}
	// The same through iproute2. (Other tests' beacon-t-* names may exist.)
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && lab.IsLabName(f[0]) {
			t.Errorf("ip netns list still shows %s", f[0])
		}
	}
	out, err = exec.Command("ip", "-o", "link", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip link: %v %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		// "2: name@peer: <...>"
		if f := strings.Fields(line); len(f) > 1 && lab.IsLabName(strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]) {
			t.Errorf("ip link still shows %s", f[1])
		}
	}
}

func takeInventory(t *testing.T) *lab.Inventory {
	t.Helper()
	inv, err := lab.TakeInventory()
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Netns) == 0 || len(inv.Processes) == 0 || !inv.StateDir {
		t.Fatalf("inventory of a running lab looks empty: %v", inv)
	}
	return inv
}

func httpReply(ctx context.Context, t *testing.T, l *lab.Lab, from string, to netip.Addr, path string) echo.Reply {
	t.Helper()
	url := "http://" + net.JoinHostPort(to.String(), strconv.Itoa(lab.EchoPort)) + path
	req, err := httpGet(ctx, l, from, url)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, from, err)
	}
	r, err := echo.ParseReply(req)
	if err != nil {
		t.Fatalf("GET %s from %s: %v", url, from, err)
	}
	return r
}

func httpGet(ctx context.Context, l *lab.Lab, from, url string) (string, error) {
	req, err := newRequest(ctx, url)
	if err != nil {
		return "", err
	}
	resp, err := l.HTTPClient(from).Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func udpReply(ctx context.Context, t *testing.T, l *lab.Lab, from string, to netip.Addr) echo.Reply {
	t.Helper()
	addr := net.JoinHostPort(to.String(), strconv.Itoa(lab.EchoPort))
	c, err := l.Dialer(from)(ctx, "udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	// The first datagram may wait for neighbour resolution: retry a few
	// times, each with its own deadline.
	var lastErr error
	for range 5 {
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			lastErr = err
			continue
		}
		r, err := echo.ParseReply(line)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Fatalf("UDP %s from %s: no answer: %v", addr, from, lastErr)
	return echo.Reply{}
}

func TestLabSmoke(t *testing.T) {
	start := time.Now()
	labtest.Require(t)
	root := rootLabState(t)
	l := labtest.Up(t, lab.Config{Nodes: 2, PodsPerNode: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	assertRootUntouched(t, root)

	// The API server answers from the root namespace through RESTConfig.
	nodes, err := l.Kube().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 2 {
		t.Fatalf("want 2 nodes, got %d", len(nodes.Items))
	}
	for i, n := range nodes.Items {
		want := l.Nodes()[i]
		var ips []string
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ips = append(ips, a.Address)
			}
		}
		if n.Name != want.Name || fmt.Sprint(ips) != fmt.Sprint([]string{want.IPv4.String(), want.IPv6.String()}) {
			t.Errorf("node %s addresses %v, want %s %v %v", n.Name, ips, want.Name, want.IPv4, want.IPv6)
		}
	}

	// client-lan reaches every pod directly (v4, v6; HTTP and UDP) and the
	// pod sees client-lan's own address.
	cl := l.Topology().ClientLAN
	for _, p := range l.Pods() {
		for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
			want := cl.IPv4
			if a.Is6() {
				want = cl.IPv6
			}
			for _, r := range []echo.Reply{httpReply(ctx, t, l, lab.ClientLAN, a, "/"), udpReply(ctx, t, l, lab.ClientLAN, a)} {
				if r.Pod != p.Name || r.Node != p.Node || r.Client.Addr() != want {
					t.Errorf("%s via %v: reply %+v, want pod %s node %s client %v", p.Name, a, r, p.Name, p.Node, want)
				}
			}
		}
	}
	// curl through Exec, and node1 to a pod of node2 through the node routes.
	p2 := l.Pods()[1]
	out, err := l.Exec(ctx, lab.ClientLAN, "curl", "-sS", "-g", "-m", "5",
		"http://"+net.JoinHostPort(p2.IPv6.String(), strconv.Itoa(lab.EchoPort))+"/healthz")
	if err != nil || string(out) != "ok\n" {
		t.Errorf("curl healthz: %q %v", out, err)
	}
	if r := httpReply(ctx, t, l, "node1", p2.IPv4, "/"); r.Pod != p2.Name || r.Client.Addr() != l.Nodes()[0].IPv4 {
		t.Errorf("node1 -> %s: %+v", p2.Name, r)
	}

	// EndpointSlices follow a Service and the pod's state.
	p1 := l.Pods()[0]
	policy := corev1.IPFamilyPolicyPreferDualStack
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: l.Namespace()},
		Spec: corev1.ServiceSpec{
			Selector:       map[string]string{"app": p1.Name},
			IPFamilyPolicy: &policy,
			Ports: []corev1.ServicePort{
				{Name: "web", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString(lab.PortNameHTTP)},
				{Name: "dgram", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString(lab.PortNameUDP)},
			},
		},
	}
	if _, err := l.Kube().CoreV1().Services(l.Namespace()).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	type conds struct{ ready, serving, terminating bool }
	waitEndpoint := func(what string, want conds) {
		t.Helper()
		var last string
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			ok, desc := checkSlices(ctx, l, p1, want.ready, want.serving, want.terminating)
			if ok {
				return
			}
			last = desc
			select {
			case <-ctx.Done():
				t.Fatalf("%s: EndpointSlices never matched: %s", what, last)
			case <-tick.C:
			}
		}
	}
	waitEndpoint("ready", conds{true, true, false})
	if err := l.SetPodReady(ctx, p1.Name, false); err != nil {
		t.Fatal(err)
	}
	waitEndpoint("not ready", conds{false, false, false})
	if err := l.SetPodReady(ctx, p1.Name, true); err != nil {
		t.Fatal(err)
	}
	waitEndpoint("ready again", conds{true, true, false})
	if err := l.TerminatePod(ctx, p1.Name); err != nil {
		t.Fatal(err)
	}
	waitEndpoint("terminating", conds{false, true, true})
	if err := l.ResetPod(ctx, p1.Name); err != nil {
		t.Fatal(err)
	}
	waitEndpoint("reset", conds{true, true, false})

	// Stop and start an echo server.
	if err := l.StopEcho(p1.Name); err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(p1.IPv4.String(), strconv.Itoa(lab.EchoPort)) + "/"
	if _, err := httpGet(ctx, l, lab.ClientLAN, url); err == nil {
		t.Error("stopped echo server still answers")
	}
	if err := l.StartEcho(ctx, p1.Name); err != nil {
		t.Fatal(err)
	}
	if r := httpReply(ctx, t, l, lab.ClientLAN, p1.IPv4, "/"); r.Pod != p1.Name {
		t.Errorf("restarted echo: %+v", r)
	}

	// Down removes every namespace, link and process.
	inv := takeInventory(t)
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, inv)
	assertRootUntouched(t, root)
	t.Logf("whole smoke test: %v", time.Since(start).Round(time.Millisecond))
}

// checkSlices reports whether the Service "smoke" has one v4 and one v6
// slice, each with exactly pod p (address, node) in the wanted state and
// the named ports resolved to 5000.
func checkSlices(ctx context.Context, l *lab.Lab, p lab.Pod, ready, serving, terminating bool) (bool, string) {
	list, err := l.Kube().DiscoveryV1().EndpointSlices(l.Namespace()).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=smoke",
	})
	if err != nil {
		return false, err.Error()
	}
	if len(list.Items) != 2 {
		return false, fmt.Sprintf("%d slices", len(list.Items))
	}
	for _, s := range list.Items {
		want := p.IPv4.String()
		if s.AddressType == discoveryv1.AddressTypeIPv6 {
			want = p.IPv6.String()
		}
		if len(s.Endpoints) != 1 {
			return false, fmt.Sprintf("%s: %d endpoints", s.Name, len(s.Endpoints))
		}
		e := s.Endpoints[0]
		c := e.Conditions
		if e.Addresses[0] != want || e.NodeName == nil || *e.NodeName != p.Node ||
			c.Ready == nil || *c.Ready != ready || c.Serving == nil || *c.Serving != serving ||
			c.Terminating == nil || *c.Terminating != terminating {
			return false, fmt.Sprintf("%s: endpoint %v node %v ready %v serving %v terminating %v",
				s.Name, e.Addresses, deref(e.NodeName), deref(c.Ready), deref(c.Serving), deref(c.Terminating))
		}
		ports := map[string]string{}
		for _, pt := range s.Ports {
			ports[fmt.Sprint(deref(pt.Name))] = fmt.Sprintf("%s/%d", deref(pt.Protocol), deref(pt.Port))
		}
		if ports["web"] != "TCP/5000" || ports["dgram"] != "UDP/5000" {
			return false, fmt.Sprintf("%s: ports %v", s.Name, ports)
		}
	}
	return true, ""
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestDownAllRemovesLeftovers: the owner of a lab vanishes without Down
// (its Lab value is simply not used again) and DownAll, which works from
// names and /proc alone like `beacon-lab down`, removes everything. The
// registered cleanup then only releases the lock.
func TestDownAllRemovesLeftovers(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 1, PodsPerNode: 1})
	inv := takeInventory(t)
	if len(inv.Processes) < 3 { // etcd, kube-apiserver, one echo server
		t.Fatalf("inventory: %v", inv)
	}
	_ = l // abandoned
	if err := lab.DownAll(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, inv)
}

func newRequest(ctx context.Context, url string) (*http.Request, error) {
	return http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
}
