package kind

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestL2DualStack: a RequireDualStack Service gets an IPv4 and an IPv6
// address from the LAN pool, kubectl shows both, and the host on the LAN
// reaches both: IPv4 resolved by ARP and IPv6 by NDP to a node's MAC.
func TestL2DualStack(t *testing.T) {
	c := need(t)
	if c.env["LAN_POOL6"] == "" {
		t.Skip("IPv4-only cluster (its env file has no LAN_POOL6= line): make kind-up with KIND_IP_FAMILY=dual")
	}
	ctx := context.Background()
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	ip4 := c.expose(t, ns, "web", `--overrides={"apiVersion": "v1", "spec": {"ipFamilyPolicy": "RequireDualStack"}}`)
	ip6 := c.ingress6(t, ns, "web")
	if !inRange(t, c.env["LAN_POOL"], ip4) {
		t.Errorf("IPv4 EXTERNAL-IP %s not in the LAN pool %s", ip4, c.env["LAN_POOL"])
	}
	if !inRange(t, c.env["LAN_POOL6"], ip6) {
		t.Errorf("IPv6 EXTERNAL-IP %s not in the LAN pool %s", ip6, c.env["LAN_POOL6"])
	}

	out, err := c.kubectl(ctx, "-n", ns, "get", "svc", "web")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^web\s+LoadBalancer\s+\S+\s+`+
		regexp.QuoteMeta(ip4.String()+","+ip6.String())+`\s+80:3\d{4}/TCP\s`).MatchString(lines[1]) {
		t.Errorf("kubectl get svc web:\n%s\nwant EXTERNAL-IP %s,%s and PORT(S) 80:3xxxx/TCP", out, ip4, ip6)
	}

	for _, ip := range []netip.Addr{ip4, ip6} {
		t.Logf("host -> %s: %s", ip, strings.TrimSpace(c.httpFromHost(t, ip)))
		// The host's neighbour entry (ARP or NDP) holds one node's MAC.
		if n := c.announcer(t, ip); n == "" {
			t.Errorf("the host's neighbour entry for %s holds no node's MAC", ip)
		} else {
			t.Logf("%s is announced by %s", ip, n)
		}
	}
}

// ingress6 waits until the dual-stack Service has an IPv6 ingress address,
// and returns it.
func (c *cluster) ingress6(t *testing.T, ns, name string) netip.Addr {
	t.Helper()
	var ip6 netip.Addr
	eventually(t, time.Minute, "IPv6 EXTERNAL-IP of "+name, func() error {
		svc, err := c.kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if want := []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}; fmt.Sprint(svc.Spec.IPFamilies) != fmt.Sprint(want) {
			return fmt.Errorf("ipFamilies %v, want %v", svc.Spec.IPFamilies, want)
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil && a.Is6() {
				ip6 = a
				return nil
			}
		}
		return fmt.Errorf("no IPv6 ingress: %+v", svc.Status.LoadBalancer)
	})
	return ip6
}

// TestBGPDualStack: a RequireDualStack Service of the routed pool has, at
// the router, one ECMP next hop per speaker node for each family (IPv6
// routes over the IPv6 sessions), BFD is up on the IPv6 sessions, and the
// client behind the router reaches both addresses.
func TestBGPDualStack(t *testing.T) {
	c := need(t)
	if c.env["BGP_POOL6"] == "" || c.env["ROUTER_IP6"] == "" || c.env["CLIENT_IP6"] == "" {
		t.Skip("IPv4-only cluster (its env file has no BGP_POOL6=, ROUTER_IP6= or CLIENT_IP6= line): make kind-up with KIND_IP_FAMILY=dual")
	}
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	ip4 := c.expose(t, ns, "routed", `--overrides={"apiVersion": "v1", "metadata": {"annotations": {"beaconlb.io/pool": "routed"}}, "spec": {"ipFamilyPolicy": "RequireDualStack"}}`)
	ip6 := c.ingress6(t, ns, "routed")
	if !netip.MustParsePrefix(c.env["BGP_POOL"]).Contains(ip4) {
		t.Errorf("IPv4 EXTERNAL-IP %s not in the routed pool %s", ip4, c.env["BGP_POOL"])
	}
	if !netip.MustParsePrefix(c.env["BGP_POOL6"]).Contains(ip6) {
		t.Errorf("IPv6 EXTERNAL-IP %s not in the routed pool %s", ip6, c.env["BGP_POOL6"])
	}
	workers := workerNodes(t, c)
	c.wantNextHops(t, ip4, workers)
	c.wantNextHops(t, ip6, workers)
	c.wantBFDUp(t, workers, true)
	for _, ip := range []netip.Addr{ip4, ip6} {
		t.Logf("client -> %s: %s", ip, strings.TrimSpace(c.clientGet(t, ip)))
	}
}
