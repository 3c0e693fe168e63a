package nodeport

// A small network-namespace topology for the real-kernel tests:
//
//	client (198.51.100.100, 198.18.200.10, 2001:db8:100::100)
//	   | lan0
//	node (198.51.100.11, 2001:db8:100::11) -- runs the Applier
//	   | pod1..podN (node side 198.18.1.1, 2001:db8:18:1::1)
//	podK (198.18.1.1K, 2001:db8:18:1::1K) -- echo server on 8080 tcp+udp
//
// Every namespace is named beacon-np-<id>-<role> and removed by t.Cleanup.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/beaconlb/beacon/internal/netnstest"
)

const echoPort = 8080

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and nftables tables")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

type netNS struct {
	name string
	h    netns.NsHandle
}

func newNS(t testing.TB, name string) *netNS {
	t.Helper()
	netnstest.New(t, name)
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return &netNS{name: name, h: h}
}

func (ns *netNS) ip(t testing.TB, args ...string) {
	t.Helper()
	run(t, "ip", append([]string{"-n", ns.name}, args...)...)
}

func (ns *netNS) exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// do runs fn in the namespace (see netnstest.Do).
func (ns *netNS) do(fn func() error) error { return netnstest.Do(ns.name, fn) }

type pod struct {
	*netNS
	name   string
	v4, v6 netip.Addr
}

type lab struct {
	id     string
	node   *netNS
	client *netNS
	pods   []*pod
}

var (
	nodeV4   = netip.MustParseAddr("198.51.100.11")
	nodeV6   = netip.MustParseAddr("2001:db8:100::11")
	clientV4 = netip.MustParseAddr("198.51.100.100")
	clientV6 = netip.MustParseAddr("2001:db8:100::100")
	extV4    = netip.MustParseAddr("198.18.200.10")
	podGW4   = netip.MustParseAddr("198.18.1.1")
	podGW6   = netip.MustParseAddr("2001:db8:18:1::1")
)

func newLab(t testing.TB, pods int) *lab {
	t.Helper()
	requireRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	l := &lab{id: hex.EncodeToString(b)}
	prefix := "beacon-np-" + l.id + "-"
	l.node = newNS(t, prefix+"node")
	l.client = newNS(t, prefix+"client")
	l.node.exec(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")

	l.node.ip(t, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", l.client.name)
	l.node.ip(t, "addr", "add", nodeV4.String()+"/24", "dev", "lan0")
	l.node.ip(t, "addr", "add", nodeV6.String()+"/64", "dev", "lan0", "nodad")
	l.node.ip(t, "link", "set", "lan0", "up")
	l.node.ip(t, "route", "add", "default", "via", clientV4.String())
	l.node.ip(t, "-6", "route", "add", "default", "via", clientV6.String())

	l.client.ip(t, "addr", "add", clientV4.String()+"/24", "dev", "lan0")
	l.client.ip(t, "addr", "add", extV4.String()+"/24", "dev", "lan0")
	l.client.ip(t, "addr", "add", clientV6.String()+"/64", "dev", "lan0", "nodad")
	l.client.ip(t, "link", "set", "lan0", "up")
	// No speaker here: the client routes Service addresses to the node.
	for _, dst := range []string{"198.51.100.192/26", "203.0.113.0/24", "198.19.0.0/16"} {
		l.client.ip(t, "route", "add", dst, "via", nodeV4.String())
	}
	for _, dst := range []string{"2001:db8:100::200/120", "2001:db8:19::/112"} {
		l.client.ip(t, "-6", "route", "add", dst, "via", nodeV6.String())
	}

	for i := 1; i <= pods; i++ {
		p := &pod{
			name: fmt.Sprintf("pod%d", i),
			v4:   netip.MustParseAddr(fmt.Sprintf("198.18.1.%d", 10+i)),
			v6:   netip.MustParseAddr(fmt.Sprintf("2001:db8:18:1::%d", 10+i)),
		}
		p.netNS = newNS(t, prefix+p.name)
		l.node.ip(t, "link", "add", p.name, "type", "veth", "peer", "name", "eth0", "netns", p.netNS.name)
		l.node.ip(t, "addr", "add", podGW4.String()+"/32", "dev", p.name)
		l.node.ip(t, "addr", "add", podGW6.String()+"/128", "dev", p.name, "nodad")
		l.node.ip(t, "link", "set", p.name, "up")
		l.node.ip(t, "route", "add", p.v4.String()+"/32", "dev", p.name)
		l.node.ip(t, "-6", "route", "add", p.v6.String()+"/128", "dev", p.name)
		p.ip(t, "addr", "add", p.v4.String()+"/32", "dev", "eth0")
		p.ip(t, "addr", "add", p.v6.String()+"/128", "dev", "eth0", "nodad")
		p.ip(t, "link", "set", "eth0", "up")
		p.ip(t, "route", "add", "default", "via", podGW4.String(), "dev", "eth0", "onlink")
		p.ip(t, "-6", "route", "add", "default", "via", podGW6.String(), "dev", "eth0", "onlink")
		startEcho(t, p)
		l.pods = append(l.pods, p)
	}
	return l
}

// startEcho serves, in the pod's namespace, one line "<pod> <client
// addr:port>" per TCP connection and per UDP datagram.
func startEcho(t testing.TB, p *pod) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := p.do(func() (err error) {
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", echoPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", echoPort))
		return err
	})
	if err != nil {
		t.Fatalf("echo in %s: %v", p.name, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		_ = pc.Close()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			from := netip.MustParseAddrPort(c.RemoteAddr().String())
			_, _ = fmt.Fprintf(c, "%s %s\n", p.name, unmapAP(from))
			_ = c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ap := netip.MustParseAddrPort(from.String())
			_, _ = pc.WriteTo([]byte(fmt.Sprintf("%s %s\n", p.name, unmapAP(ap))), from)
		}
	}()
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// reply is what an echo server answered.
type reply struct {
	pod    string
	client netip.AddrPort
}

func parseReply(s string) (reply, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return reply{}, fmt.Errorf("bad reply %q", s)
	}
	ap, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return reply{}, fmt.Errorf("bad reply %q: %w", s, err)
	}
	return reply{f[0], ap}, nil
}

// tcpAsk connects from ns (optionally from src) to dst and reads the reply.
func tcpAsk(ns *netNS, src netip.Addr, dst netip.AddrPort, timeout time.Duration) (reply, error) {
	var c net.Conn
	err := ns.do(func() (err error) {
		d := net.Dialer{Timeout: timeout}
		if src.IsValid() {
			d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
		}
		c, err = d.Dial("tcp", dst.String())
		return err
	})
	if err != nil {
		return reply{}, err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return reply{}, fmt.Errorf("read from %s: %w", dst, err)
	}
	return parseReply(line)
}

// udpConn is a connected UDP socket in a namespace, with a fixed source
// port so that one conntrack flow carries all its datagrams.
type udpConn struct{ c *net.UDPConn }

func dialUDP(ns *netNS, src netip.AddrPort, dst netip.AddrPort) (*udpConn, error) {
	var c *net.UDPConn
	err := ns.do(func() (err error) {
		var laddr *net.UDPAddr
		if src.IsValid() {
			laddr = net.UDPAddrFromAddrPort(src)
		}
		c, err = net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &udpConn{c}, nil
}

// ask sends one datagram and waits for the answer.
func (u *udpConn) ask(timeout time.Duration) (reply, error) {
	if _, err := u.c.Write([]byte("hi")); err != nil {
		return reply{}, err
	}
	_ = u.c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 1500)
	n, err := u.c.Read(buf)
	if err != nil {
		return reply{}, err
	}
	return parseReply(string(buf[:n]))
}

func (u *udpConn) Close() error { return u.c.Close() }

// eventually polls fn every 10 ms until it succeeds or the deadline.
func eventually(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
