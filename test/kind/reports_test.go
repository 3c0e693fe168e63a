package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// getJSON runs kubectl get ... -o json and decodes the result into v.
func (c *cluster) getJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	out, err := c.kubectl(context.Background(), append(append([]string{"get"}, args...), "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("kubectl get %v: %v", args, err)
	}
}

// apply applies manifests and deletes them when the test ends.
func (c *cluster) apply(t *testing.T, manifests string) {
	t.Helper()
	f := c.applyKept(t, manifests)
	t.Cleanup(func() {
		if _, err := c.kubectl(context.Background(), "delete", "--ignore-not-found", "--wait", "-f", f); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// applyKept applies manifests and returns the file they were written to,
// for the caller to delete them with.
func (c *cluster) applyKept(t *testing.T, manifests string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "objects.yaml")
	if err := os.WriteFile(f, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := c.kubectl(context.Background(), "apply", "-f", f); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return f
}

// manifest is a Beacon object of kind named name with spec, as JSON.
func manifest(t *testing.T, kind, name string, spec any) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"apiVersion": v1alpha1.SchemeGroupVersion.String(), "kind": kind,
		"metadata": map[string]string{"name": name}, "spec": spec,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// l2Pool creates an IPPool of addresses that hands out an address only to
// a Service that names it (beaconlb.io/pool), and an L2Advertisement of
// the same name for it, changed by adv if not nil. Both are deleted when
// the test ends.
func (c *cluster) l2Pool(t *testing.T, name string, addresses []string, adv func(*v1alpha1.L2AdvertisementSpec)) {
	t.Helper()
	pool := v1alpha1.IPPoolSpec{AutoAssign: ptr.To(false)}
	for _, a := range addresses {
		pool.Addresses = append(pool.Addresses, v1alpha1.AddressBlock(a))
	}
	l2 := v1alpha1.L2AdvertisementSpec{IPPools: []string{name}}
	if adv != nil {
		adv(&l2)
	}
	docs := []string{manifest(t, "IPPool", name, pool), manifest(t, "L2Advertisement", name, l2)}
	c.apply(t, strings.Join(docs, "\n---\n")+"\n")
}

// events returns the Events with this reason about the object kind/name in
// ns (all namespaces if empty) that were last seen at or after since.
func (c *cluster) events(t *testing.T, ns, kind, name, reason string, since time.Time) []corev1.Event {
	t.Helper()
	list, err := c.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
		FieldSelector: fmt.Sprintf("involvedObject.kind=%s,involvedObject.name=%s,reason=%s", kind, name, reason),
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range list.Items {
		last := e.LastTimestamp.Time
		if e.Series != nil && e.Series.LastObservedTime.After(last) {
			last = e.Series.LastObservedTime.Time
		}
		if last.IsZero() {
			last = e.EventTime.Time
		}
		// Event times have a resolution of a second.
		if !last.Before(since.Truncate(time.Second)) {
			out = append(out, e)
		}
	}
	return out
}

// sessions returns the BGPSessionStates of node.
func (c *cluster) sessions(t *testing.T, node string) []v1alpha1.BGPSessionState {
	t.Helper()
	var l v1alpha1.BGPSessionStateList
	c.getJSON(t, &l, "bgpsessionstates", "-l", v1alpha1.NodeLabel+"="+node)
	return l.Items
}

// l2Announcers returns the nodes whose ServiceAnnouncements list ip in L2
// mode.
func (c *cluster) l2Announcers(t *testing.T, ns string, ip netip.Addr) []string {
	t.Helper()
	var l v1alpha1.ServiceAnnouncementList
	c.getJSON(t, &l, "-n", ns, "serviceannouncements")
	var nodes []string
	for _, a := range l.Items {
		if a.Via == v1alpha1.ViaL2 && slices.Contains(a.Addresses, ip.String()) {
			nodes = append(nodes, a.Node)
		}
	}
	slices.Sort(nodes)
	return nodes
}

// routerPath is one path of the router's BGP table for a prefix.
type routerPath struct {
	NextHop     netip.Addr
	Communities string // FRR's display, e.g. "graceful-shutdown"
	LocalPref   int
}

// routerPaths returns the router's BGP paths for ip/32.
func (c *cluster) routerPaths(ctx context.Context, ip netip.Addr) ([]routerPath, error) {
	out, err := c.exec(ctx, c.env["ROUTER"], "vtysh", "-c", "show bgp ipv4 unicast "+ip.String()+"/32 json")
	if err != nil {
		return nil, err
	}
	var r struct {
		Paths []struct {
			Community struct {
				String string `json:"string"`
			} `json:"community"`
			LocPrf   *int `json:"locPrf"`
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("show bgp: %w: %s", err, out)
	}
	var paths []routerPath
	for _, p := range r.Paths {
		rp := routerPath{Communities: p.Community.String, LocalPref: 100}
		if p.LocPrf != nil {
			rp.LocalPref = *p.LocPrf
		}
		if len(p.Nexthops) > 0 {
			rp.NextHop, _ = netip.ParseAddr(p.Nexthops[0].IP)
		}
		paths = append(paths, rp)
	}
	return paths, nil
}

// gshut reports whether FRR shows the GRACEFUL_SHUTDOWN community (65535:0).
func (p routerPath) gshut() bool {
	return strings.Contains(p.Communities, "graceful-shutdown") || strings.Contains(p.Communities, "65535:0")
}

// macLog records every change of the host's neighbour entry for one
// address: which node's MAC it held, and when.
type macLog struct {
	mu      sync.Mutex
	changes []macChange
	stop    context.CancelFunc
	done    chan struct{}
}

type macChange struct {
	at   time.Time
	node string // the node owning the MAC, or the MAC itself
}

// watchNeighbour polls the host's neighbour table every 10 ms for ip until
// the test ends and logs the node behind each MAC it holds.
func (c *cluster) watchNeighbour(t *testing.T, ip netip.Addr) *macLog {
	t.Helper()
	c.announcer(t, ip) // reads the nodes' MACs and checks the entry is there
	return watchMACs(t, ip, c.macs)
}

// watchMACs is watchNeighbour with the nodes by MAC given.
func watchMACs(t *testing.T, ip netip.Addr, macs map[string]string) *macLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &macLog{stop: cancel, done: make(chan struct{})}
	t.Cleanup(m.close)
	want := net.IP(ip.AsSlice())
	go func() {
		defer close(m.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			if neighs, err := netlink.NeighList(0, netlink.FAMILY_V4); err == nil {
				for _, n := range neighs {
					if !n.IP.Equal(want) || n.HardwareAddr == nil {
						continue
					}
					who := n.HardwareAddr.String()
					if node, ok := macs[who]; ok {
						who = node
					}
					m.mu.Lock()
					if len(m.changes) == 0 || m.changes[len(m.changes)-1].node != who {
						m.changes = append(m.changes, macChange{at: time.Now(), node: who})
					}
					m.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

func (m *macLog) close() {
	m.stop()
	<-m.done
}

// firstAfter returns the first change at or after at to another node
// than from.
func (m *macLog) firstAfter(at time.Time, from string) (macChange, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.changes {
		if !c.at.Before(at) && c.node != from {
			return c, true
		}
	}
	return macChange{}, false
}

// nodes returns the sequence of nodes the entry pointed to.
func (m *macLog) nodes() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.changes {
		out = append(out, c.node)
	}
	return out
}

// String lists the changes with their times.
func (m *macLog) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.changes {
		out = append(out, c.at.Format("15:04:05.000")+" "+c.node)
	}
	return strings.Join(out, ", ")
}
