package member

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/metricstest"
)

// cuttable wraps a socket so a test can make a member go silent at once,
// as if its node crashed: no leave message gets out.
type cuttable struct {
	net.PacketConn
	cut    atomic.Bool
	writes atomic.Int64
}

func (c *cuttable) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(b), nil
	}
	c.writes.Add(1)
	return c.PacketConn.WriteTo(b, addr)
}

type running struct {
	m      *Member
	conn   *cuttable
	cancel context.CancelFunc
	done   chan error
}

// startMembers runs n members on loopback, each knowing all the others,
// with watchers as Config.Watchers.
func startMembers(t *testing.T, n int, key []byte, watchers int) []*running {
	t.Helper()
	var rs []*running
	peers := map[string]netip.AddrPort{}
	for i := range n {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("node%d", i+1)
		c := &cuttable{PacketConn: pc}
		m, err := New(Config{Name: name, Conn: c, Key: key, Watchers: watchers, Logger: testr.New(t).WithName(name)})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, &running{m: m, conn: c})
		peers[name] = pc.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	for _, r := range rs {
		r.m.SetPeers(peers)
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel, r.done = cancel, make(chan error, 1)
		go func() { r.done <- r.m.Run(ctx) }()
		t.Cleanup(func() {
			r.cancel()
			if err := <-r.done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	return rs
}

// waitView waits until the member's alive set is want, and returns how long
// that took.
func waitView(t *testing.T, m *Member, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if got := strings.Join(m.AliveNames(), ","); got == want && m.Settled() {
			return time.Since(start)
		}
		select {
		case <-m.Changes():
		case <-deadline.C:
			t.Fatalf("after %v: alive %v (settled %v), want %s", limit, m.AliveNames(), m.Settled(), want)
		}
	}
}

// startSettled runs n members without a key and waits until each sees
// all alive; it returns them and their names, sorted.
func startSettled(t *testing.T, n, watchers int) ([]*running, []string) {
	t.Helper()
	rs := startMembers(t, n, nil, watchers)
	var all []string
	for i := range n {
		all = append(all, fmt.Sprintf("node%d", i+1))
	}
	slices.Sort(all)
	for _, r := range rs {
		waitView(t, r.m, strings.Join(all, ","), 3*time.Second)
	}
	return rs, all
}

func TestMembersOnLoopback(t *testing.T) {
	// One watcher each: a crash is seen by one node and told to the other.
	for _, watchers := range []int{0, 1} {
		t.Run(fmt.Sprintf("watchers=%d", watchers), func(t *testing.T) { testMembersOnLoopback(t, watchers) })
	}
}

func testMembersOnLoopback(t *testing.T, watchers int) {
	rs := startMembers(t, 3, []byte("shared key"), watchers)
	for _, r := range rs {
		waitView(t, r.m, "node1,node2,node3", 2*time.Second)
	}

	// node3 crashes: nothing more comes from it, not even a leave.
	rs[2].conn.cut.Store(true)
	for _, r := range rs[:2] {
		d := waitView(t, r.m, "node1,node2", time.Second)
		t.Logf("%s saw the crash of node3 after %v", r.m.cfg.Name, d)
	}

	// node2 stops cleanly: node1 hears its leave at once.
	start := time.Now()
	rs[1].cancel()
	d := waitView(t, rs[0].m, "node1", 100*time.Millisecond)
	t.Logf("node1 saw node2 leave after %v (%v since cancel)", d, time.Since(start))
	if p := rs[0].m.Peers(); len(p) != 2 || !p[0].Left || p[1].Left {
		t.Fatalf("peers %+v: want node2 left and node3 timed out", p)
	}
	if !rs[0].m.Left("node2") || rs[0].m.Left("node3") {
		t.Fatalf("Left: node2 %v, node3 %v; want true, false", rs[0].m.Left("node2"), rs[0].m.Left("node3"))
	}

	// node3 comes back: node1 sees it alive again.
	rs[2].conn.cut.Store(false)
	waitView(t, rs[0].m, "node1,node3", time.Second)
}

// Twelve members with two watchers each send a fraction of the
// all-to-all packets, and all see a crash that only two of them watch.
func TestWatchersOnLoopback(t *testing.T) {
	const n = 12
	rs, all := startSettled(t, n, 2)
	before := make([]int64, n)
	for i, r := range rs {
		before[i] = r.conn.writes.Load()
	}
	start := time.Now()
	time.Sleep(500 * time.Millisecond) // a window to count packets in, not synchronisation
	elapsed := time.Since(start).Seconds()
	allToAll := float64(n-1) / DefaultWatchInterval.Seconds()
	for i, r := range rs {
		if rate := float64(r.conn.writes.Load()-before[i]) / elapsed; rate > allToAll/3 {
			t.Errorf("%s sent %.0f packets/s; all-to-all would be %.0f", r.m.cfg.Name, rate, allToAll)
		}
	}
	rs[n-1].conn.cut.Store(true)
	want := strings.Join(slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == rs[n-1].m.cfg.Name }), ",")
	for _, r := range rs[:n-1] {
		waitView(t, r.m, want, 2*time.Second)
	}
}

func TestMembersWithDifferentKeysIgnoreEachOther(t *testing.T) {
	a, _ := net.ListenPacket("udp", "127.0.0.1:0")
	b, _ := net.ListenPacket("udp", "127.0.0.1:0")
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ma, _ := New(Config{Name: "a", Conn: a, Key: []byte("one"), Metrics: metrics, Logger: testr.New(t)})
	mb, _ := New(Config{Name: "b", Conn: b, Key: []byte("two"), Logger: testr.New(t)})
	peers := map[string]netip.AddrPort{
		"a": a.LocalAddr().(*net.UDPAddr).AddrPort(),
		"b": b.LocalAddr().(*net.UDPAddr).AddrPort(),
	}
	ma.SetPeers(peers)
	mb.SetPeers(peers)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- ma.Run(ctx) }()
	go func() { done <- mb.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()
	waitView(t, ma, "a", 2*time.Second)
	// Poll the counter: b beats every 100 ms.
	deadline := time.Now().Add(2 * time.Second)
	for gauge(t, reg, "beacon_member_packets_dropped_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no packet counted as dropped")
		}
		<-time.After(10 * time.Millisecond)
	}
	if ma.Alive("b") {
		t.Fatal("a accepted b's messages with the wrong key")
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Name: strings.Repeat("n", 254)},
		{Name: "a", Interval: time.Second, DeadAfter: time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	m, err := New(Config{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if m.cfg.Interval != DefaultInterval || m.cfg.DeadAfter != DefaultDeadAfter || m.cfg.ListenAddress != ":7946" {
		t.Fatalf("defaults not applied: %+v", m.cfg)
	}
	if !m.Alive("a") || m.Settled() {
		t.Fatal("before Run: self must be alive and the view unsettled")
	}
}

// gauge reads a metric without labels from a registry; 0 if absent.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return metricstest.Value(metricstest.Find(t, reg, name, nil))
}

// A node that crashes with both its watchers stays alive for the others
// until its Node is reported not ready; then its candidates probe it and
// everyone sees it dead.
func TestSuspectsOnLoopback(t *testing.T) {
	rs, all := startSettled(t, 12, 2)
	x := "node5"
	cut := append(RankWatchers(x, all, 2), x)
	for _, r := range rs {
		if slices.Contains(cut, r.m.cfg.Name) {
			r.conn.cut.Store(true)
		}
	}
	var live []*running
	for _, r := range rs {
		if !slices.Contains(cut, r.m.cfg.Name) {
			live = append(live, r)
		}
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if !live[0].m.Alive(x) {
			t.Fatalf("%s sees %s dead before anyone suspects it", live[0].m.cfg.Name, x)
		}
		select {
		case <-live[0].m.Changes():
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, r := range live {
		r.m.SetSuspects(cut)
	}
	want := strings.Join(slices.DeleteFunc(slices.Clone(all), func(s string) bool { return slices.Contains(cut, s) }), ",")
	for _, r := range live {
		waitView(t, r.m, want, 2*time.Second)
	}
}
