package lab_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// The router: FRR runs with the lab's configuration and lists every node
// as a neighbour; client-ext reaches the pods through it; BGP routes from
// two (throw-away FRR) speakers on the nodes land in the router's kernel
// FIB as one ECMP route over both nodes, traffic from client-ext spreads
// over them by flow, and a withdrawn speaker leaves the set. Down removes
// FRR and every namespace.
func TestLabRouter(t *testing.T) {
	labtest.Require(t)
	root := rootLabState(t)
	bfd := lab.BFDProfile{TransmitInterval: 200 * time.Millisecond, ReceiveInterval: 250 * time.Millisecond, DetectMultiplier: 4}
	l := labtest.Up(t, lab.Config{Nodes: 2, PodsPerNode: 1, Router: lab.RouterConfig{
		BFD:       bfd,
		Passwords: map[string]string{"node1": "s3cret"},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	assertRootUntouched(t, root)
	r := l.Router()
	topo := l.Topology()
	n1, n2 := l.Nodes()[0], l.Nodes()[1]

	// The three daemons run in the router namespace.
	inv := takeInventory(t)
	running := map[string]bool{}
	for _, p := range inv.Processes {
		if p.Netns == topo.Router.Netns {
			running[p.Name] = true
		}
	}
	for _, d := range []string{"zebra", "bgpd", "bfdd"} {
		if !running[d] && !running[lab.FRRProcessName(d)] {
			t.Errorf("%s not running in %s: %v", d, topo.Router.Netns, inv)
		}
	}

	// bgpd runs the lab's configuration: every node's two addresses, AS
	// 64513, not established (no speaker yet).
	var sum map[string]struct {
		AS    uint32                               `json:"as"`
		ID    string                               `json:"routerId"`
		Peers map[string]struct{ RemoteAs uint32 } `json:"peers"`
	}
	if err := r.VtyshJSON(ctx, "show bgp summary json", &sum); err != nil {
		t.Fatal(err)
	}
	for af, want := range map[string][]netip.Addr{"ipv4Unicast": {n1.IPv4, n2.IPv4}, "ipv6Unicast": {n1.IPv6, n2.IPv6}} {
		s := sum[af]
		if s.AS != lab.RouterASN || s.ID != topo.Router.IPv4.String() || len(s.Peers) != len(want) {
			t.Errorf("%s summary: %+v", af, s)
		}
		for _, a := range want {
			if p, ok := s.Peers[a.String()]; !ok || p.RemoteAs != lab.NodeASN {
				t.Errorf("%s summary lacks %v with AS %d: %+v", af, a, lab.NodeASN, s.Peers)
			}
		}
	}
	nbs, err := r.Neighbors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nbs) != 4 {
		t.Fatalf("neighbours: %+v", nbs)
	}
	for _, nb := range nbs {
		if nb.RemoteAS != lab.NodeASN || nb.State == "Established" || (nb.Address.Is4() != (nb.PeerGroup == lab.PeerGroupV4)) {
			t.Errorf("neighbour before any speaker: %+v", nb)
		}
	}
	// One BFD session per neighbour, with the configured profile.
	var peers []lab.BFDPeer
	if err := poll(ctx, func() bool {
		peers, err = r.BFDPeers(ctx)
		return err == nil && len(peers) == 4
	}); err != nil {
		t.Fatalf("BFD sessions: %+v %v", peers, err)
	}
	for _, p := range peers {
		if p.TransmitInterval != bfd.TransmitInterval || p.ReceiveInterval != bfd.ReceiveInterval || p.DetectMultiplier != bfd.DetectMultiplier {
			t.Errorf("BFD session %+v, want profile %+v", p, bfd)
		}
	}

	// client-ext reaches the pods through the router, and the pods see its
	// own address (the nodes route replies back via the router).
	ext := topo.ClientExt
	for _, p := range l.Pods() {
		for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
			want := ext.IPv4
			if a.Is6() {
				want = ext.IPv6
			}
			if rep := httpReply(ctx, t, l, lab.ClientExt, a, "/"); rep.Pod != p.Name || rep.Client.Addr() != want {
				t.Errorf("client-ext -> %s (%v): %+v, want client %v", p.Name, a, rep, want)
			}
		}
	}

	// No route into the BGP pools but through BGP.
	vip4 := netip.MustParseAddr("203.0.113.77")
	vip6 := netip.MustParseAddr("2001:db8:203::77")
	for _, p := range []netip.Prefix{lab.BGPPoolV4, lab.BGPPoolV6} {
		if rts := routesWithin(t, l, topo.Router.Netns, p); len(rts) != 0 {
			t.Errorf("router has routes in %v before any BGP: %v", p, rts)
		}
	}

	// An anycast service address on both pods, routed by each node to its
	// pod, announced by a speaker on each node (node1's with the MD5
	// password the router expects).
	for _, p := range l.Pods() {
		for _, a := range []netip.Addr{vip4, vip6} {
			pfx := netip.PrefixFrom(a, a.BitLen()).String()
			argv := []string{"ip", "addr", "add", pfx, "dev", lab.PodInterface}
			if a.Is6() {
				argv = append(argv, "nodad")
			}
			mustExec(ctx, t, l, p.Netns, argv...)
			mustExec(ctx, t, l, p.Node, "ip", "route", "add", pfx, "dev", p.NodeLink)
		}
	}
	pfx4, pfx6 := netip.PrefixFrom(vip4, 32), netip.PrefixFrom(vip6, 128)
	sp1 := labtest.StartFRRSpeaker(t, l, "node1", labtest.FRRSpeaker{Prefixes: []netip.Prefix{pfx4, pfx6}, Password: "s3cret"})
	labtest.StartFRRSpeaker(t, l, "node2", labtest.FRRSpeaker{Prefixes: []netip.Prefix{pfx4, pfx6}, BFD: true})

	start := time.Now()
	for _, c := range []struct {
		pfx  netip.Prefix
		want []netip.Addr
	}{{pfx4, []netip.Addr{n1.IPv4, n2.IPv4}}, {pfx6, []netip.Addr{n1.IPv6, n2.IPv6}}} {
		if got, err := r.WaitFIBNextHops(ctx, c.pfx, c.want...); err != nil {
			t.Fatalf("ECMP route: %v (%v)", err, got)
		}
	}
	t.Logf("both speakers' routes in the router's FIB %v after starting them", time.Since(start).Round(time.Millisecond))
	if nbs, err = r.Neighbors(ctx); err != nil {
		t.Fatal(err)
	}
	for _, nb := range nbs {
		if nb.State != "Established" || nb.PrefixesAccepted != 1 {
			t.Errorf("neighbour with a speaker: %+v", nb)
		}
	}
	paths, err := r.Paths(ctx, pfx4)
	if err != nil {
		t.Fatal(err)
	}
	var from []netip.Addr
	for _, p := range paths {
		if !p.Valid || !p.Multipath || p.ASPath != "64513" || len(p.NextHops) == 0 || p.NextHops[0] != p.Peer {
			t.Errorf("path %+v", p)
		}
		from = append(from, p.Peer)
	}
	slices.SortFunc(from, netip.Addr.Compare)
	if !slices.Equal(from, []netip.Addr{n1.IPv4, n2.IPv4}) {
		t.Errorf("paths from %v", from)
	}

	// Flows from client-ext spread over both nodes (5-tuple hashing).
	for _, vip := range []netip.Addr{vip4, vip6} {
		seen := map[string]int{}
		for range 16 {
			rep := httpReply(ctx, t, l, lab.ClientExt, vip, "/")
			seen[rep.Pod]++
			want := ext.IPv4
			if vip.Is6() {
				want = ext.IPv6
			}
			if rep.Client.Addr() != want {
				t.Errorf("%v: client %v, want %v", vip, rep.Client, want)
			}
		}
		if len(seen) != 2 {
			t.Errorf("16 flows to %v reached only %v", vip, seen)
		}
	}

	// node2 runs BFD: its sessions with the router come up (node1's stay
	// down: its speaker has no bfdd).
	if err := poll(ctx, func() bool {
		peers, err = r.BFDPeers(ctx)
		up := map[netip.Addr]bool{}
		for _, p := range peers {
			up[p.Peer] = p.Status == "up"
		}
		return err == nil && up[n2.IPv4] && up[n2.IPv6] && !up[n1.IPv4] && !up[n1.IPv6]
	}); err != nil {
		t.Fatalf("BFD with node2 not up: %+v %v", peers, err)
	}

	// Cut node2's LAN link (its switch port): BFD takes it out of both
	// ECMP sets (detection 4 x 250 ms here), long before BGP's hold time.
	mustExec(ctx, t, l, lab.LAN, "ip", "link", "set", n2.Name, "down")
	start = time.Now()
	for _, c := range []struct {
		pfx  netip.Prefix
		want netip.Addr
	}{{pfx4, n1.IPv4}, {pfx6, n1.IPv6}} {
		if _, err := r.WaitFIBNextHops(ctx, c.pfx, c.want); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("node2 left the FIB %v after its link was cut; want BFD speed (under 3 s)", d)
	} else {
		t.Logf("node2 left the FIB %v after its link was cut (BFD 250 ms x 4)", d.Round(time.Millisecond))
	}
	for range 4 {
		if rep := httpReply(ctx, t, l, lab.ClientExt, vip4, "/"); rep.Pod != l.Pods()[0].Name {
			t.Errorf("after node2's link cut: %+v", rep)
		}
	}

	// Tests can reconfigure the router: shutting node1's IPv4 session
	// withdraws the IPv4 route; a bad line is an error.
	if err := r.ConfigureBGP(ctx, "neighbor "+n1.IPv4.String()+" shutdown"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WaitFIBNextHops(ctx, pfx4); err != nil {
		t.Fatal(err)
	}
	if err := r.ConfigureBGP(ctx, "no such command"); err == nil {
		t.Error("ConfigureBGP accepted a bad line")
	}

	// node1's speaker stops: its IPv6 route goes too (session closed).
	if err := l.StopProcess(sp1.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := r.WaitFIBNextHops(ctx, pfx6); err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{lab.BGPPoolV4, lab.BGPPoolV6} {
		if rts := routesWithin(t, l, topo.Router.Netns, p); len(rts) != 0 {
			t.Errorf("router still has routes in %v after every withdrawal: %v", p, rts)
		}
	}

	inv = takeInventory(t)
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, inv)
	assertRootUntouched(t, root)
}

func mustExec(ctx context.Context, t *testing.T, l *lab.Lab, ns string, argv ...string) {
	t.Helper()
	if out, err := l.Exec(ctx, ns, argv...); err != nil {
		t.Fatalf("%v: %v %s", argv, err, out)
	}
}

// routesWithin lists a namespace's routes whose destination lies in p.
func routesWithin(t *testing.T, l *lab.Lab, ns string, p netip.Prefix) []string {
	t.Helper()
	var out []string
	err := l.InNetns(ns, func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		rts, err := h.RouteList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, r := range rts {
			if r.Dst == nil {
				continue
			}
			if a, ok := netip.AddrFromSlice(r.Dst.IP); ok && p.Contains(a.Unmap()) {
				out = append(out, r.String())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// poll calls cond every 20 ms until it holds or ctx ends.
func poll(ctx context.Context, cond func() bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
