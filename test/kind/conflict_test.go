package kind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// rogueName is the container that plays a host outside the cluster.
const rogueName = "beacon-kind-rogue"

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
	// A pool of two addresses of the LAN outside the LAN pool. The pair
	// changes from run to run: the controller keeps a conflicting address
	// out of allocation for --address-conflict-hold (10 min) after its last
	// report, so a pair used a moment ago would not be probed again.
	lan := netip.MustParsePrefix(c.env["LAN_CIDR"])
	var taken, free netip.Addr
	var mac string
	// The container engine's IPAM may refuse an address it believes in
	// use (a reservation left by a container that went away without
	// releasing it): another pair then, a few times.
	for try := 1; ; try++ {
		base := lan.Addr().As4()
		base[3] = byte(120 + 2*rand.IntN(30))
		taken = netip.AddrFrom4(base)
		free = taken.Next()
		for _, a := range []netip.Addr{taken, free} {
			if !lan.Contains(a) || inRange(t, c.env["LAN_POOL"], a) {
				t.Fatalf("%s: not in the LAN %s or in the LAN pool %s", a, lan, c.env["LAN_POOL"])
			}
		}
		var err error
		if mac, err = c.startRogue(t, taken); err == nil {
			break
		} else if !errors.Is(err, errAddressNotAvailable) || try == 3 {
			t.Fatal(err)
		} else {
			t.Logf("try %d: %v; picking another pair", try, err)
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

// startRogue runs a container on the nodes' LAN that holds ip, as a host
// outside the cluster would, and returns its MAC. It is removed when the
// test ends. An address the engine refuses as in use is
// errAddressNotAvailable.
func (c *cluster) startRogue(t *testing.T, ip netip.Addr) (string, error) {
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
	remove := func() { _, _ = run(ctx, engine, "rm", "-f", "-t", "0", rogueName) }
	remove() // left over from an interrupted run
	t.Cleanup(remove)
	if _, err := run(ctx, engine, "run", "-d", "--name", rogueName, "--network", lanNet+":ip="+ip.String(),
		strings.TrimSpace(image), "sleep", "infinity"); err != nil {
		remove() // podman leaves the created container behind
		if strings.Contains(err.Error(), "is not available") {
			return "", fmt.Errorf("%w: %s: %w", errAddressNotAvailable, ip, err)
		}
		return "", err
	}
	mac, err := c.exec(ctx, rogueName, "cat", "/sys/class/net/eth0/address")
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
