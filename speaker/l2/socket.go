package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
)

// OpenLink opens the sockets of the named interface: an AF_PACKET socket
// for ARP when ipv4, and for IPv6 an AF_PACKET socket filtered down to
// Neighbor Solicitations and Advertisements plus a UDP socket that holds
// the solicited-node multicast memberships. It needs CAP_NET_RAW. The
// sockets belong to the network namespace of the calling thread.
//
// Packet sockets rather than an ICMPv6 socket (mdlayher/ndp's Conn) are
// used for NDP because the kernel delivers to ICMPv6 sockets only packets
// addressed to the node: a neighbour's unicast reachability probe for an
// announced address (which is not assigned to any interface) would be
// dropped, its cache entry would fail, and traffic would stall until it
// re-resolved by multicast. Packet sockets bound to one protocol also never
// see the node's own outgoing frames.
func OpenLink(name string, ipv4, ipv6 bool) (*Link, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("open link %s: %w", name, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("open link %s: no Ethernet address (%v)", name, ifi.HardwareAddr)
	}
	l := &Link{Name: name, Index: ifi.Index, MAC: ifi.HardwareAddr}
	ok := false
	defer func() {
		if !ok {
			_ = l.Close()
		}
	}()
	if ipv4 {
		c, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
		if err != nil {
			return nil, fmt.Errorf("open link %s: ARP socket: %w", name, err)
		}
		l.ARP = &packetConn{c}
	}
	if ipv6 {
		c, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: ndpFilter})
		if err != nil {
			return nil, fmt.Errorf("open link %s: NDP socket: %w", name, err)
		}
		l.NDP = &packetConn{c}
		g, err := openGroups(ifi)
		if err != nil {
			return nil, fmt.Errorf("open link %s: %w", name, err)
		}
		l.Groups = g
	}
	ok = true
	return l, nil
}

// ndpFilter keeps IPv6 frames that carry, without extension headers, an
// ICMPv6 Neighbor Solicitation or Advertisement, so that the socket does
// not copy every IPv6 packet of the node to user space.
var ndpFilter = mustAssemble([]bpf.Instruction{
	bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 1}, // next header
	bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
	bpf.LoadAbsolute{Off: ethHeaderLen + ipv6Len, Size: 1}, // ICMPv6 type
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpNS, SkipTrue: 2},
	bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpNA, SkipTrue: 1},
	bpf.RetConstant{Val: 0},
	bpf.RetConstant{Val: 0xffff},
})

func mustAssemble(in []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(in)
	if err != nil {
		panic(err)
	}
	return raw
}

// packetConn adapts an AF_PACKET socket to Conn.
type packetConn struct{ c *packet.Conn }

func (p *packetConn) ReadFrame(b []byte) (int, error) {
	n, _, err := p.c.ReadFrom(b)
	if err != nil {
		return n, fmt.Errorf("read frame: %w", err)
	}
	return n, nil
}

func (p *packetConn) WriteFrame(frame []byte) error {
	if len(frame) < ethHeaderLen {
		return errors.New("write frame: too short")
	}
	// A raw packet socket sends the frame as is; the address only names
	// the destination for the kernel's bookkeeping.
	if _, err := p.c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])}); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

func (p *packetConn) Close() error { return p.c.Close() }

// udpGroups holds multicast memberships on an otherwise unused UDP socket:
// memberships belong to a socket, so closing it drops them all.
type udpGroups struct {
	ifi *net.Interface
	c   net.PacketConn
	p   *ipv6.PacketConn
}

func openGroups(ifi *net.Interface) (*udpGroups, error) {
	c, err := net.ListenPacket("udp6", "[::]:0")
	if err != nil {
		return nil, fmt.Errorf("multicast membership socket (is IPv6 enabled?): %w", err)
	}
	return &udpGroups{ifi: ifi, c: c, p: ipv6.NewPacketConn(c)}, nil
}

func (g *udpGroups) Join(group netip.Addr) error {
	if err := g.p.JoinGroup(g.ifi, &net.UDPAddr{IP: group.AsSlice()}); err != nil {
		return fmt.Errorf("join %s on %s: %w", group, g.ifi.Name, err)
	}
	return nil
}

func (g *udpGroups) Leave(group netip.Addr) error {
	if err := g.p.LeaveGroup(g.ifi, &net.UDPAddr{IP: group.AsSlice()}); err != nil {
		return fmt.Errorf("leave %s on %s: %w", group, g.ifi.Name, err)
	}
	return nil
}

func (g *udpGroups) Close() error { return g.c.Close() }
