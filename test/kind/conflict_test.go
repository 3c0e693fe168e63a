package kind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab/labtest"
)

// The containers that play hosts outside the cluster.
const (
	rogueName     = "beacon-kind-rogue"
	takeoverRogue = "beacon-kind-rogue2"
)

// TestAddressConflict: a host on the nodes' LAN (a container of the
// router's image) already uses the lowest address of a pool when a Service
// asks that pool for an address. The speaker's ARP probe finds it: the
// Service never shows that address in its status and gets the next one,
// which answers; the Service has a Warning AddressConflict Event naming the
// host's MAC, and the pool lists the address in its AddressConflict
// condition and status.addressConflicts.
func TestAddressConflict(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	// A pool of two addresses of the LAN outside the LAN pool, none held
	// back from an earlier run.
	taken, free := c.unheldPair(t, 120, 30)
	var mac string
	// The container engine's IPAM may refuse an address it believes in
	// use (a reservation left by a container that went away without
	// releasing it): another pair then, a few times.
	for try := 1; ; try++ {
		var err error
		if mac, err = c.startRogue(t, rogueName, taken); err == nil {
			break
		} else if !errors.Is(err, errAddressNotAvailable) || try == 3 {
			t.Fatal(err)
		} else {
			t.Logf("try %d: %v; picking another pair", try, err)
			taken, free = c.unheldPair(t, 120, 30)
		}
	}
	t.Logf("rogue host %s (%s) holds %s", rogueName, mac, taken)

	pool := "e2e-conflict"
	c.l2Pool(t, pool, []string{taken.String() + "-" + free.String()}, nil)

	ns := c.namespace(t)
	c.echoDeployment(t, ns, 1)
	// Every status the Service ever has, from a watch opened before it
	// exists.
	w, err := c.kube.CoreV1().Services(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=web"})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string // ingress lists as written, in order
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			svc, ok := ev.Object.(*corev1.Service)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			var ips []string
			for _, in := range svc.Status.LoadBalancer.Ingress {
				ips = append(ips, in.IP)
			}
			mu.Lock()
			if s := strings.Join(ips, ","); len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
			mu.Unlock()
		}
	}()
	stopWatch := func() { w.Stop(); <-done }
	t.Cleanup(stopWatch)

	created := time.Now()
	got := c.expose(t, ns, "web", `--overrides={"apiVersion":"v1","metadata":{"annotations":{"beaconlb.io/pool":"`+pool+`"}}}`)
	took := time.Since(created)
	if got != free {
		t.Errorf("the Service got %s, want %s (the pool's other address)", got, free)
	}
	c.httpFromHost(t, got)
	if n := c.announcer(t, got); n == "" {
		t.Errorf("no node answers for %s", got)
	}

	// The speaker's (not announced) and the controller's (moved) Warnings.
	var warnings []corev1.Event
	eventually(t, 30*time.Second, "Warning "+controller.EventAddressConflict+" Events on the Service from the speaker and the controller", func() error {
		warnings = c.events(t, ns, "Service", "web", controller.EventAddressConflict, created)
		moved, named := false, false
		for _, e := range warnings {
			if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, taken.String()) {
				continue
			}
			named = named || strings.Contains(e.Message, mac)
			moved = moved || strings.Contains(e.Message, "moved to "+free.String())
		}
		if !moved || !named {
			return fmt.Errorf("one naming the MAC %s: %v, one saying moved to %s: %v", mac, named, free, moved)
		}
		return nil
	})
	for _, e := range warnings {
		t.Logf("Event %s %s from %s (count %d): %s", e.Type, e.Reason, e.Source.Component, e.Count, e.Message)
	}

	eventually(t, 30*time.Second, "IPPool "+pool+": AddressConflict condition and status.addressConflicts with "+taken.String(), func() error {
		var p v1alpha1.IPPool
		c.getJSON(t, &p, "ippools.beaconlb.io", pool)
		i := slices.IndexFunc(p.Status.Conditions, func(c metav1.Condition) bool { return c.Type == v1alpha1.PoolAddressConflict })
		if i < 0 || p.Status.Conditions[i].Status != metav1.ConditionTrue || !strings.Contains(p.Status.Conditions[i].Message, taken.String()) {
			return fmt.Errorf("conditions %+v", p.Status.Conditions)
		}
		if !slices.ContainsFunc(p.Status.AddressConflicts, func(a v1alpha1.AddressConflict) bool {
			return a.Address == taken.String() && strings.EqualFold(a.MAC, mac)
		}) {
			return fmt.Errorf("addressConflicts %+v", p.Status.AddressConflicts)
		}
		t.Logf("IPPool %s: condition %s=%s (%s): %s; available %d of %d", pool, p.Status.Conditions[i].Type, p.Status.Conditions[i].Status,
			p.Status.Conditions[i].Reason, p.Status.Conditions[i].Message, p.Status.IPv4.Available, p.Status.IPv4.Total)
		return nil
	})

	stopWatch()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("Service web got %s %v after its creation; its statuses, in order: %q", got, took.Round(10*time.Millisecond), seen)
	for _, s := range seen {
		if slices.Contains(strings.Split(s, ","), taken.String()) {
			t.Errorf("the Service's status showed %s, which the rogue holds: %q", taken, seen)
		}
	}
}

// errAddressNotAvailable: the container engine refused the address as in
// use.
var errAddressNotAvailable = errors.New("the container engine says the address is not available")

// startRogue runs a container named name on the nodes' LAN that holds ip,
// as a host outside the cluster would, and returns its MAC. It is removed
// when the test ends. An address the engine refuses as in use is
// errAddressNotAvailable.
func (c *cluster) startRogue(t *testing.T, name string, ip netip.Addr) (string, error) {
	t.Helper()
	ctx := context.Background()
	engine := c.env["ENGINE"]
	image, err := run(ctx, engine, "inspect", "-f", "{{.ImageName}}", c.env["CLIENT"])
	if err != nil {
		t.Fatal(err)
	}
	// The LAN is the router's network that holds ROUTER_IP.
	raw, err := run(ctx, engine, "inspect", "-f", "{{json .NetworkSettings.Networks}}", c.env["ROUTER"])
	if err != nil {
		t.Fatal(err)
	}
	var nets map[string]struct {
		IPAddress string `json:"IPAddress"`
	}
	if err := json.Unmarshal([]byte(raw), &nets); err != nil {
		t.Fatalf("networks of %s: %v: %s", c.env["ROUTER"], err, raw)
	}
	lanNet := ""
	for name, n := range nets {
		if n.IPAddress == c.env["ROUTER_IP"] {
			lanNet = name
		}
	}
	if lanNet == "" {
		t.Fatalf("no network of %s holds %s: %s", c.env["ROUTER"], c.env["ROUTER_IP"], raw)
	}
	remove := func() { _, _ = run(ctx, engine, "rm", "-f", "-t", "0", name) }
	remove() // left over from an interrupted run
	t.Cleanup(remove)
	if _, err := run(ctx, engine, "run", "-d", "--name", name, "--network", lanNet+":ip="+ip.String(),
		strings.TrimSpace(image), "sleep", "infinity"); err != nil {
		remove() // podman leaves the created container behind
		if strings.Contains(err.Error(), "is not available") {
			return "", fmt.Errorf("%w: %s: %w", errAddressNotAvailable, ip, err)
		}
		return "", err
	}
	mac, err := c.exec(ctx, name, "cat", "/sys/class/net/eth0/address")
	if err != nil {
		t.Fatal(err)
	}
	// The rogue answers ARP for ip (the router resolves it).
	eventually(t, 30*time.Second, "the rogue answers the router's ping to "+ip.String(), func() error {
		_, err := c.exec(ctx, c.env["ROUTER"], "ping", "-c", "1", "-W", "1", ip.String())
		return err
	})
	return strings.TrimSpace(mac), nil
}

// TestAddressTakeover: a host on the nodes' LAN takes an announced address
// over while clients use it: it adds the address and sends gratuitous ARP,
// as a misconfigured host does. The announcing speaker sees the foreign
// claim and says so in a Warning Event naming the host's MAC and in
// beacon_l2_conflicts_total; the controller moves the Service to the
// pool's other address, which answers, and the pool lists the taken
// address with the host's MAC.
func TestAddressTakeover(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	lan := netip.MustParsePrefix(c.env["LAN_CIDR"])
	// The pool's pair and the rogue's own address, away from the LAN pool
	// and from TestAddressConflict's addresses (.120 to .179).
	lo, hi := c.unheldPair(t, 60, 30)
	pool := "e2e-takeover"
	c.l2Pool(t, pool, []string{lo.String() + "-" + hi.String()}, nil)
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 1)
	taken := c.expose(t, ns, "web", `--overrides={"apiVersion":"v1","metadata":{"annotations":{"beaconlb.io/pool":"`+pool+`"}}}`)
	other := lo
	if taken == other {
		other = hi
	}
	c.httpFromHost(t, taken)
	node := c.announcer(t, taken)
	ips := c.nodeIPs(t)
	conflictsMetric := `beacon_l2_conflicts_total{family="ipv4",interface="eth0"}`
	before := c.speakerMetric(t, ips[node], conflictsMetric)

	var mac string
	for try := 1; ; try++ {
		var err error
		if mac, err = c.startRogue(t, takeoverRogue, lanAddr(t, c, 20+rand.IntN(40))); err == nil {
			break
		} else if !errors.Is(err, errAddressNotAvailable) || try == 3 {
			t.Fatal(err)
		}
	}
	pid, err := run(ctx, c.env["ENGINE"], "inspect", "-f", "{{.State.Pid}}", takeoverRogue)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(ctx, "nsenter", "-t", strings.TrimSpace(pid), "-n", "ip", "addr", "add",
		netip.PrefixFrom(taken, lan.Bits()).String(), "dev", "eth0"); err != nil {
		t.Fatalf("the rogue takes %s: %v: %s", taken, err, out)
	}
	claimed := time.Now()
	if err := labtest.GratuitousARP(ctx, "/proc/"+strings.TrimSpace(pid)+"/ns/net", "eth0", mustMAC(t, mac), taken, 3); err != nil {
		t.Fatal(err)
	}
	t.Logf("rogue host %s (%s) took %s over from %s", takeoverRogue, mac, taken, node)

	eventually(t, 30*time.Second, "Warning "+controller.EventAddressConflict+" Events on the Service: the speaker's claim and the controller's move", func() error {
		claim, moved := false, false
		for _, e := range c.events(t, ns, "Service", "web", controller.EventAddressConflict, claimed.Add(-time.Second)) {
			if e.Type != corev1.EventTypeWarning || !strings.Contains(e.Message, taken.String()) {
				continue
			}
			claim = claim || strings.Contains(e.Message, "claimed by another host (MAC "+mac)
			moved = moved || strings.Contains(e.Message, "moved to "+other.String())
		}
		if !claim || !moved {
			return fmt.Errorf("the claim by %s: %v; moved to %s: %v", mac, claim, other, moved)
		}
		return nil
	})
	eventually(t, 30*time.Second, "the Service's status holds "+other.String()+" alone", func() error {
		svc, err := c.kube.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if in := svc.Status.LoadBalancer.Ingress; len(in) != 1 || in[0].IP != other.String() {
			return fmt.Errorf("status %+v", in)
		}
		return nil
	})
	t.Logf("moved to %s %v after the claim", other, time.Since(claimed).Round(10*time.Millisecond))
	c.httpFromHost(t, other)
	eventually(t, 30*time.Second, "IPPool "+pool+": status.addressConflicts with "+taken.String(), func() error {
		var p v1alpha1.IPPool
		c.getJSON(t, &p, "ippools.beaconlb.io", pool)
		if !slices.ContainsFunc(p.Status.AddressConflicts, func(a v1alpha1.AddressConflict) bool {
			return a.Address == taken.String() && strings.EqualFold(a.MAC, mac)
		}) {
			return fmt.Errorf("addressConflicts %+v", p.Status.AddressConflicts)
		}
		return nil
	})
	if after := c.speakerMetric(t, ips[node], conflictsMetric); after <= before {
		t.Errorf("%s on %s: %v before the claim, %v after", conflictsMetric, node, before, after)
	}
}

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	mac, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// speakerMetric reads one series from the speaker's metrics on the node
// at ip (the host is on the nodes' LAN).
func (c *cluster) speakerMetric(t *testing.T, ip netip.Addr, series string) float64 {
	t.Helper()
	port := c.releaseValues(t).Speaker.MetricsPort
	var v float64
	eventually(t, 30*time.Second, series+" from "+ip.String(), func() error {
		hc := &http.Client{Timeout: 2 * time.Second}
		resp, err := hc.Get("http://" + netip.AddrPortFrom(ip, port).String() + "/metrics")
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		var ok bool
		if v, ok, err = labtest.Metric(resp.Body, series); err != nil {
			return err
		} else if !ok {
			v = 0 // a counter with no sample yet
		}
		return nil
	})
	return v
}

// lanAddr returns the LAN's address with this last byte, which must be
// outside the LAN pool.
func lanAddr(t *testing.T, c *cluster, last int) netip.Addr {
	t.Helper()
	lan := netip.MustParsePrefix(c.env["LAN_CIDR"])
	b := lan.Addr().As4()
	b[3] = byte(last)
	a := netip.AddrFrom4(b)
	if !lan.Contains(a) || inRange(t, c.env["LAN_POOL"], a) {
		t.Fatalf("%s: not in the LAN %s or outside the LAN pool %s", a, lan, c.env["LAN_POOL"])
	}
	return a
}

// unheldPair returns two consecutive LAN addresses, .from+2i and the next
// for a random i below n, that the controller does not hold back: it keeps
// an address another host was found using out of allocation for
// --address-conflict-hold (10 min) after the last report, so a pair that
// an earlier run on this cluster gave a rogue would not be handed out. A
// pool made for a moment shows whether it holds any.
func (c *cluster) unheldPair(t *testing.T, from, n int) (netip.Addr, netip.Addr) {
	t.Helper()
	ctx := context.Background()
	const check = "e2e-pair-check"
	for try := 1; try <= 5; try++ {
		base := from + 2*rand.IntN(n)
		lo, hi := lanAddr(t, c, base), lanAddr(t, c, base+1)
		f := c.applyKept(t, manifest(t, "IPPool", check, v1alpha1.IPPoolSpec{
			AutoAssign: ptr.To(false), Addresses: []v1alpha1.AddressBlock{v1alpha1.AddressBlock(lo.String() + "-" + hi.String())}}))
		var p v1alpha1.IPPool
		eventually(t, 30*time.Second, "IPPool "+check+" counted by the controller", func() error {
			c.getJSON(t, &p, "ippools.beaconlb.io", check)
			if p.Status.IPv4 == nil || p.Status.IPv4.Total != 2 {
				return fmt.Errorf("status %+v", p.Status.IPv4) // none before the controller's first write
			}
			return nil
		})
		if _, err := c.kubectl(ctx, "delete", "--wait", "-f", f); err != nil {
			t.Fatal(err)
		}
		if p.Status.IPv4.Available == 2 && len(p.Status.AddressConflicts) == 0 {
			return lo, hi
		}
		t.Logf("%s-%s: held back (%+v); another pair", lo, hi, p.Status.AddressConflicts)
	}
	t.Fatalf("no pair of .%d to .%d free of held conflicts in 5 tries", from, from+2*n-1)
	return netip.Addr{}, netip.Addr{}
}
