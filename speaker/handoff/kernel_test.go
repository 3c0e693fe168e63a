package handoff

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/beaconlb/beacon/internal/netnstest"
	"github.com/beaconlb/beacon/nodeport"
)

// The kernel test builds a small LAN in network namespaces:
//
//	beacon-t-hl-<pid>: bridge br0
//	beacon-t-ha-<pid>: the old announcer A, 198.51.100.11; it holds the
//	                   address X (198.51.100.200) and serves TCP on it
//	beacon-t-hb-<pid>: the new announcer B, 198.51.100.12; a stand-in
//	                   dataplane DNATs X:80 to a closed port, so any flow
//	                   it picks up is reset, as a real one would be
//	beacon-t-hc-<pid>: the client, 198.51.100.100
//
// The client's neighbour entry for X plays the gratuitous ARP: it points at
// A, then at B.
const (
	addrA = "198.51.100.11"
	addrB = "198.51.100.12"
	addrC = "198.51.100.100"
	addrX = "198.51.100.200"
	macA  = "02:be:ac:00:0a:01"
	macB  = "02:be:ac:00:0b:01"
)

type lan struct {
	t          *testing.T
	a, b, c, l string
}

func newLAN(t *testing.T) *lan {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs the nft tool for the stand-in dataplane")
	}
	id := os.Getpid()
	n := &lan{t: t, a: fmt.Sprintf("beacon-t-ha-%d", id), b: fmt.Sprintf("beacon-t-hb-%d", id),
		c: fmt.Sprintf("beacon-t-hc-%d", id), l: fmt.Sprintf("beacon-t-hl-%d", id)}
	for _, ns := range []string{n.l, n.a, n.b, n.c} {
		netnstest.New(t, ns)
	}
	n.must("ip", "-n", n.l, "link", "add", "br0", "type", "bridge")
	n.must("ip", "-n", n.l, "link", "set", "br0", "up")
	for _, s := range []struct{ ns, port, mac, addr string }{
		{n.a, "pa", macA, addrA}, {n.b, "pb", macB, addrB}, {n.c, "pc", "02:be:ac:00:0c:01", addrC},
	} {
		n.must("ip", "-n", n.l, "link", "add", s.port, "type", "veth", "peer", "name", "eth0", "netns", s.ns)
		n.must("ip", "-n", n.l, "link", "set", s.port, "master", "br0", "up")
		n.must("ip", "-n", s.ns, "link", "set", "eth0", "address", s.mac, "up")
		n.must("ip", "-n", s.ns, "addr", "add", s.addr+"/24", "dev", "eth0")
	}
	n.must("ip", "-n", n.a, "addr", "add", addrX+"/32", "dev", "lo")
	n.must("ip", "netns", "exec", n.b, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	n.must("ip", "netns", "exec", n.b, "nft",
		"add table ip standin; add chain ip standin pre { type nat hook prerouting priority -100; }; "+
			"add rule ip standin pre ip daddr "+addrX+" tcp dport 80 dnat to "+addrB+":81")
	return n
}

func (n *lan) must(args ...string) string {
	n.t.Helper()
	out, err := netnstest.Run(args[0], args[1:]...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// pointXAt sets the client's neighbour entry for X, as a gratuitous ARP
// from that node would.
func (n *lan) pointXAt(mac string) {
	n.must("ip", "-n", n.c, "neigh", "replace", addrX, "lladdr", mac, "dev", "eth0", "nud", "permanent")
}

// serveEcho echoes lines on X:80 in A until the test ends.
func (n *lan) serveEcho() {
	var ln net.Listener
	if err := netnstest.Do(n.a, func() (err error) { ln, err = net.Listen("tcp", addrX+":80"); return err }); err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
}

func (n *lan) dial() (net.Conn, error) {
	var c net.Conn
	err := netnstest.Do(n.c, func() (err error) {
		c, err = net.DialTimeout("tcp", addrX+":80", 2*time.Second)
		return err
	})
	if err == nil {
		n.t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// roundTrip sends one line and reads it back within a bound.
func roundTrip(c net.Conn, msg string) error {
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		return err
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if got != msg+"\n" {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func TestKernelHandsOffMidStreamFlows(t *testing.T) {
	n := newLAN(t)
	n.serveEcho()

	// Control: without hand-off, the new announcer resets a connection
	// that started at the old one.
	n.pointXAt(macA)
	c0, err := n.dial()
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c0, "before"); err != nil {
		t.Fatal(err)
	}
	n.pointXAt(macB)
	if err := roundTrip(c0, "moved"); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("without hand-off the moved connection got %v, want a reset", err)
	}

	// With hand-off, it carries on, for several segments.
	n.pointXAt(macA)
	c1, err := n.dial()
	if err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(c1, "before"); err != nil {
		t.Fatal(err)
	}
	k := NewKernel(0, 0, testr.New(t))
	routes := []Route{{IP: netip.MustParseAddr(addrX), Via: netip.MustParseAddr(addrA)}}
	if err := netnstest.Do(n.b, func() error { return k.Apply(routes) }); err != nil {
		t.Fatal(err)
	}
	n.pointXAt(macB)
	for i := range 3 {
		if err := roundTrip(c1, fmt.Sprint("moved ", i)); err != nil {
			t.Fatalf("handed-off connection, segment %d: %v", i, err)
		}
	}
	// New connections are not handed off: they are the new node's.
	if _, err := n.dial(); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("a new connection via the new announcer got %v, want the stand-in dataplane's refusal", err)
	}

	// Readable in nft, one route, one rule per family.
	listing := n.must("ip", "netns", "exec", n.b, "nft", "list", "table", "inet", Table)
	for _, want := range []string{"ip daddr @" + SetV4, "tcp flags ! syn", "ct mark set ct mark | 0x00200000", "dnat ip to ip daddr", addrX} {
		if !strings.Contains(listing, want) {
			t.Errorf("nft listing lacks %q:\n%s", want, listing)
		}
	}
	if got := n.must("ip", "-n", n.b, "route", "show", "table", fmt.Sprint(DefaultRouting)); !strings.Contains(got, addrX+" via "+addrA) {
		t.Errorf("routing table: %q", got)
	}
	for _, fam := range []string{"-4", "-6"} {
		if got := n.must("ip", fam, "-n", n.b, "rule", "show"); strings.Count(got, "lookup "+fmt.Sprint(DefaultRouting)) != 1 {
			t.Errorf("ip %s rule: %q", fam, got)
		}
	}

	// The kernel counted the handed-off flow (and not the refused SYN).
	// (Collect is called here on the namespace's thread; a registry's
	// Gather would run it on another.)
	got := map[string]float64{}
	if err := netnstest.Do(n.b, func() error {
		ch := make(chan prometheus.Metric, 4)
		k.Collect(ch)
		close(ch)
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				return err
			}
			got[m.Desc().String()] = d.GetCounter().GetValue() + d.GetGauge().GetValue()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	flows, addrs := got[descFlows.String()], got[descAddresses.String()]
	if flows != 1 || addrs != 1 {
		t.Errorf("metrics: %v flows, %v addresses; want 1, 1", flows, addrs)
	}

	// Applying nothing empties the set (the table stays, with its
	// counters) and removes the route but keeps one rule; Remove leaves
	// nothing behind.
	if err := netnstest.Do(n.b, func() error { return k.Apply(nil) }); err != nil {
		t.Fatal(err)
	}
	if listing := n.must("ip", "netns", "exec", n.b, "nft", "list", "table", "inet", Table); strings.Contains(listing, addrX) || !strings.Contains(listing, "packets 1") {
		t.Errorf("after Apply(nil), want an empty set and the counter kept:\n%s", listing)
	}
	if got := n.must("ip", "-n", n.b, "route", "show", "table", fmt.Sprint(DefaultRouting)); strings.TrimSpace(got) != "" {
		t.Errorf("routes left after Apply(nil): %q", got)
	}
	if err := netnstest.Do(n.b, func() error { return k.Remove() }); err != nil {
		t.Fatal(err)
	}
	if out, err := netnstest.Run("ip", "netns", "exec", n.b, "nft", "list", "table", "inet", Table); err == nil {
		t.Errorf("table left after Remove:\n%s", out)
	}
	if got := n.must("ip", "-n", n.b, "rule", "show"); strings.Contains(got, fmt.Sprint(DefaultRouting)) {
		t.Errorf("rule left after Remove: %q", got)
	}
}

// TestKernelForgetsClosedFlows: taking an address over deletes this node's
// conntrack entries of finished TCP connections to it (a handed-off flow
// reusing their ports would match one and be dropped); the end of its
// hand-off, the first Apply and Remove delete the entries the steer chain
// marked (a new connection reusing their ports would follow the mark to
// no route); nothing else goes.
func TestKernelForgetsClosedFlows(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	ns := netnstest.New(t, fmt.Sprintf("beacon-t-hct-%d", os.Getpid()))
	// A link on the LAN, so that the routes via A can be made.
	for _, args := range [][]string{
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"addr", "add", addrB + "/24", "dev", "v0"},
		{"link", "set", "v0", "up"},
		{"link", "set", "v1", "up"},
	} {
		if out, err := netnstest.Run("ip", append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	x, y := net.ParseIP(addrX).To4(), net.ParseIP("198.51.100.201").To4()
	client := net.ParseIP(addrC).To4()
	type entry struct {
		dst   net.IP
		port  uint16
		state uint8
		left  uint32 // seconds
		keep  bool
		mark  uint32
	}
	entries := []entry{
		{x, 40000, nodeport.TCPTimeWait, 50, false, 0},
		{x, 40001, nodeport.TCPClose, 10, false, 0},
		{x, 40002, 3 /* ESTABLISHED */, 120, true, 0},
		{y, 40003, nodeport.TCPTimeWait, 50, true, 0}, // another address
		// Closed seconds ago: a handed-off flow may already reuse its ports.
		{x, 40005, nodeport.TCPTimeWait, 110, false, 0},
		// Handed off to another node: kept while x is handed off.
		{x, 40006, 3 /* ESTABLISHED */, 300, true, DefaultMark},
		// Marked for an address handed off no more (a crashed speaker's).
		{y, 40007, 5 /* CLOSE_WAIT */, 3000, false, DefaultMark},
	}
	flow := func(e entry) *netlink.ConntrackFlow {
		f := &netlink.ConntrackFlow{FamilyType: unix.AF_INET, TimeOut: e.left, Mark: e.mark, ProtoInfo: &netlink.ProtoInfoTCP{State: e.state}}
		f.Forward = netlink.IPTuple{SrcIP: client, DstIP: e.dst, SrcPort: e.port, DstPort: 80, Protocol: unix.IPPROTO_TCP}
		f.Reverse = netlink.IPTuple{SrcIP: e.dst, DstIP: client, SrcPort: 80, DstPort: e.port, Protocol: unix.IPPROTO_TCP}
		return f
	}
	left := func() map[uint16]bool {
		out := map[uint16]bool{}
		err := netnstest.Do(ns, func() error {
			flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
			for _, f := range flows {
				if f.Forward.SrcIP.Equal(client) {
					out[f.Forward.SrcPort] = true
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	k := NewKernel(0, 0, testr.New(t))
	k.forgetAfter = 0
	t.Cleanup(func() { _ = k.Close() })
	if err := netnstest.Do(ns, func() error {
		for _, e := range entries {
			if err := netlink.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, flow(e)); err != nil {
				return fmt.Errorf("creating the entry of port %d: %w", e.port, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := left(); len(got) != len(entries) {
		t.Fatalf("created entries of ports %v, want %d", got, len(entries))
	}
	routes := []Route{{IP: netip.MustParseAddr(addrX), Via: netip.MustParseAddr(addrA)}}
	if err := netnstest.Do(ns, func() error { return k.Apply(routes) }); err != nil {
		t.Fatal(err)
	}
	got := left()
	for _, e := range entries {
		if got[e.port] != e.keep {
			t.Errorf("entry of port %d (state %d, to %s) left: %v, want %v", e.port, e.state, e.dst, got[e.port], e.keep)
		}
	}
	// An address already handed off is not swept again.
	if err := netnstest.Do(ns, func() error {
		return netlink.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, flow(entry{x, 40004, nodeport.TCPTimeWait, 50, true, 0}))
	}); err != nil {
		t.Fatal(err)
	}
	if err := netnstest.Do(ns, func() error {
		return k.Apply(append(routes, Route{IP: netip.MustParseAddr("198.51.100.202"), Via: netip.MustParseAddr(addrA)}))
	}); err != nil {
		t.Fatal(err)
	}
	if !left()[40004] {
		t.Errorf("the entry of port 40004 was deleted, though its address was handed off already")
	}
	// The hand-off of x ends: its marked entry stays for forgetAfter
	// (segments under way still follow it), then goes at the next Apply,
	// the same routes again; the others stay.
	k.forgetAfter = time.Hour
	other := []Route{{IP: netip.MustParseAddr("198.51.100.202"), Via: netip.MustParseAddr(addrA)}}
	if err := netnstest.Do(ns, func() error { return k.Apply(other) }); err != nil {
		t.Fatal(err)
	}
	if !left()[40006] {
		t.Errorf("the marked entry of port 40006 was deleted as the hand-off of %s ended, before forgetAfter", addrX)
	}
	k.forgetAfter = 0
	if err := netnstest.Do(ns, func() error { return k.Apply(other) }); err != nil {
		t.Fatal(err)
	}
	got = left()
	if got[40006] {
		t.Errorf("the marked entry of port 40006 is left forgetAfter after the hand-off of %s ended", addrX)
	}
	for _, p := range []uint16{40002, 40003, 40004} {
		if !got[p] {
			t.Errorf("the unmarked entry of port %d was deleted when the hand-off of %s ended", p, addrX)
		}
	}
	// Remove deletes every marked entry.
	if err := netnstest.Do(ns, func() error {
		return netlink.ConntrackCreate(netlink.ConntrackTable, unix.AF_INET, flow(entry{x, 40008, 3, 300, false, DefaultMark}))
	}); err != nil {
		t.Fatal(err)
	}
	if err := netnstest.Do(ns, k.Remove); err != nil {
		t.Fatal(err)
	}
	if got := left(); got[40008] || !got[40002] {
		t.Errorf("after Remove: entries of ports %v, want 40002 and not 40008", got)
	}
}
