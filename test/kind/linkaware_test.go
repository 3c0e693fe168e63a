package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beaconlb/beacon/lab/labtest"
)

// linkRuns is how many times TestLinkAwareFailover pulls a cable.
const linkRuns = 5

// TestLinkAwareFailover: every worker gets a second NIC, eth1, on a second
// LAN that the host is on too; kubelet, the heartbeats and the first LAN
// stay on eth0. A Service gets an address of a pool on the second LAN,
// which the speakers announce on eth1, the interface it is on-link on.
// Pulling the announcing worker's eth1 cable (its host-side veth set down:
// the node sees NO-CARRIER) moves the address to another worker under a
// request every 10 ms from the host, while the node stays alive for its
// peers; plugged back, the address returns (failback Immediate) and no
// request fails. Each run prints how long the host had no reply; the
// bound here is generous (5 s), and make bench-failover measures the
// target in the lab. Run twice on one cluster, it also checks that
// speakers answer on a NIC unplugged and plugged again under the same
// name.
func TestLinkAwareFailover(t *testing.T) {
	c := need(t)
	lan2 := c.plugSecondLAN(t)
	pool := "e2e-lan2"
	c.l2Pool(t, pool, []string{c.env["LAN2_POOL"]}, nil)
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	ip := c.expose(t, ns, "web", `--overrides={"apiVersion":"v1","metadata":{"annotations":{"beaconlb.io/pool":"`+pool+`"}}}`)
	c.httpFromHost(t, ip)
	nodeIPs := c.nodeIPs(t)
	l := startHostLoad(t, ip)
	p := l.probes[0].p
	neigh := watchMACs(t, ip, lan2.macs)

	var outages []time.Duration
	var lost [2]int // failed requests started after a pull, after a return
	for run := 1; run <= linkRuns; run++ {
		first := lan2.announcer(t, ip)
		alive := c.speakerMetric(t, nodeIPs[first], "beacon_member_alive_nodes")
		// Taken before: the takeover can be over before the command
		// that pulls the cable returns.
		at := time.Now()
		lan2.setCable(t, first, false)
		var moved macChange
		eventually(t, 5*time.Second, "the host's neighbour entry for "+ip.String()+" off "+first, func() error {
			var ok bool
			if moved, ok = neigh.firstAfter(at, first); !ok {
				return fmt.Errorf("still %s", first)
			}
			return nil
		})
		second := moved.node
		var outage time.Duration
		eventually(t, 10*time.Second, "traffic back after the move", func() error {
			var ok bool
			if outage, ok = p.Outage(at, at.Add(3*time.Second)); !ok {
				return fmt.Errorf("no reply yet 3 s after the cable was pulled")
			}
			return nil
		})
		outages = append(outages, outage)
		// Alive for its peers: the address moved for want of carrier, not
		// because the node died.
		if got := c.speakerMetric(t, nodeIPs[second], "beacon_member_alive_nodes"); got != alive {
			t.Errorf("run %d: %s counts %v speakers alive, %s counted %v before", run, second, got, first, alive)
		}
		if !slices.Contains(slices.Collect(maps.Values(lan2.macs)), second) {
			t.Errorf("run %d: the host resolved %s to %s, no worker's eth1", run, ip, second)
		}
		t.Logf("run %d: %s's eth1 cable out: %s answers after %v; longest time without a reply %v",
			run, first, second, moved.at.Sub(at).Round(time.Millisecond), outage.Round(time.Millisecond))

		back := time.Now()
		lan2.setCable(t, first, true)
		var returned macChange
		eventually(t, 10*time.Second, ip.String()+" back on "+first, func() error {
			var ok bool
			if returned, ok = neigh.firstAfter(back, second); !ok {
				return fmt.Errorf("still %s", second)
			}
			return nil
		})
		if returned.node != first {
			t.Errorf("run %d: after the cable came back the address went to %s, not %s", run, returned.node, first)
		}
		t.Logf("run %d: cable back: %s answers again after %v", run, first, returned.at.Sub(back).Round(time.Millisecond))
		l.settle(t, time.Second)
		var pulled, plugged []labtest.Failure
		for _, f := range p.FailureRecords(at) {
			if f.Start.Before(back) {
				pulled = append(pulled, f)
			} else {
				plugged = append(plugged, f)
			}
		}
		t.Logf("run %d: failed requests started after the pull %d, after the return %d%s", run, len(pulled), len(plugged), firstErr(pulled, plugged))
		lost[0] += len(pulled)
		lost[1] += len(plugged)
	}
	sent, _ := p.Counts()
	t.Logf("requests from the host: %d sent; failed: %d started between a pull and the return, %d after a return", sent, lost[0], lost[1])
	slices.Sort(outages)
	t.Logf("time without a reply over %d cable pulls: p50 %v, max %v", len(outages),
		outages[len(outages)/2].Round(time.Millisecond), outages[len(outages)-1].Round(time.Millisecond))
	if lost[1] > 0 {
		t.Errorf("%d requests failed after a cable came back, want 0 (the flow hand-off moves them)", lost[1])
	}
	for _, o := range outages {
		if o > 5*time.Second {
			t.Errorf("a cable pull left the host without a reply for %v, want under 5 s", o)
		}
	}
}

// secondLAN is TestLinkAwareFailover's second LAN: a container network
// whose bridge holds LAN2_GW on the host, plugged into every worker as
// eth1.
type secondLAN struct {
	macs   map[string]string // worker by eth1 MAC
	cables map[string]string // the host side of each worker's eth1
}

// plugSecondLAN makes the second LAN and plugs the workers into it; all of
// it is removed when the test ends.
func (c *cluster) plugSecondLAN(t *testing.T) *secondLAN {
	t.Helper()
	ctx := context.Background()
	engine, name := c.env["ENGINE"], c.env["LAN2_NET"]
	if name == "" {
		t.Fatalf("%s has no LAN2_NET= line; re-run make kind-up", envFile())
	}
	workers := workerNodes(t, c)
	remove := func() {
		for w := range workers {
			_, _ = run(ctx, engine, "network", "disconnect", "-f", name, w)
		}
		_, _ = run(ctx, engine, "network", "rm", "-f", name)
		// The engine's IPAM reservations outlive the network.
		_ = os.RemoveAll("/var/lib/cni/networks/" + name)
	}
	remove() // left over from an interrupted run
	t.Cleanup(remove)
	if out, err := run(ctx, engine, "network", "create", "--subnet", c.env["LAN2_CIDR"], "--gateway", c.env["LAN2_GW"], name); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	gw := netip.MustParseAddr(c.env["LAN2_GW"])
	addr := gw
	names := make([]string, 0, len(workers))
	for w := range workers {
		names = append(names, w)
	}
	slices.Sort(names)
	lan := &secondLAN{cables: map[string]string{}}
	for _, w := range names {
		addr = addr.Next()
		if out, err := run(ctx, engine, "network", "connect", "--ip", addr.String(), name, w); err != nil {
			t.Fatalf("plug %s into %s: %v: %s", w, name, err, out)
		}
		iflink, err := c.exec(ctx, w, "cat", "/sys/class/net/eth1/iflink")
		if err != nil {
			t.Fatalf("%s has no eth1 after plugging it into %s: %v", w, name, err)
		}
		peer, err := strconv.Atoi(strings.TrimSpace(iflink))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := run(ctx, "ip", "-j", "link", "show")
		if err != nil {
			t.Fatal(err)
		}
		var links []struct {
			Index int    `json:"ifindex"`
			Name  string `json:"ifname"`
		}
		if err := json.Unmarshal([]byte(raw), &links); err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			if l.Index == peer {
				lan.cables[w] = l.Name
			}
		}
		if lan.cables[w] == "" {
			t.Fatalf("no host interface has index %d, the peer of %s's eth1", peer, w)
		}
		t.Logf("%s: eth1 %s on %s, host side %s", w, addr, name, lan.cables[w])
	}
	lan.macs = c.nodeMACs(t, "eth1", slices.Values(names))
	return lan
}

// announcer returns the worker that answers the host's ARP for ip on the
// second LAN.
func (l *secondLAN) announcer(t *testing.T, ip netip.Addr) string {
	t.Helper()
	node, err := resolvedTo(ip, l.macs)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// setCable plugs the worker's eth1 cable in or pulls it out.
func (l *secondLAN) setCable(t *testing.T, worker string, in bool) {
	t.Helper()
	state := "down"
	if in {
		state = "up"
	}
	if out, err := run(context.Background(), "ip", "link", "set", l.cables[worker], state); err != nil {
		t.Fatalf("%s's eth1 cable %s: %v: %s", worker, state, err, out)
	}
}

// firstErr describes the first failure of the lists, if any.
func firstErr(lists ...[]labtest.Failure) string {
	for _, l := range lists {
		if len(l) > 0 {
			return fmt.Sprintf(" (first: %v, started %s)", l[0].Err, l[0].Start.Format("15:04:05.000"))
		}
	}
	return ""
}
