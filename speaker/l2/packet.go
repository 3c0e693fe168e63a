package l2

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// Frame layout constants. Frames are Ethernet II without VLAN tags (the
// kernel strips them before a packet socket on the VLAN interface sees
// them) and without the FCS.
const (
	ethHeaderLen = 14
	minFrameLen  = 60 // Ethernet minimum without FCS; shorter frames are padded
	arpLen       = 28
	ipv6Len      = 40

	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd

	protoICMPv6 = 58
	ndpHopLimit = 255

	icmpNS = 135
	icmpNA = 136
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	allNodes     = netip.MustParseAddr("ff02::1")
)

// errIgnore marks frames that are well-formed but not for us to act on.
var errIgnore = errors.New("ignored")

// packetKind is what a received frame turned out to be.
type packetKind int

const (
	kindRequest packetKind = iota + 1 // an ARP request or a Neighbor Solicitation
	kindClaim                         // someone else announcing an address (ARP/NA)
)

// frameInfo is the part of a received ARP or NDP frame the responder needs.
type frameInfo struct {
	kind packetKind
	// target is the address asked for (request), or claimed (claim).
	target netip.Addr
	// senderIP and senderMAC are where a reply goes. For a Duplicate
	// Address Detection solicitation senderIP is "::".
	senderIP  netip.Addr
	senderMAC net.HardwareAddr
	// claimMAC is the hardware address the claimant announced.
	claimMAC net.HardwareAddr
	// speaker is set when the frame carries speakerMark: a Beacon speaker
	// sent it, not an outside host.
	speaker bool
}

// speakerMark follows the ARP or NDP payload of every frame a speaker
// sends, in the Ethernet padding (ARP) or after the IPv6 payload (NDP),
// where receivers ignore it. It lets a speaker tell a claim by another
// speaker (a brief election disagreement, which gratuitous packets settle)
// from one by a host outside the cluster (an address conflict), without
// knowing every node's MAC on every interface.
var speakerMark = []byte("beacon-l2")

// marked reports whether rest, the bytes after a frame's payload, begins
// with speakerMark.
func marked(rest []byte) bool { return bytes.HasPrefix(rest, speakerMark) }

// parseARP parses an Ethernet frame holding an ARP packet for IPv4 over
// Ethernet. The ARP body is decoded by mdlayher/arp; the Ethernet header is
// read here because the responder's packet socket hands over whole frames.
func parseARP(frame []byte) (frameInfo, error) {
	if len(frame) < ethHeaderLen+arpLen {
		return frameInfo{}, fmt.Errorf("short ARP frame (%d bytes)", len(frame))
	}
	if et := binary.BigEndian.Uint16(frame[12:14]); et != etherTypeARP {
		return frameInfo{}, fmt.Errorf("%w: ethertype %#04x", errIgnore, et)
	}
	// arp.Packet decodes any address lengths; only IPv4 over Ethernet is ours.
	if h := frame[ethHeaderLen:]; binary.BigEndian.Uint16(h[0:2]) != 1 || binary.BigEndian.Uint16(h[2:4]) != 0x0800 || h[4] != 6 || h[5] != 4 {
		return frameInfo{}, fmt.Errorf("%w: not IPv4 over Ethernet", errIgnore)
	}
	var p arp.Packet
	if err := p.UnmarshalBinary(frame[ethHeaderLen:]); err != nil {
		return frameInfo{}, fmt.Errorf("parse ARP: %w", err)
	}
	speaker := marked(frame[ethHeaderLen+arpLen:])
	switch {
	case p.SenderIP == p.TargetIP || p.Operation == arp.OperationReply:
		// A gratuitous request (sender == target) or any reply announces
		// sender → its hardware address. A reply to a probe has target
		// 0.0.0.0 and names the address in use as its sender.
		return frameInfo{kind: kindClaim, target: p.SenderIP, claimMAC: p.SenderHardwareAddr, speaker: speaker}, nil
	case p.Operation == arp.OperationRequest:
		return frameInfo{kind: kindRequest, target: p.TargetIP, senderIP: p.SenderIP, senderMAC: p.SenderHardwareAddr}, nil
	}
	return frameInfo{}, fmt.Errorf("%w: ARP operation %d", errIgnore, p.Operation)
}

// arpFrame builds an ARP packet from mac in an Ethernet frame, padded to
// the Ethernet minimum. arp.NewPacket refuses anything but equal-length
// hardware addresses and IPv4 addresses.
func arpFrame(op arp.Operation, mac net.HardwareAddr, ethDst, tha net.HardwareAddr, spa, tpa netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(op, mac, spa, tha, tpa)
	if err != nil {
		return nil, fmt.Errorf("ARP packet from %s (%s) to %s (%s): %w", mac, spa, tha, tpa, err)
	}
	body, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal ARP packet: %w", err)
	}
	b := make([]byte, max(minFrameLen, ethHeaderLen+len(body)+len(speakerMark)))
	copy(b[0:6], ethDst)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeARP)
	copy(b[ethHeaderLen:], body)
	copy(b[ethHeaderLen+len(body):], speakerMark)
	return b, nil
}

// arpProbeFrame is an ARP Probe (RFC 5227 2.1.1): a broadcast request for
// ip with sender address 0.0.0.0, so that no neighbour updates its cache
// from it. A host using ip answers with a reply naming itself.
func arpProbeFrame(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	return arpFrame(arp.OperationRequest, mac, broadcastMAC, zeroMAC, netip.IPv4Unspecified(), ip)
}

// arpReplyFrame answers req: "target is at mac", sent to the requester.
func arpReplyFrame(mac net.HardwareAddr, req frameInfo) ([]byte, error) {
	return arpFrame(arp.OperationReply, mac, req.senderMAC, req.senderMAC, req.target, req.senderIP)
}

// gratuitousARP returns the two usual gratuitous forms, both broadcast: an
// ARP Announcement (RFC 5227: a request with sender == target and a zero
// target hardware address) and a gratuitous reply. Linux treats a reply as
// gratuitous only when its target hardware address equals the sender's.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr) ([][]byte, error) {
	announce, err := arpFrame(arp.OperationRequest, mac, broadcastMAC, zeroMAC, ip, ip)
	if err != nil {
		return nil, err
	}
	reply, err := arpFrame(arp.OperationReply, mac, broadcastMAC, mac, ip, ip)
	if err != nil {
		return nil, err
	}
	return [][]byte{announce, reply}, nil
}

// parseNDP parses an Ethernet frame holding an IPv6 Neighbor Solicitation or
// Advertisement, validated as RFC 4861 (7.1.1, 7.1.2) asks.
func parseNDP(frame []byte) (frameInfo, error) {
	if len(frame) < ethHeaderLen+ipv6Len {
		return frameInfo{}, fmt.Errorf("short IPv6 frame (%d bytes)", len(frame))
	}
	if et := binary.BigEndian.Uint16(frame[12:14]); et != etherTypeIPv6 {
		return frameInfo{}, fmt.Errorf("%w: ethertype %#04x", errIgnore, et)
	}
	ip := frame[ethHeaderLen:]
	if ip[0]>>4 != 6 {
		return frameInfo{}, fmt.Errorf("IP version %d in an IPv6 frame", ip[0]>>4)
	}
	if ip[6] != protoICMPv6 {
		return frameInfo{}, fmt.Errorf("%w: next header %d", errIgnore, ip[6])
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen > len(ip)-ipv6Len {
		return frameInfo{}, fmt.Errorf("payload length %d beyond the frame", plen)
	}
	src := netip.AddrFrom16([16]byte(ip[8:24]))
	dst := netip.AddrFrom16([16]byte(ip[24:40]))
	if src.IsMulticast() {
		return frameInfo{}, fmt.Errorf("multicast source %s", src)
	}
	icmp := ip[ipv6Len : ipv6Len+plen]
	speaker := marked(ip[ipv6Len+plen:])
	if len(icmp) < 4 || (icmp[0] != icmpNS && icmp[0] != icmpNA) {
		return frameInfo{}, fmt.Errorf("%w: not a neighbor solicitation or advertisement", errIgnore)
	}
	if ip[7] != ndpHopLimit {
		return frameInfo{}, fmt.Errorf("hop limit %d, want 255 (off-link NDP)", ip[7])
	}
	if icmp[1] != 0 {
		return frameInfo{}, fmt.Errorf("ICMPv6 code %d, want 0", icmp[1])
	}
	if checksum(src, dst, icmp) != 0 {
		return frameInfo{}, errors.New("bad ICMPv6 checksum")
	}
	m, err := ndp.ParseMessage(icmp)
	if err != nil {
		return frameInfo{}, fmt.Errorf("parse NDP: %w", err)
	}
	switch m := m.(type) {
	case *ndp.NeighborSolicitation:
		if m.TargetAddress.IsMulticast() {
			return frameInfo{}, errors.New("solicitation for a multicast target")
		}
		sll := linkLayer(m.Options, ndp.Source)
		p := frameInfo{kind: kindRequest, target: m.TargetAddress, senderIP: src, senderMAC: sll}
		if src.IsUnspecified() {
			// Duplicate Address Detection: must go to the solicited-node
			// group and carry no source link-layer address.
			if snm, _ := ndp.SolicitedNodeMulticast(m.TargetAddress); dst != snm || sll != nil {
				return frameInfo{}, errors.New("malformed duplicate address detection")
			}
			return p, nil
		}
		if p.senderMAC == nil {
			p.senderMAC = net.HardwareAddr(bytes.Clone(frame[6:12]))
		}
		return p, nil
	case *ndp.NeighborAdvertisement:
		if m.TargetAddress.IsMulticast() || (dst.IsMulticast() && m.Solicited) {
			return frameInfo{}, errors.New("malformed neighbor advertisement")
		}
		tll := linkLayer(m.Options, ndp.Target)
		if tll == nil {
			tll = net.HardwareAddr(bytes.Clone(frame[6:12]))
		}
		return frameInfo{kind: kindClaim, target: m.TargetAddress, claimMAC: tll, speaker: speaker}, nil
	}
	return frameInfo{}, fmt.Errorf("%w: NDP message %T", errIgnore, m)
}

// linkLayer returns the Ethernet address of the first link-layer address
// option of the given direction, or nil.
func linkLayer(opts []ndp.Option, dir ndp.Direction) net.HardwareAddr {
	for _, o := range opts {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == dir && len(lla.Addr) == 6 {
			return lla.Addr
		}
	}
	return nil
}

// naFrame builds a Neighbor Advertisement for target from mac. Its IPv6
// source is target itself: the address is ours while we announce it, the
// node may have no other address on the link, and receivers do not check
// an advertisement's source (RFC 4861 7.1.2).
func naFrame(mac net.HardwareAddr, target, dstIP netip.Addr, dstMAC net.HardwareAddr, solicited bool) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Solicited:     solicited,
		Override:      true,
		TargetAddress: target,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	icmp, err := ndp.MarshalMessageChecksum(na, target, dstIP)
	if err != nil {
		return nil, fmt.Errorf("marshal neighbor advertisement: %w", err)
	}
	return ndpFrame(mac, dstMAC, target, dstIP, icmp), nil
}

// ndpFrame wraps an NDP message (with its checksum) in IPv6 and Ethernet
// headers, followed by speakerMark.
func ndpFrame(mac, dstMAC net.HardwareAddr, src, dst netip.Addr, icmp []byte) []byte {
	b := make([]byte, ethHeaderLen+ipv6Len, ethHeaderLen+ipv6Len+len(icmp)+len(speakerMark))
	copy(b[0:6], dstMAC)
	copy(b[6:12], mac)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[ethHeaderLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6] = protoICMPv6
	ip[7] = ndpHopLimit
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	return append(append(b, icmp...), speakerMark...)
}

// dadFrame is a Duplicate Address Detection probe (RFC 4862 5.4.2): a
// Neighbor Solicitation for ip from the unspecified address to ip's
// solicited-node group, without a source link-layer address. A host using
// ip answers with an advertisement to all nodes.
func dadFrame(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	snm, err := ndp.SolicitedNodeMulticast(ip)
	if err != nil {
		return nil, fmt.Errorf("solicited-node group of %s: %w", ip, err)
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: ip}
	icmp, err := ndp.MarshalMessageChecksum(ns, netip.IPv6Unspecified(), snm)
	if err != nil {
		return nil, fmt.Errorf("marshal duplicate address detection probe: %w", err)
	}
	return ndpFrame(mac, multicastMAC(snm), netip.IPv6Unspecified(), snm, icmp), nil
}

// naReplyFrame answers a solicitation. A Duplicate Address Detection probe
// (from "::") is answered to all nodes, unsolicited, as RFC 4861 7.2.4 says.
func naReplyFrame(mac net.HardwareAddr, req frameInfo) ([]byte, error) {
	if req.senderIP.IsUnspecified() {
		return naFrame(mac, req.target, allNodes, multicastMAC(allNodes), false)
	}
	return naFrame(mac, req.target, req.senderIP, req.senderMAC, true)
}

// unsolicitedNA is the IPv6 counterpart of a gratuitous ARP: an
// advertisement to all nodes with the override flag, so that neighbours
// with a cache entry for the address switch to mac.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	return naFrame(mac, ip, allNodes, multicastMAC(allNodes), false)
}

// multicastMAC maps an IPv6 multicast address to its Ethernet group
// address 33:33 + the low 32 bits (RFC 2464).
func multicastMAC(ip netip.Addr) net.HardwareAddr {
	b := ip.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// checksum is the ICMPv6 checksum over the IPv6 pseudo-header and body;
// a body with a correct checksum field sums to zero.
func checksum(src, dst netip.Addr, body []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(body)))
	l[7] = protoICMPv6
	add(l[:])
	add(body)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
