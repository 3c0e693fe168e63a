package l2

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/prometheus/client_golang/prometheus"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/beaconlb/beacon/internal/metricstest"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type harness struct {
	r      *Responder
	link   *Link
	arp    *FakeConn
	ndp    *FakeConn
	groups *FakeGroups
	clock  *clocktesting.FakeClock
	reg    *prometheus.Registry
	stop   func()
}

// start runs a responder on a fake link; cfg may set Gratuitous and
// DefendInterval.
func start(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{clock: clocktesting.NewFakeClock(t0), reg: prometheus.NewRegistry()}
	h.link, h.arp, h.ndp, h.groups = NewFakeLink("eth0", ourMAC)
	m, err := NewMetrics(h.reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Link, cfg.Clock, cfg.Metrics, cfg.Logger = h.link, h.clock, m, testr.NewWithOptions(t, testr.Options{Verbosity: 2})
	if h.r, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.r.Run(ctx) }()
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}
	t.Cleanup(h.stop)
	return h
}

// next returns the next frame written to c, failing after a deadline.
func next(t *testing.T, c *FakeConn) []byte {
	t.Helper()
	select {
	case f := <-c.Sent():
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame sent")
		return nil
	}
}

// inject delivers a frame to the responder.
func inject(t *testing.T, c *FakeConn, frame []byte) {
	t.Helper()
	if err := c.Inject(frame); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-time.After(time.Millisecond)
	}
}

// step advances the fake clock once the loop has armed its timer.
func (h *harness) step(t *testing.T, d time.Duration) {
	t.Helper()
	waitFor(t, "the responder's timer", h.clock.HasWaiters)
	h.clock.Step(d)
}

func isARPReplyFor(f []byte, ip netip.Addr) bool {
	p, err := parseARP(f)
	return err == nil && p.kind == kindClaim && p.target == ip && bytes.Equal(f[0:6], peerMAC)
}

func isNAFor(f []byte, ip netip.Addr, solicited bool) bool {
	ipv6 := f[ethHeaderLen:]
	plen := int(ipv6[4])<<8 | int(ipv6[5])
	m, err := ndp.ParseMessage(ipv6[ipv6Len : ipv6Len+plen])
	na, ok := m.(*ndp.NeighborAdvertisement)
	return err == nil && ok && na.TargetAddress == ip && na.Solicited == solicited
}

func isGratuitous(f []byte, ip netip.Addr) bool {
	p, err := parseARP(f)
	return err == nil && p.kind == kindClaim && p.target == ip && bytes.Equal(f[0:6], broadcastMAC)
}

func TestAnswersOnlyAnnouncedAddresses(t *testing.T) {
	h := start(t, Config{Gratuitous: []time.Duration{}})
	h.r.SetAnnounced([]netip.Addr{vip4, vip6})
	other4, other6 := netip.MustParseAddr("198.51.100.202"), netip.MustParseAddr("2001:db8:100::202")

	// The reader handles frames in order, so a reply to the second request
	// coming first shows the first was ignored.
	inject(t, h.arp, arpRequestFrame(other4))
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("first ARP frame is not the reply for %s: %x", vip4, f)
	}
	inject(t, h.ndp, nsFrame(t, other6, nsOpts{}))
	inject(t, h.ndp, nsFrame(t, vip6, nsOpts{}))
	if f := next(t, h.ndp); !isNAFor(f, vip6, true) {
		t.Fatalf("first NDP frame is not the answer for %s: %x", vip6, f)
	}
	// A neighbour's unicast reachability probe is answered too.
	inject(t, h.ndp, nsFrame(t, vip6, nsOpts{dst: vip6}))
	if f := next(t, h.ndp); !isNAFor(f, vip6, true) {
		t.Fatalf("unicast probe not answered: %x", f)
	}
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	waitFor(t, "the solicited-node group", func() bool { return slices.Equal(h.groups.Joined(), []netip.Addr{snm}) })

	// Changing the set takes effect at once.
	h.r.SetAnnounced([]netip.Addr{other4})
	inject(t, h.arp, arpRequestFrame(vip4))
	inject(t, h.arp, arpRequestFrame(other4))
	if f := next(t, h.arp); !isARPReplyFor(f, other4) {
		t.Fatalf("first ARP frame is not the reply for %s: %x", other4, f)
	}
	waitFor(t, "leaving the group", func() bool { return len(h.groups.Joined()) == 0 })

	h.stop()
	if !h.arp.Closed() || !h.ndp.Closed() {
		t.Fatal("Run did not close the link")
	}
}

func TestGratuitousSchedule(t *testing.T) {
	h := start(t, Config{})
	h.r.SetAnnounced([]netip.Addr{vip4, vip6})
	for i, at := range DefaultGratuitous {
		if i > 0 {
			h.step(t, at-DefaultGratuitous[i-1])
		}
		a, b := next(t, h.arp), next(t, h.arp)
		if !isGratuitous(a, vip4) || !isGratuitous(b, vip4) {
			t.Fatalf("round %d at %v: ARP frames %x %x", i, at, a, b)
		}
		if arp.Operation(a[21]) != arp.OperationRequest || arp.Operation(b[21]) != arp.OperationReply {
			t.Fatalf("round %d: want an announcement then a gratuitous reply", i)
		}
		if f := next(t, h.ndp); !isNAFor(f, vip6, false) || !bytes.Equal(f[0:6], multicastMAC(allNodes)) {
			t.Fatalf("round %d: NDP frame %x", i, f)
		}
	}
	// The burst is over: no timer left, and nothing more is sent.
	waitFor(t, "the burst to end", func() bool { return !h.clock.HasWaiters() })
	h.clock.Step(time.Minute)
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("extra frame after the burst: %x", f)
	}
	// Re-announcing an address already announced sends nothing new.
	h.r.SetAnnounced([]netip.Addr{vip6, vip4})
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("unchanged set caused frame %x", f)
	}
	if got := metricValue(t, h.reg, "beacon_l2_gratuitous_sent_total", "ipv4"); got != 8 {
		t.Fatalf("gratuitous ipv4 = %v, want 8", got)
	}
	if got := metricValue(t, h.reg, "beacon_l2_gratuitous_sent_total", "ipv6"); got != 4 {
		t.Fatalf("gratuitous ipv6 = %v, want 4", got)
	}
}

func TestWithdrawStopsTheBurst(t *testing.T) {
	h := start(t, Config{})
	h.r.SetAnnounced([]netip.Addr{vip6})
	if f := next(t, h.ndp); !isNAFor(f, vip6, false) {
		t.Fatalf("round 0: %x", f)
	}
	h.r.SetAnnounced(nil)
	waitFor(t, "the timer to go", func() bool { return !h.clock.HasWaiters() })
	h.clock.Step(time.Minute)
	other := netip.MustParseAddr("2001:db8:100::202")
	inject(t, h.ndp, nsFrame(t, vip6, nsOpts{})) // no longer answered
	h.r.SetAnnounced([]netip.Addr{other})
	if f := next(t, h.ndp); !isNAFor(f, other, false) {
		t.Fatalf("after withdrawal, first frame is %x, want the announcement of %s", f, other)
	}
}

func TestDefendsAgainstOtherClaims(t *testing.T) {
	h := start(t, Config{Gratuitous: []time.Duration{0}, DefendInterval: 10 * time.Second})
	h.r.SetAnnounced([]netip.Addr{vip4})
	next(t, h.arp)
	next(t, h.arp)

	// Another node announces our address: we answer with a burst.
	inject(t, h.arp, mustGratuitous(otherMAC, vip4)[0])
	for range 2 {
		if f := next(t, h.arp); !isGratuitous(f, vip4) {
			t.Fatalf("defence: %x", f)
		}
	}
	// Again within the defend interval: counted, not answered.
	inject(t, h.arp, mustGratuitous(otherMAC, vip4)[1])
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("defended twice within the interval: %x", f)
	}
	// Our own MAC and other addresses are no conflict.
	inject(t, h.arp, mustGratuitous(ourMAC, vip4)[0])
	inject(t, h.arp, mustGratuitous(otherMAC, netip.MustParseAddr("198.51.100.202"))[0])
	h.clock.Step(10 * time.Second)
	inject(t, h.arp, mustARP(arp.OperationReply, otherMAC, peerMAC, peerMAC, vip4, peer4))
	for range 2 {
		if f := next(t, h.arp); !isGratuitous(f, vip4) {
			t.Fatalf("second defence: %x", f)
		}
	}
	// Counted after each claim is queued for the loop.
	waitFor(t, "3 conflicts counted", func() bool { return metricValue(t, h.reg, "beacon_l2_conflicts_total", "ipv4") == 3 })
}

func TestReannounce(t *testing.T) {
	h := start(t, Config{Gratuitous: []time.Duration{0}})
	h.r.SetAnnounced([]netip.Addr{vip4, vip6})
	next(t, h.arp)
	next(t, h.arp)
	next(t, h.ndp)
	h.r.Reannounce()
	for range 2 {
		if f := next(t, h.arp); !isGratuitous(f, vip4) {
			t.Fatalf("reannounce: %x", f)
		}
	}
	if f := next(t, h.ndp); !isNAFor(f, vip6, false) {
		t.Fatalf("reannounce: %x", f)
	}
}

func TestDefendsIPv6(t *testing.T) {
	h := start(t, Config{Gratuitous: []time.Duration{0}})
	h.r.SetAnnounced([]netip.Addr{vip6})
	next(t, h.ndp)
	na, err := unsolicitedNA(otherMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	inject(t, h.ndp, na)
	if f := next(t, h.ndp); !isNAFor(f, vip6, false) || !bytes.Equal(f[6:12], ourMAC) {
		t.Fatalf("defence: %x", f)
	}
}

func TestJoinIsRetried(t *testing.T) {
	h := start(t, Config{Gratuitous: []time.Duration{}})
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	h.groups.FailJoin(snm, true)
	h.r.SetAnnounced([]netip.Addr{vip6})
	h.step(t, 0) // the retry timer is armed...
	if len(h.groups.Joined()) != 0 {
		t.Fatal("joined despite failure")
	}
	h.groups.FailJoin(snm, false)
	h.step(t, time.Second) // ...and fires a second later
	waitFor(t, "the retried join", func() bool { return slices.Equal(h.groups.Joined(), []netip.Addr{snm}) })
}

func TestSetAnnouncedNormalises(t *testing.T) {
	link := &Link{Name: "eth0", MAC: ourMAC, ARP: NewFakeConn()}
	r, err := New(Config{Link: link})
	if err != nil {
		t.Fatal(err)
	}
	r.SetAnnounced([]netip.Addr{
		netip.MustParseAddr("::ffff:198.51.100.201"), // mapped: served as IPv4
		vip4,
		vip6, // no NDP socket
		{},
		netip.IPv4Unspecified(),
		netip.MustParseAddr("224.0.0.1"),
	})
	if got := r.Announced(); !slices.Equal(got, []netip.Addr{vip4}) {
		t.Fatalf("Announced = %v", got)
	}
}

func TestMetrics(t *testing.T) {
	h := start(t, Config{Gratuitous: []time.Duration{}})
	h.r.SetAnnounced([]netip.Addr{vip4, vip6, netip.MustParseAddr("2001:db8:100::202")})
	inject(t, h.arp, arpRequestFrame(netip.MustParseAddr("198.51.100.9")))
	inject(t, h.arp, arpRequestFrame(vip4))
	next(t, h.arp)
	inject(t, h.arp, []byte{1, 2, 3}) // malformed
	inject(t, h.arp, arpRequestFrame(vip4))
	next(t, h.arp)
	for name, want := range map[string]float64{
		"beacon_l2_requests_received_total": 3,
		"beacon_l2_replies_sent_total":      2,
		"beacon_l2_errors_total":            1,
		"beacon_l2_announced_ips":           1,
	} {
		if got := metricValue(t, h.reg, name, "ipv4"); got != want {
			t.Errorf("%s{ipv4} = %v, want %v", name, got, want)
		}
	}
	if got := metricValue(t, h.reg, "beacon_l2_announced_ips", "ipv6"); got != 2 {
		t.Errorf("announced ipv6 = %v", got)
	}
	h.stop()
	if m := metricstest.Find(t, h.reg, "beacon_l2_announced_ips", map[string]string{"family": "ipv4"}); m != nil {
		t.Errorf("announced gauge kept after stop: %v", metricstest.Value(m))
	}
}

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no link", Config{}, "Link is required"},
		{"no MAC", Config{Link: &Link{Name: "wg0", ARP: NewFakeConn()}}, "not an Ethernet address"},
		{"no sockets", Config{Link: &Link{Name: "eth0", MAC: ourMAC}}, "neither"},
		{"NDP without groups", Config{Link: &Link{Name: "eth0", MAC: ourMAC, NDP: NewFakeConn()}}, "needs Groups"},
		{"unsorted schedule", Config{Link: &Link{Name: "eth0", MAC: ourMAC, ARP: NewFakeConn()}, Gratuitous: []time.Duration{time.Second, 0}}, "ascending"},
		{"negative schedule", Config{Link: &Link{Name: "eth0", MAC: ourMAC, ARP: NewFakeConn()}, Gratuitous: []time.Duration{-1}}, "non-negative"},
		{"long schedule", Config{Link: &Link{Name: "eth0", MAC: ourMAC, ARP: NewFakeConn()}, Gratuitous: make([]time.Duration, 17)}, "at most 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRunsOnce(t *testing.T) {
	h := start(t, Config{})
	h.stop()
	if err := h.r.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// metricValue reads one series by family from a registry; 0 if absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name, family string) float64 {
	t.Helper()
	return metricstest.Value(metricstest.Find(t, reg, name, map[string]string{"family": family}))
}

// claimTaken waits until the loop has taken the n-th claim: what it does
// with it happens before it looks at its timer again.
func (h *harness) claimTaken(t *testing.T, n float64) {
	t.Helper()
	waitFor(t, "the claim", func() bool {
		return metricValue(t, h.reg, "beacon_l2_conflicts_total", "ipv4") == n && len(h.r.claims) == 0
	})
}

func isProbe(f []byte, ip netip.Addr) bool {
	if ip.Is4() {
		p, err := parseARP(f)
		return err == nil && p.kind == kindRequest && p.target == ip && p.senderIP == netip.IPv4Unspecified()
	}
	p, err := parseNDP(f)
	return err == nil && p.kind == kindRequest && p.target == ip && p.senderIP == netip.IPv6Unspecified()
}

// hostReply is what a Linux host using ip answers to our ARP Probe: an
// unmarked reply naming itself.
func hostReply(ip netip.Addr) []byte {
	f := mustARP(arp.OperationReply, otherMAC, ourMAC, ourMAC, ip, netip.IPv4Unspecified())
	clear(f[ethHeaderLen+arpLen:])
	return f
}

// probeConfig probes 3 times 100 ms apart and decides at 400 ms.
func probeConfig(onChange func()) Config {
	return Config{Gratuitous: []time.Duration{0}, ProbeCount: 3, ProbeInterval: 100 * time.Millisecond,
		ProbeWait: 400 * time.Millisecond, ReprobeInterval: 30 * time.Second, OnChange: onChange}
}

// Before a new address is answered for, it is probed; without an answer
// it is announced once the wait is over, and OnChange says so.
func TestProbeThenAnnounce(t *testing.T) {
	notified := make(chan struct{}, 10)
	h := start(t, probeConfig(func() { notified <- struct{}{} }))
	h.r.Announce([]netip.Addr{vip4}, []netip.Addr{vip4})
	for i := range 3 {
		if f := next(t, h.arp); !isProbe(f, vip4) {
			t.Fatalf("probe %d: %x", i, f)
		}
		if i < 2 {
			h.step(t, 100*time.Millisecond)
		}
	}
	if got := h.r.Announced(); len(got) != 0 {
		t.Fatalf("answered while probing: %v", got)
	}
	// Requests during the probe go unanswered: the next frame is the
	// gratuitous burst after the wait.
	inject(t, h.arp, arpRequestFrame(vip4))
	waitFor(t, "the request", func() bool { return metricValue(t, h.reg, "beacon_l2_requests_received_total", "ipv4") == 1 })
	if len(notified) != 0 {
		t.Fatal("OnChange called while probing")
	}
	h.step(t, 200*time.Millisecond)
	if f := next(t, h.arp); !isGratuitous(f, vip4) {
		t.Fatalf("after the wait: %x", f)
	}
	if len(notified) != 1 {
		t.Fatalf("OnChange called %d times when the probe passed, want 1", len(notified))
	}
	next(t, h.arp)
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("not answered after the probe: %x", f)
	}
	if c := h.r.Conflicts(); len(c) != 0 {
		t.Fatalf("conflicts %v", c)
	}
	// An address already in the set is not probed again.
	h.r.Announce([]netip.Addr{vip4}, []netip.Addr{vip4})
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("re-probed an announced address: %x", f)
	}
}

// A host that answers the probe keeps the address: it is not announced,
// Conflicts names the host, and once a re-probe goes unanswered the
// address is announced after all.
func TestProbeFindsConflict(t *testing.T) {
	notified := make(chan struct{}, 10)
	h := start(t, probeConfig(func() { notified <- struct{}{} }))
	h.r.Announce([]netip.Addr{vip4}, []netip.Addr{vip4})
	next(t, h.arp)
	inject(t, h.arp, hostReply(vip4))
	waitFor(t, "the conflict", func() bool { return len(h.r.Conflicts()) == 1 })
	c := h.r.Conflicts()[0]
	if c.IP != vip4 || c.MAC.String() != otherMAC.String() || c.Announced || c.Interface != "eth0" {
		t.Fatalf("conflict %+v", c)
	}
	<-notified
	if got := metricValue(t, h.reg, "beacon_l2_conflicting_ips", "ipv4"); got != 1 {
		t.Fatalf("conflicting_ips = %v", got)
	}
	// No more probes, no burst, no answers.
	inject(t, h.arp, arpRequestFrame(vip4))
	h.step(t, time.Second)
	select {
	case f := <-h.arp.Sent():
		t.Fatalf("sent %x for an address in conflict", f)
	case <-time.After(50 * time.Millisecond):
	}
	// The re-probe is answered again: still in conflict.
	h.step(t, 29*time.Second)
	if f := next(t, h.arp); !isProbe(f, vip4) {
		t.Fatalf("re-probe: %x", f)
	}
	inject(t, h.arp, hostReply(vip4))
	h.claimTaken(t, 2)
	h.step(t, time.Second)
	select {
	case f := <-h.arp.Sent():
		t.Fatalf("sent %x after the re-probe was answered", f)
	case <-time.After(50 * time.Millisecond):
	}
	if c := h.r.Conflicts(); len(c) != 1 {
		t.Fatalf("conflicts %v", c)
	}
	// The host is gone: the next re-probe goes unanswered.
	h.step(t, 29*time.Second)
	for i := range 3 {
		if f := next(t, h.arp); !isProbe(f, vip4) {
			t.Fatalf("second re-probe %d: %x", i, f)
		}
		if i < 2 {
			h.step(t, 100*time.Millisecond)
		}
	}
	h.step(t, 200*time.Millisecond)
	if f := next(t, h.arp); !isGratuitous(f, vip4) {
		t.Fatalf("not announced once free: %x", f)
	}
	waitFor(t, "the conflict to clear", func() bool { return len(h.r.Conflicts()) == 0 })
	<-notified
}

// Another speaker answering the probe (it still holds the address a
// moment) is no conflict.
func TestProbeAnsweredBySpeaker(t *testing.T) {
	h := start(t, probeConfig(nil))
	h.r.Announce([]netip.Addr{vip4}, []netip.Addr{vip4})
	next(t, h.arp)
	inject(t, h.arp, mustARP(arp.OperationReply, otherMAC, ourMAC, ourMAC, vip4, netip.IPv4Unspecified()))
	h.step(t, 100*time.Millisecond)
	next(t, h.arp)
	h.step(t, 100*time.Millisecond)
	next(t, h.arp)
	h.step(t, 200*time.Millisecond)
	if f := next(t, h.arp); !isGratuitous(f, vip4) {
		t.Fatalf("not announced: %x", f)
	}
	if c := h.r.Conflicts(); len(c) != 0 {
		t.Fatalf("a speaker's answer made a conflict: %v", c)
	}
}

// While announcing, another host's claim is defended and confirmed by a
// probe: answered, it is a conflict that is reported, and the address stays
// announced; unanswered (a claim and gone), it is none. Another speaker's
// claim is only defended.
func TestClaimWhileAnnouncing(t *testing.T) {
	h := start(t, probeConfig(nil))
	h.r.SetAnnounced([]netip.Addr{vip4})
	next(t, h.arp)
	next(t, h.arp)
	inject(t, h.arp, mustGratuitous(otherMAC, vip4)[0]) // a speaker's
	for range 2 {
		if f := next(t, h.arp); !isGratuitous(f, vip4) {
			t.Fatalf("defence against a speaker: %x", f)
		}
	}
	hostClaim := mustGratuitous(otherMAC, vip4)[0]
	clear(hostClaim[ethHeaderLen+arpLen:])

	// A host claims it and answers the confirming probe.
	h.clock.Step(10 * time.Second) // past the defend interval
	inject(t, h.arp, hostClaim)
	probed := 0
	for range 3 { // the probe and the defence's two frames, in any order
		f := next(t, h.arp)
		if isProbe(f, vip4) {
			probed++
		} else if !isGratuitous(f, vip4) {
			t.Fatalf("after a host's claim: %x", f)
		}
	}
	if probed != 1 {
		t.Fatalf("%d probes after a host's claim, want 1", probed)
	}
	if c := h.r.Conflicts(); len(c) != 0 {
		t.Fatalf("a claim alone made a conflict: %v", c)
	}
	inject(t, h.arp, hostReply(vip4))
	waitFor(t, "the conflict", func() bool { return len(h.r.Conflicts()) == 1 })
	if c := h.r.Conflicts()[0]; !c.Announced || c.MAC.String() != otherMAC.String() {
		t.Fatalf("conflict %+v", c)
	}
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("stopped answering: %x", f)
	}
	// Withdrawn: the conflict goes with it.
	h.r.SetAnnounced(nil)
	waitFor(t, "the conflict to go", func() bool { return len(h.r.Conflicts()) == 0 })
}

// A claim whose probe nobody answers is no conflict.
func TestClaimNotConfirmed(t *testing.T) {
	h := start(t, probeConfig(nil))
	h.r.SetAnnounced([]netip.Addr{vip4})
	next(t, h.arp)
	next(t, h.arp)
	g := mustGratuitous(otherMAC, vip4)[0]
	clear(g[ethHeaderLen+arpLen:])
	inject(t, h.arp, g)
	for range 3 {
		next(t, h.arp) // first probe and the defence
	}
	for range 2 {
		h.step(t, 100*time.Millisecond)
		if f := next(t, h.arp); !isProbe(f, vip4) {
			t.Fatalf("probe: %x", f)
		}
	}
	h.step(t, 200*time.Millisecond)
	waitFor(t, "the probe to settle", func() bool { return !h.clock.HasWaiters() })
	if c := h.r.Conflicts(); len(c) != 0 {
		t.Fatalf("conflict without an answer: %v", c)
	}
	inject(t, h.arp, arpRequestFrame(vip4))
	if f := next(t, h.arp); !isARPReplyFor(f, vip4) {
		t.Fatalf("not answering: %x", f)
	}
}

// IPv6: a Duplicate Address Detection probe, answered by a host's
// advertisement to all nodes.
func TestDADFindsConflict(t *testing.T) {
	h := start(t, probeConfig(nil))
	h.r.Announce([]netip.Addr{vip6}, []netip.Addr{vip6})
	if f := next(t, h.ndp); !isProbe(f, vip6) {
		t.Fatalf("DAD probe: %x", f)
	}
	na, err := unsolicitedNA(otherMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	inject(t, h.ndp, na[:len(na)-len(speakerMark)])
	waitFor(t, "the conflict", func() bool { return len(h.r.Conflicts()) == 1 })
	if c := h.r.Conflicts()[0]; c.IP != vip6 || c.Announced || c.MAC.String() != otherMAC.String() {
		t.Fatalf("conflict %+v", c)
	}
	if got := h.r.Announced(); len(got) != 0 {
		t.Fatalf("answered: %v", got)
	}
}

// A checked address is probed once and never answered for: Checked lists
// it once the wait is over (and OnChange says so); a host that answers
// makes it a conflict instead, not announced.
func TestCheckProbesWithoutAnnouncing(t *testing.T) {
	notified := make(chan struct{}, 10)
	h := start(t, probeConfig(func() { notified <- struct{}{} }))
	h.r.Check([]netip.Addr{vip4})
	for i := range 3 {
		if f := next(t, h.arp); !isProbe(f, vip4) {
			t.Fatalf("probe %d: %x", i, f)
		}
		if i < 2 {
			h.step(t, 100*time.Millisecond)
		}
	}
	if got := h.r.Checked(); len(got) != 0 {
		t.Fatalf("checked while probing: %v", got)
	}
	h.step(t, 200*time.Millisecond)
	waitFor(t, "the check", func() bool { return len(h.r.Checked()) == 1 })
	<-notified
	// Never answered for, no gratuitous burst.
	inject(t, h.arp, arpRequestFrame(vip4))
	waitFor(t, "the request", func() bool { return metricValue(t, h.reg, "beacon_l2_requests_received_total", "ipv4") == 1 })
	select {
	case f := <-h.arp.Sent():
		t.Fatalf("sent %x for a checked address", f)
	case <-time.After(50 * time.Millisecond):
	}
	if got := h.r.Announced(); len(got) != 0 {
		t.Fatalf("announced %v", got)
	}
	// The same set again probes nothing; a new address is probed and
	// answered by another host.
	other := vip4.Next()
	h.r.Check([]netip.Addr{vip4, other})
	if f := next(t, h.arp); !isProbe(f, other) {
		t.Fatalf("probe of the new address: %x", f)
	}
	inject(t, h.arp, hostReply(other))
	waitFor(t, "the conflict", func() bool { return len(h.r.Conflicts()) == 1 })
	if c := h.r.Conflicts()[0]; c.IP != other || c.Announced {
		t.Fatalf("conflict %+v", c)
	}
	if got := h.r.Checked(); len(got) != 1 || got[0] != vip4 {
		t.Fatalf("checked %v, want only %s", got, vip4)
	}
	// Leaving the set ends the check and the conflict.
	h.r.Check(nil)
	if got, c := h.r.Checked(), h.r.Conflicts(); len(got) != 0 || len(c) != 0 {
		t.Fatalf("after clearing: checked %v conflicts %v", got, c)
	}
}
