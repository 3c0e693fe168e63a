package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	routerASN  = 64500
	speakerASN = 64512
)

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) add(p, a string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.WriteString(p + " " + a + "\n")
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runSpeaker starts a Speaker in this (speaker) namespace until the test
// ends. Its log, gobgp's included, is kept for assertions.
func runSpeaker(t *testing.T, cfg Config) (*Speaker, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	cfg.Log = funcr.New(logs.add, funcr.Options{Verbosity: 2})
	cfg.GoBGPLogLevel = -4 // debug: the password must not show up even there
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("--- speaker log (tail) ---\n%s", tail(logs.String(), 4000))
		}
	})
	return s, logs
}

func session(s *Speaker, name string) Session {
	for _, x := range s.Sessions() {
		if x.Name == name {
			return x
		}
	}
	return Session{}
}

func waitEstablished(t *testing.T, s *Speaker, f *frr, name, addr string) {
	t.Helper()
	waitFor(t, 20*time.Second, name+" Established on both sides", func() (bool, string) {
		st := session(s, name)
		r := f.neighborState(addr)
		return st.Established() && r == "Established", fmt.Sprintf("speaker %+v, router %s, err %v", st, r, s.Err())
	})
}

func v4Peer() Peer {
	return Peer{Name: "router", Address: netip.MustParseAddr(routerV4), MyASN: speakerASN, PeerASN: routerASN,
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}
}

// The v6 peer is iBGP: the session's own myASN (64500) differs from the
// speaker's global ASN, which gobgp supports per peer.
func v6Peer() Peer {
	return Peer{Name: "router6", Address: netip.MustParseAddr(routerV6), MyASN: routerASN, PeerASN: routerASN,
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func std(a, b uint32) Community      { return Community{Value: [3]uint32{a<<16 | b}} }
func large(a, b, c uint32) Community { return Community{Large: true, Value: [3]uint32{a, b, c}} }

// TestAnnounceToFRR: sessions come up over IPv4 (eBGP) and IPv6 (iBGP);
// routes reach FRR's RIB and the kernel FIB with the speaker as next hop and
// the configured communities and local preference; per-peer changes are
// soft resets, not session resets; withdrawing removes the routes.
func TestAnnounceToFRR(t *testing.T) {
	_, rNS := netnsOrSkip(t)
	f := startFRR(t, rNS, frrConfig{ASN: routerASN, Neighbors: []frrNeighbor{
		{Address: speakerV4, ASN: speakerASN}, {Address: speakerV6, ASN: routerASN},
	}})
	reg := prometheus.NewRegistry()
	s, _ := runSpeaker(t, Config{Registerer: reg})

	lp := uint32(250)
	p4, p6 := v4Peer(), v6Peer()
	p4.Routes = []Route{{Prefix: pfx("203.0.113.10/32"), Communities: []Community{std(65000, 100), large(1, 2, 3)}}}
	p6.Routes = []Route{{Prefix: pfx("2001:db8:203::10/128"), Communities: []Community{std(65000, 200)}, LocalPref: &lp}}
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p4, p6}})
	waitEstablished(t, s, f, "router", speakerV4)
	waitEstablished(t, s, f, "router6", speakerV6)

	waitFor(t, 10*time.Second, "IPv4 route in FRR's RIB and FIB", func() (bool, string) {
		r, err := f.route("203.0.113.10/32")
		fib := f.fib("203.0.113.10")
		return err == nil && len(r) == 1 && strings.Contains(fib, "via "+speakerV4), fmt.Sprintf("%+v %v fib=%q", r, err, fib)
	})
	r, _ := f.route("203.0.113.10/32")
	if !slices.Equal(r[0].Communities, []string{"65000:100"}) || !slices.Equal(r[0].LargeCommunities, []string{"1:2:3"}) ||
		len(r[0].NextHops) == 0 || r[0].NextHops[0].String() != speakerV4 {
		t.Errorf("IPv4 route attributes: %+v", r[0])
	}
	waitFor(t, 10*time.Second, "IPv6 route in FRR's RIB and FIB", func() (bool, string) {
		r, err := f.route("2001:db8:203::10/128")
		fib := f.fib("2001:db8:203::10")
		return err == nil && len(r) == 1 && strings.Contains(fib, "via "+speakerV6), fmt.Sprintf("%+v %v fib=%q", r, err, fib)
	})
	r, _ = f.route("2001:db8:203::10/128")
	if r[0].LocalPref == nil || *r[0].LocalPref != 250 || !slices.Equal(r[0].Communities, []string{"65000:200"}) {
		t.Errorf("IPv6 route attributes: %+v", r[0])
	}
	if got := metric(t, reg, "beacon_bgp_session_up", "router"); got != 1 {
		t.Errorf("beacon_bgp_session_up{peer=router} = %v", got)
	}
	waitFor(t, 5*time.Second, "prefix counts", func() (bool, string) {
		a, b := session(s, "router"), session(s, "router6")
		return a.Prefixes == 1 && b.Prefixes == 1 && a.UpdatesSent > 0, fmt.Sprintf("%+v %+v", a, b)
	})

	// New attributes for an announced route: a soft reset, same session.
	flops := f.established(speakerV4)
	p4.Routes[0].Communities = []Community{std(65000, 300)}
	p4.Routes = append(p4.Routes, Route{Prefix: pfx("203.0.113.0/24")})
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p4, p6}})
	waitFor(t, 10*time.Second, "new community and aggregate", func() (bool, string) {
		r, err := f.route("203.0.113.10/32")
		agg, err2 := f.route("203.0.113.0/24")
		return err == nil && err2 == nil && len(r) == 1 && slices.Equal(r[0].Communities, []string{"65000:300"}) && len(r[0].LargeCommunities) == 0 && len(agg) == 1,
			fmt.Sprintf("%+v %+v %v %v", r, agg, err, err2)
	})
	if got := f.established(speakerV4); got != flops {
		t.Errorf("session re-established (%d -> %d) for an attribute change", flops, got)
	}

	// Withdraw everything: routes leave the RIB and the FIB.
	p4.Routes, p6.Routes = nil, nil
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p4, p6}})
	waitFor(t, 10*time.Second, "withdrawal", func() (bool, string) {
		a, _ := f.route("203.0.113.10/32")
		b, _ := f.route("2001:db8:203::10/128")
		fib := f.fib("203.0.113.10") + f.fib("2001:db8:203::10")
		return len(a) == 0 && len(b) == 0 && fib == "", fmt.Sprintf("%+v %+v fib=%q", a, b, fib)
	})
	if got := session(s, "router"); !got.Established() {
		t.Errorf("session went down on withdrawal: %+v", got)
	}
}

// TestGracefulShutdownToFRR: re-advertising a route with the
// GRACEFUL_SHUTDOWN community (a draining node) is a soft change that a
// router honouring it sees at once: the community, and local preference 0
// from its inbound policy, on the same session.
func TestGracefulShutdownToFRR(t *testing.T) {
	_, rNS := netnsOrSkip(t)
	f := startFRR(t, rNS, frrConfig{ASN: routerASN, GracefulShutdown: true, Neighbors: []frrNeighbor{{Address: speakerV4, ASN: speakerASN}}})
	s, _ := runSpeaker(t, Config{})
	p4 := v4Peer()
	p4.Routes = []Route{{Prefix: pfx("203.0.113.10/32"), Communities: []Community{std(65000, 100)}}}
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p4}})
	waitEstablished(t, s, f, "router", speakerV4)
	waitFor(t, 10*time.Second, "route without GRACEFUL_SHUTDOWN", func() (bool, string) {
		r, err := f.route("203.0.113.10/32")
		return err == nil && len(r) == 1 && slices.Equal(r[0].Communities, []string{"65000:100"}) && r[0].LocalPref == nil, fmt.Sprintf("%+v %v", r, err)
	})
	flops := f.established(speakerV4)
	p4.Routes[0].Communities = append(p4.Routes[0].Communities, std(65535, 0))
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p4}})
	waitFor(t, 10*time.Second, "route with GRACEFUL_SHUTDOWN, local preference 0, still in the FIB", func() (bool, string) {
		r, err := f.route("203.0.113.10/32")
		fib := f.fib("203.0.113.10")
		return err == nil && len(r) == 1 && slices.Equal(r[0].Communities, []string{"65000:100", "graceful-shutdown"}) &&
			r[0].LocalPref != nil && *r[0].LocalPref == 0 && strings.Contains(fib, "via "+speakerV4), fmt.Sprintf("%+v %v fib=%q", r, err, fib)
	})
	if got := f.established(speakerV4); got != flops {
		t.Errorf("session re-established (%d -> %d) for the GRACEFUL_SHUTDOWN community", flops, got)
	}
}

// TestPerPeerRoutes: two IPv4 sessions (from two local addresses) get
// different prefixes, and the same prefix with different communities; moving
// a prefix to the other peer too is a soft change.
func TestPerPeerRoutes(t *testing.T) {
	_, rNS := netnsOrSkip(t)
	f := startFRR(t, rNS, frrConfig{ASN: routerASN, Neighbors: []frrNeighbor{
		{Address: speakerV4, ASN: speakerASN}, {Address: speakerV4b, ASN: speakerASN},
	}})
	s, _ := runSpeaker(t, Config{})
	a := v4Peer()
	a.Name = "a"
	a.Source = netip.MustParseAddr(speakerV4)
	b := v4Peer()
	b.Name, b.Address, b.Source = "b", netip.MustParseAddr(routerV4b), netip.MustParseAddr(speakerV4b)
	a.Routes = []Route{{Prefix: pfx("203.0.113.50/32"), Communities: []Community{std(65000, 1)}}, {Prefix: pfx("203.0.113.51/32")}}
	b.Routes = []Route{{Prefix: pfx("203.0.113.50/32"), Communities: []Community{std(65000, 2)}}, {Prefix: pfx("203.0.113.52/32")}}
	d := Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{a, b}}
	s.Apply(d)
	waitEstablished(t, s, f, "a", speakerV4)
	waitEstablished(t, s, f, "b", speakerV4b)

	// from renders a prefix's paths as "peer=community" pairs.
	from := func(prefix string) string {
		r, err := f.route(prefix)
		if err != nil {
			return err.Error()
		}
		var out []string
		for _, p := range r {
			out = append(out, p.Peer.String()+"="+strings.Join(p.Communities, " "))
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}
	want := map[string]string{
		"203.0.113.50/32": speakerV4 + "=65000:1 " + speakerV4b + "=65000:2",
		"203.0.113.51/32": speakerV4 + "=",
		"203.0.113.52/32": speakerV4b + "=",
	}
	check := func(what string) {
		t.Helper()
		waitFor(t, 10*time.Second, what, func() (bool, string) {
			var bad []string
			for p, w := range want {
				if got := from(p); got != w {
					bad = append(bad, fmt.Sprintf("%s: %q, want %q", p, got, w))
				}
			}
			return len(bad) == 0, strings.Join(bad, "; ")
		})
	}
	check("per-peer routes")

	// .51 goes to b too; .52 leaves b.
	d.Peers[1].Routes = []Route{d.Peers[1].Routes[0], {Prefix: pfx("203.0.113.51/32")}}
	s.Apply(d)
	want["203.0.113.51/32"] = speakerV4 + "= " + speakerV4b + "="
	want["203.0.113.52/32"] = ""
	check("moved routes")
	if session(s, "a").Prefixes != 2 {
		t.Errorf("peer a: %+v", session(s, "a"))
	}
}

// established counts how often FRR saw the neighbor reach Established.
func (f *frr) established(addr string) int {
	var out map[string]struct {
		Estab int `json:"connectionsEstablished"`
	}
	if err := f.json("show bgp neighbors "+addr+" json", &out); err != nil {
		f.t.Fatal(err)
	}
	return out[addr].Estab
}

// metric returns the value of a gauge of the registry for one peer.
func metric(t *testing.T, reg *prometheus.Registry, name, peer string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "peer" && l.GetValue() == peer {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{peer=%q}", name, peer)
	return 0
}

// TestMD5Mismatch: a wrong TCP MD5 password keeps the session down, the
// status says why, the password never appears in the log; the right one
// brings the session up.
func TestMD5Mismatch(t *testing.T) {
	_, rNS := netnsOrSkip(t)
	const right, wrong = "s3cret-right", "s3cret-wrong"
	f := startFRR(t, rNS, frrConfig{ASN: routerASN, Neighbors: []frrNeighbor{{Address: speakerV4, ASN: speakerASN, Password: right}}})
	s, logs := runSpeaker(t, Config{StuckAfter: 3 * time.Second})
	p := v4Peer()
	p.Password = wrong
	p.Routes = []Route{{Prefix: pfx("203.0.113.20/32")}}
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p}})
	waitFor(t, 15*time.Second, "a clear status for the stuck session", func() (bool, string) {
		st := session(s, "router")
		return st.Message != "", fmt.Sprintf("%+v", st)
	})
	st := session(s, "router")
	if st.Established() || !strings.Contains(st.Message, "password") || !strings.Contains(st.Message, "TCP MD5") {
		t.Errorf("status %+v", st)
	}
	if got := f.neighborState(speakerV4); got == "Established" {
		t.Fatalf("router says Established with a wrong password")
	}

	p.Password = right
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p}})
	waitEstablished(t, s, f, "router", speakerV4)
	waitFor(t, 10*time.Second, "route", func() (bool, string) {
		r, err := f.route("203.0.113.20/32")
		return err == nil && len(r) == 1, fmt.Sprint(r, err)
	})
	if st := session(s, "router"); st.Message != "" {
		t.Errorf("message kept once up: %q", st.Message)
	}
	for _, pw := range []string{right, wrong} {
		if strings.Contains(logs.String(), pw) {
			t.Errorf("password %q appears in the log", pw)
		}
	}
}

// TestBFD: BFD comes up with FRR's bfdd; cutting the link makes FRR drop
// the route within the BFD detection time, long before the 9 s hold time.
func TestBFD(t *testing.T) {
	for _, gr := range []bool{false, true} {
		t.Run(fmt.Sprintf("gracefulRestart=%v", gr), func(t *testing.T) { testBFD(t, gr) })
	}
}

func testBFD(t *testing.T, gr bool) {
	_, rNS := netnsOrSkip(t)
	f := startFRR(t, rNS, frrConfig{ASN: routerASN, Neighbors: []frrNeighbor{{Address: speakerV4, ASN: speakerASN, BFD: true}}})
	reg := prometheus.NewRegistry()
	s, _ := runSpeaker(t, Config{Registerer: reg})
	p := v4Peer()
	p.BFD = &BFD{Receive: 100 * time.Millisecond, Transmit: 100 * time.Millisecond, Multiplier: 3}
	p.GracefulRestart, p.RestartTime = gr, 60*time.Second
	p.Routes = []Route{{Prefix: pfx("203.0.113.30/32")}}
	s.Apply(Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p}})
	waitEstablished(t, s, f, "router", speakerV4)
	waitFor(t, 15*time.Second, "BFD up on both sides", func() (bool, string) {
		var peers []struct {
			Peer   string `json:"peer"`
			Status string `json:"status"`
		}
		err := f.json("show bfd peers json", &peers)
		up := err == nil && len(peers) == 1 && peers[0].Status == "up"
		return up && session(s, "router").BFD == "Up", fmt.Sprintf("%+v %v speaker %+v", peers, err, session(s, "router"))
	})
	waitFor(t, 10*time.Second, "route", func() (bool, string) {
		return f.fib("203.0.113.30") != "", f.fib("203.0.113.30")
	})
	if got := metric(t, reg, "beacon_bgp_bfd_up", "router"); got != 1 {
		t.Errorf("beacon_bgp_bfd_up = %v", got)
	}

	// Cut the link silently: no carrier change on either side (which
	// FRR would notice at once), just no more packets from the speaker.
	cut := time.Now()
	cutLink(t, rNS)
	waitFor(t, 5*time.Second, "route gone after the cut", func() (bool, string) {
		return f.fib("203.0.113.30") == "", f.fib("203.0.113.30")
	})
	took := time.Since(cut)
	t.Logf("link cut -> route gone in %s (BFD 100ms x 3, hold time 9s)", took)
	if took >= 9*time.Second {
		t.Errorf("took %s: the hold time, not BFD, removed the route", took)
	}
}

// cutLink drops every packet from the speaker in the router namespace with
// an nftables input filter, so neither side sees a carrier change.
func cutLink(t *testing.T, rNS string) {
	t.Helper()
	rules := fmt.Sprintf("table inet bgpt_cut {\n chain in {\n  type filter hook input priority 0; policy accept;\n  ip saddr %s drop\n  ip6 saddr %s drop\n }\n}\n", speakerV4, speakerV6)
	cmd := exec.Command("ip", "netns", "exec", rNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "exec", rNS, "nft", "delete", "table", "inet", "bgpt_cut").Run()
	})
}

// --- graceful restart: the speaker is a separate process ---

const envHelper = "BEACON_BGPT_HELPER" // JSON Desired for TestHelperSpeaker

// TestHelperSpeaker is not a test: it is the speaker process of
// TestGracefulRestart, run with envHelper set. It runs until SIGTERM.
func TestHelperSpeaker(t *testing.T) {
	raw := os.Getenv(envHelper)
	if raw == "" {
		t.Skip("helper process only")
	}
	var d Desired
	if err := json.Unmarshal([]byte(raw), &d); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Log: funcr.New(func(p, a string) { fmt.Println(p, a) }, funcr.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signalContext()
	defer stop()
	s.Apply(d)
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func startHelper(t *testing.T, d Desired) *exec.Cmd {
	t.Helper()
	raw, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSpeaker$", "-test.v")
	cmd.Env = append(os.Environ(), envHelper+"="+string(raw))
	out := &syncBuf{}
	cmd.Stdout = writerFunc(func(p []byte) { out.add("", string(p)) })
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("--- helper speaker log (tail) ---\n%s", tail(out.String(), 3000))
		}
	})
	return cmd
}

type writerFunc func([]byte)

func (w writerFunc) Write(p []byte) (int, error) { w(p); return len(p), nil }

// TestGracefulRestart: the speaker process stops (SIGTERM: no NOTIFICATION)
// and FRR keeps forwarding to it (stale route in the FIB); the next speaker
// process re-announces and FRR's route is fresh again. A route the new
// process no longer announces goes away after its End-of-RIB.
func TestGracefulRestart(t *testing.T) {
	for _, withBFD := range []bool{false, true} {
		t.Run(fmt.Sprintf("bfd=%v", withBFD), func(t *testing.T) { testGracefulRestart(t, withBFD) })
	}
}

func testGracefulRestart(t *testing.T, withBFD bool) {
	_, rNS := netnsOrSkip(t)
	f := startFRR(t, rNS, frrConfig{ASN: routerASN, Neighbors: []frrNeighbor{{Address: speakerV4, ASN: speakerASN, BFD: withBFD}}})
	p := v4Peer()
	p.GracefulRestart, p.RestartTime = true, 60*time.Second
	if withBFD {
		p.BFD = &BFD{Receive: 100 * time.Millisecond, Transmit: 100 * time.Millisecond, Multiplier: 3}
	}
	p.Routes = []Route{{Prefix: pfx("203.0.113.40/32")}, {Prefix: pfx("203.0.113.41/32")}}
	d := Desired{ASN: speakerASN, RouterID: netip.MustParseAddr(speakerV4), Peers: []Peer{p}}
	first := startHelper(t, d)
	waitFor(t, 20*time.Second, "routes from the first speaker", func() (bool, string) {
		return f.fib("203.0.113.40") != "" && f.fib("203.0.113.41") != "", f.neighborState(speakerV4)
	})

	if err := first.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	waitFor(t, 15*time.Second, "FRR to notice the restart", func() (bool, string) {
		st := f.neighborState(speakerV4)
		return st != "Established", st
	})
	r, err := f.route("203.0.113.40/32")
	if err != nil || len(r) != 1 || !r[0].Stale || f.fib("203.0.113.40") == "" {
		t.Fatalf("route not kept as stale while the speaker restarts: %+v %v fib=%q", r, err, f.fib("203.0.113.40"))
	}
	// It stays: watch the FIB for a second, over three BFD detection
	// times, so a late BFD Down would have removed it.
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if f.fib("203.0.113.40") == "" {
			t.Fatalf("stale route left the FIB during the restart (router state %s)", f.neighborState(speakerV4))
		}
	}

	// The second process announces only .40.
	d.Peers[0].Routes = d.Peers[0].Routes[:1]
	restarted := time.Now()
	startHelper(t, d)
	defer func() { t.Logf("second speaker: routes fresh after %s", time.Since(restarted)) }()
	waitFor(t, 20*time.Second, "fresh .40 and .41 gone after End-of-RIB", func() (bool, string) {
		r, err := f.route("203.0.113.40/32")
		gone, _ := f.route("203.0.113.41/32")
		ok := err == nil && len(r) == 1 && !r[0].Stale && len(gone) == 0 && f.fib("203.0.113.41") == ""
		return ok, fmt.Sprintf("%+v %v %+v %s", r, err, gone, f.neighborState(speakerV4))
	})
	if f.fib("203.0.113.40") == "" {
		t.Error(".40 left the FIB")
	}
}
