package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// site is one echo Deployment behind two Services: web, with an address
// from the LAN pool (L2), and routed, with one from the routed pool (BGP).
type site struct {
	ns      string
	l2, bgp netip.Addr
}

// newSite creates the Deployment (replicas pods) and both Services, and
// waits until the router has every worker as a next hop for the BGP
// address.
func (c *cluster) newSite(t *testing.T, replicas int32) site {
	t.Helper()
	s := site{ns: c.namespace(t)}
	c.echoDeployment(t, s.ns, replicas)
	s.l2 = c.expose(t, s.ns, "web")
	s.bgp = c.expose(t, s.ns, "routed", `--overrides={"apiVersion":"v1","metadata":{"annotations":{"beaconlb.io/pool":"routed"}}}`)
	c.wantNextHops(t, s.bgp, workerNodes(t, c))
	return s
}

// clientDialer dials from the network namespace of the client container
// behind the router.
func (c *cluster) clientDialer(t *testing.T) lab.DialFunc {
	t.Helper()
	pid, err := run(context.Background(), c.env["ENGINE"], "inspect", "-f", "{{.State.Pid}}", c.env["CLIENT"])
	if err != nil {
		t.Fatal(err)
	}
	return lab.DialerPath("/proc/" + strings.TrimSpace(pid) + "/ns/net")
}

// probe is one steady stream of requests.
type probe struct {
	name  string
	p     *labtest.Prober
	mark  time.Time // counting starts here, after the warm-up
	sent0 int
	ecmp  *ecmpWatch // the router's route, for a stream through it
	neigh *macLog    // the host's neighbour entry, for a stream on the LAN
	addr  string     // the address it sends to
}

// load is steady traffic on a site: a request every 10 ms on a fresh
// connection from the host (a station on the nodes' LAN) to the L2 address,
// and from the client behind the router to the BGP address.
type load struct {
	probes []*probe
	rec    *recorder // speakers' logs and the router's routes, shown for failures
	c      *cluster
}

// startLoad starts the traffic and returns once both streams have answered
// for a second without a failure; only what follows counts.
func (c *cluster) startLoad(t *testing.T, s site) *load {
	t.Helper()
	ctx := context.Background()
	var d net.Dialer
	rec := newRecorder(t)
	c.speakerLogs(rec)
	rec.follow("router", c.env["ENGINE"], "exec", c.env["ROUTER"], "ip", "-ts", "monitor", "nexthop", "route")
	if os.Getenv("BEACON_KIND_TRACE") == "1" {
		// Every segment between the host or the router and the nodes, and
		// between nodes (hand-offs), crosses the LAN's bridge. Each node's
		// conntrack events for both addresses (BEACON_KIND_TRACE_CONNTRACK=1
		// too) say which node knew a failed connection, and since when.
		// Both cost CPU, the events enough on a small machine to starve the
		// speakers, so they are asked for.
		if br, err := run(ctx, c.env["ENGINE"], "network", "inspect", c.env["LAN_NET"], "-f", "{{.NetworkInterface}}"); err == nil {
			rec.follow("lan", "tcpdump", "-i", strings.TrimSpace(br), "-l", "-nn", "-e", "-tt", "-Q", "inout",
				fmt.Sprintf("tcp port 80 and (host %s or host %s)", s.l2, s.bgp))
		}
		for n := range c.nodeIPs(t) {
			if os.Getenv("BEACON_KIND_TRACE_CONNTRACK") != "1" {
				break
			}
			_, _ = c.exec(ctx, n, "sysctl", "-qw", "net.netfilter.nf_conntrack_timestamp=1")
			for _, ip := range []netip.Addr{s.l2, s.bgp} {
				rec.follow("conntrack/"+n, c.env["ENGINE"], "exec", n, "conntrack", "-E", "-p", "tcp", "--orig-dst", ip.String(), "-o", "timestamp")
			}
		}
	}
	l := warmUp(t, &load{rec: rec, c: c, probes: []*probe{
		{name: "l2 host -> " + s.l2.String(), addr: s.l2.String(), p: labtest.StartProberDial(ctx, d.DialContext, net.JoinHostPort(s.l2.String(), "80"))},
		{name: "bgp client -> " + s.bgp.String(), addr: s.bgp.String(), p: labtest.StartProberDial(ctx, c.clientDialer(t), net.JoinHostPort(s.bgp.String(), "80")),
			ecmp: c.watchECMP(t, s.bgp)},
	}})
	l.probes[0].neigh = c.watchNeighbour(t, s.l2)
	return l
}

// startHostLoad is startLoad for one L2 address, from the host only.
func startHostLoad(t *testing.T, ip netip.Addr) *load {
	t.Helper()
	var d net.Dialer
	return warmUp(t, &load{probes: []*probe{
		{name: "l2 host -> " + ip.String(), p: labtest.StartProberDial(context.Background(), d.DialContext, net.JoinHostPort(ip.String(), "80"))},
	}})
}

// warmUp returns l once every stream has answered for a second without a
// failure; only what follows counts.
func warmUp(t *testing.T, l *load) *load {
	t.Helper()
	t.Cleanup(l.stop)
	for _, p := range l.probes {
		eventually(t, time.Minute, p.name+" answering steadily", func() error {
			if time.Since(p.p.LastSuccess()) > 100*time.Millisecond || !p.p.QuietFor(time.Second) {
				return fmt.Errorf("last success %v, errors %v", p.p.LastSuccess().Format(time.StampMilli), p.p.LastErrors())
			}
			return nil
		})
	}
	for _, p := range l.probes {
		p.mark = time.Now()
		p.sent0, _ = p.p.Counts()
	}
	return l
}

func (l *load) stop() {
	for _, p := range l.probes {
		p.p.Stop()
	}
}

// explain logs what the cluster did around p's failures: the host's
// neighbour entry, and the speakers' log lines naming the address and the
// router's route and next-hop changes, from 3 s before the first to 1 s after
// the last.
func (l *load) explain(t *testing.T, p *probe, failed []labtest.Failure, bad []time.Time) {
	t.Helper()
	if p.neigh != nil {
		t.Logf("%s: the host's neighbour entry: %s", p.name, p.neigh)
	}
	if l.rec == nil {
		return
	}
	// The failed connections' segments on the LAN, by their client port;
	// for one that never connected, the ports of the SYNs to the address
	// that went unanswered as it started.
	var nums []uint16
	for _, f := range failed {
		if ap, err := netip.ParseAddrPort(f.Local); err == nil {
			nums = append(nums, ap.Port())
		} else {
			nums = append(nums, l.rec.unansweredSYNs(f.Start.Add(-5*time.Millisecond), f.Start.Add(50*time.Millisecond), p.addr)...)
		}
	}
	var ports []string
	for _, n := range nums {
		ports = append(ports, fmt.Sprintf(".%d ", n), fmt.Sprintf(".%d:", n), fmt.Sprintf("sport=%d ", n))
	}
	l.rec.around(t, bad[0], bad[len(bad)-1], 3*time.Second, time.Second, func(source, text string) bool {
		switch {
		case source == "lan":
			return slices.ContainsFunc(ports, func(p string) bool { return strings.Contains(text, p) })
		case strings.HasPrefix(source, "conntrack/"):
			return false // below
		}
		return source == "router" || strings.Contains(text, p.addr) || strings.Contains(text, "peer ") || strings.Contains(text, "member")
	})
	if len(nums) == 0 && os.Getenv("BEACON_KIND_TRACE") != "1" {
		t.Logf("%s: rerun with BEACON_KIND_TRACE=1 for the failed connections' segments and conntrack events", p.name)
	}
	for _, port := range nums {
		if l.c == nil || os.Getenv("BEACON_KIND_TRACE") != "1" {
			break
		}
		for n := range l.c.nodeIPs(t) {
			out, err := l.c.exec(context.Background(), n, "conntrack", "-L", "-p", "tcp", "--sport", strconv.Itoa(int(port)), "-o", "timestamp,id")
			t.Logf("%s: conntrack of %s now for client port %d: %s %v", p.name, n, port, strings.TrimSpace(out), err)
		}
	}
	// A node may know a connection from long before (an earlier one with
	// the same ports): every conntrack event of the failed ones.
	l.rec.around(t, bad[0], bad[len(bad)-1], time.Hour, time.Second, func(source, text string) bool {
		return strings.HasPrefix(source, "conntrack/") && slices.ContainsFunc(ports, func(p string) bool { return strings.Contains(text, p) })
	})
}

// settle waits until every stream has answered without a failure for quiet.
func (l *load) settle(t *testing.T, quiet time.Duration) {
	t.Helper()
	for _, p := range l.probes {
		eventually(t, 2*time.Minute, fmt.Sprintf("%s quiet for %v", p.name, quiet), func() error {
			if !p.p.QuietFor(quiet) || time.Since(p.p.LastSuccess()) > 100*time.Millisecond {
				return fmt.Errorf("last errors %v", p.p.LastErrors())
			}
			return nil
		})
	}
}

// report stops the traffic, logs what each stream saw after its warm-up and
// returns the failures that count, by stream name. A failure of a stream through the
// router that the router re-hashed (ecmpWatch.judge) is logged and counted
// apart, not returned.
func (l *load) report(t *testing.T, what string) map[string][]labtest.Failure {
	t.Helper()
	l.stop()
	failed := map[string][]labtest.Failure{}
	for _, p := range l.probes {
		sent, _ := p.p.Counts()
		bad := p.p.Failures(p.mark)
		failed[p.name] = p.p.FailureRecords(p.mark)
		if p.ecmp != nil {
			rehashed, other := p.ecmp.judge(t, failed[p.name])
			failed[p.name] = other
			t.Logf("%s: %s: %d failed requests re-hashed by the router between nodes in service (not counted), %d others",
				what, p.name, len(rehashed), len(other))
		}
		t.Logf("%s: %s: sent %d, failed %d, longest time without a reply %v",
			what, p.name, sent-p.sent0, len(bad), p.p.LongestGap(p.mark, time.Now()).Round(time.Millisecond))
		if len(bad) > 0 {
			t.Logf("%s: failures seen in %s", p.name, windows(bad))
			t.Logf("%s: last failures: %s", p.name, strings.Join(p.p.LastErrors(), "; "))
			l.explain(t, p, failed[p.name], bad)
		}
	}
	return failed
}

// noFailures fails the test if any stream failed.
func noFailures(t *testing.T, failed map[string][]labtest.Failure) {
	t.Helper()
	for name, fs := range failed {
		if len(fs) > 0 {
			t.Errorf("%s: %d failed requests, want 0", name, len(fs))
		}
	}
}

// addresses returns the ingress addresses of every LoadBalancer Service in
// the cluster, by namespace/name.
func (c *cluster) addresses(t *testing.T) map[string]string {
	t.Helper()
	svcs, err := c.kube.CoreV1().Services("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range svcs.Items {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		var ips []string
		for _, in := range s.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		slices.Sort(ips)
		out[s.Namespace+"/"+s.Name] = strings.Join(ips, ",")
	}
	return out
}

// sameAddresses fails the test if a Service of before lost or changed its
// addresses.
func sameAddresses(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("Service %s: addresses %q, were %q", k, after[k], v)
		}
	}
}

// announcer returns the node whose MAC the host's neighbour entry for ip
// holds: the node answering ARP for it.
func (c *cluster) announcer(t *testing.T, ip netip.Addr) string {
	t.Helper()
	// Read once: a frozen node runs no command.
	if c.macs == nil {
		c.macs = c.nodeMACs(t, "eth0", maps.Keys(c.nodeIPs(t)))
	}
	node, err := resolvedTo(ip, c.macs)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// nodeMACs returns the nodes by the MAC of their interface ifname.
func (c *cluster) nodeMACs(t *testing.T, ifname string, nodes iter.Seq[string]) map[string]string {
	t.Helper()
	macs := map[string]string{}
	for name := range nodes {
		mac, err := c.exec(context.Background(), name, "cat", "/sys/class/net/"+ifname+"/address")
		if err != nil {
			t.Fatal(err)
		}
		macs[strings.TrimSpace(mac)] = name
	}
	return macs
}

// resolvedTo returns the node (of macs, nodes by MAC) that the host's
// neighbour entry for ip names.
func resolvedTo(ip netip.Addr, macs map[string]string) (string, error) {
	neigh, err := run(context.Background(), "ip", "-j", "neigh", "show", ip.String())
	if err != nil {
		return "", err
	}
	var entries []struct {
		LLAddr string `json:"lladdr"`
	}
	if err := json.Unmarshal([]byte(neigh), &entries); err != nil || len(entries) != 1 {
		return "", fmt.Errorf("host's neighbour entry for %s: %q (%v)", ip, neigh, err)
	}
	node, ok := macs[entries[0].LLAddr]
	if !ok {
		return "", fmt.Errorf("host resolved %s to %s, which is no node's MAC (%v)", ip, entries[0].LLAddr, macs)
	}
	return node, nil
}

// windows summarises failure times as the runs in which each failure
// follows the one before within a second: "15:04:05.000+1.2s (34)".
func windows(bad []time.Time) string {
	var out []string
	for i := 0; i < len(bad); {
		j := i + 1
		for j < len(bad) && bad[j].Sub(bad[j-1]) < time.Second {
			j++
		}
		out = append(out, fmt.Sprintf("%s+%v (%d)", bad[i].Format("15:04:05.000"), bad[j-1].Sub(bad[i]).Round(10*time.Millisecond), j-i))
		i = j
	}
	return strings.Join(out, ", ")
}
