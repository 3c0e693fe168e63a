package l2

import (
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

var (
	ourMAC   = net.HardwareAddr{0x02, 0xbe, 0xac, 0x00, 0x00, 0x01}
	peerMAC  = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x64}
	otherMAC = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x99}
	vip4     = netip.MustParseAddr("198.51.100.201")
	vip6     = netip.MustParseAddr("2001:db8:100::201")
	peer4    = netip.MustParseAddr("198.51.100.100")
	peer6    = netip.MustParseAddr("2001:db8:100::100")
	peerLL   = netip.MustParseAddr("fe80::64")
)

// mustARP, mustGratuitous and mustReply build the ARP frames of these tests,
// whose inputs are always valid.
func mustARP(op arp.Operation, mac, ethDst, tha net.HardwareAddr, spa, tpa netip.Addr) []byte {
	return must(arpFrame(op, mac, ethDst, tha, spa, tpa))
}

func mustGratuitous(mac net.HardwareAddr, ip netip.Addr) [][]byte {
	return must(gratuitousARP(mac, ip))
}

func mustReply(req frameInfo) []byte { return must(arpReplyFrame(ourMAC, req)) }

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// arpRequestFrame is a who-has from the peer.
func arpRequestFrame(target netip.Addr) []byte {
	return mustARP(arp.OperationRequest, peerMAC, broadcastMAC, zeroMAC, peer4, target)
}

// nsOpts tweaks a Neighbor Solicitation built by nsFrame.
type nsOpts struct {
	src, dst  netip.Addr // default peer6 and the solicited-node group
	noSLL     bool
	hopLimit  byte // default 255
	badSum    bool
	trailer   int // bytes of Ethernet padding after the IPv6 payload
	ethSrcMAC net.HardwareAddr
}

// nsFrame builds a Neighbor Solicitation for target as a peer would.
func nsFrame(t testing.TB, target netip.Addr, o nsOpts) []byte {
	t.Helper()
	if !o.src.IsValid() {
		o.src = peer6
	}
	if !o.dst.IsValid() {
		o.dst, _ = ndp.SolicitedNodeMulticast(target)
	}
	if o.hopLimit == 0 {
		o.hopLimit = 255
	}
	if o.ethSrcMAC == nil {
		o.ethSrcMAC = peerMAC
	}
	ns := &ndp.NeighborSolicitation{TargetAddress: target}
	if !o.noSLL {
		ns.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: peerMAC}}
	}
	icmp, err := ndp.MarshalMessageChecksum(ns, o.src, o.dst)
	if err != nil {
		t.Fatal(err)
	}
	if o.badSum {
		icmp[2] ^= 0xff
	}
	return ipv6Frame(o.ethSrcMAC, multicastMAC(o.dst), o.src, o.dst, o.hopLimit, icmp, o.trailer)
}

func ipv6Frame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, hop byte, payload []byte, trailer int) []byte {
	b := make([]byte, ethHeaderLen+ipv6Len)
	copy(b[0:6], dstMAC)
	copy(b[6:12], srcMAC)
	binary.BigEndian.PutUint16(b[12:14], etherTypeIPv6)
	ip := b[ethHeaderLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(payload)))
	ip[6], ip[7] = protoICMPv6, hop
	s, d := src.As16(), dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	b = append(b, payload...)
	return append(b, make([]byte, trailer)...)
}

func TestParseARP(t *testing.T) {
	reply := mustARP(arp.OperationReply, otherMAC, peerMAC, peerMAC, vip4, peer4)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  frameInfo
		err   string // "" ok; "ignored" for errIgnore
	}{
		{"request", arpRequestFrame(vip4), frameInfo{kind: kindRequest, target: vip4, senderIP: peer4, senderMAC: peerMAC}, ""},
		{"probe from 0.0.0.0", mustARP(arp.OperationRequest, peerMAC, broadcastMAC, zeroMAC, netip.IPv4Unspecified(), vip4),
			frameInfo{kind: kindRequest, target: vip4, senderIP: netip.IPv4Unspecified(), senderMAC: peerMAC}, ""},
		{"gratuitous request is a claim", mustGratuitous(otherMAC, vip4)[0], frameInfo{kind: kindClaim, target: vip4, claimMAC: otherMAC, speaker: true}, ""},
		{"gratuitous reply is a claim", mustGratuitous(otherMAC, vip4)[1], frameInfo{kind: kindClaim, target: vip4, claimMAC: otherMAC, speaker: true}, ""},
		{"any reply is a claim", reply, frameInfo{kind: kindClaim, target: vip4, claimMAC: otherMAC, speaker: true}, ""},
		{"short", arpRequestFrame(vip4)[:41], frameInfo{}, "short"},
		{"not ARP", func() []byte { f := arpRequestFrame(vip4); f[12] = 0x08; f[13] = 0; return f }(), frameInfo{}, "ignored"},
		{"not Ethernet/IPv4", func() []byte { f := arpRequestFrame(vip4); f[19] = 16; return f }(), frameInfo{}, "ignored"},
		{"unknown operation", func() []byte { f := arpRequestFrame(vip4); f[21] = 9; return f }(), frameInfo{}, "ignored"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseARP(tc.frame)
			checkParse(t, got, err, tc.want, tc.err)
		})
	}
}

func checkParse(t *testing.T, got frameInfo, err error, want frameInfo, wantErr string) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
		t.Fatalf("error %v, want %q", err, wantErr)
	case wantErr == "" && (got.kind != want.kind || got.target != want.target || got.senderIP != want.senderIP ||
		got.senderMAC.String() != want.senderMAC.String() || got.claimMAC.String() != want.claimMAC.String() || got.speaker != want.speaker):
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestParseNDP(t *testing.T) {
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	unsolicited, err := unsolicitedNA(otherMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	solicitedToPeer, err := naFrame(otherMAC, vip6, peer6, peerMAC, true)
	if err != nil {
		t.Fatal(err)
	}
	badMulticastNA, err := naFrame(otherMAC, vip6, allNodes, multicastMAC(allNodes), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		frame []byte
		want  frameInfo
		err   string
	}{
		{"multicast solicitation", nsFrame(t, vip6, nsOpts{}), frameInfo{kind: kindRequest, target: vip6, senderIP: peer6, senderMAC: peerMAC}, ""},
		{"unicast probe (NUD) to the address itself", nsFrame(t, vip6, nsOpts{dst: vip6}), frameInfo{kind: kindRequest, target: vip6, senderIP: peer6, senderMAC: peerMAC}, ""},
		{"from link-local", nsFrame(t, vip6, nsOpts{src: peerLL}), frameInfo{kind: kindRequest, target: vip6, senderIP: peerLL, senderMAC: peerMAC}, ""},
		{"no source link-layer option: Ethernet source", nsFrame(t, vip6, nsOpts{noSLL: true, ethSrcMAC: otherMAC}), frameInfo{kind: kindRequest, target: vip6, senderIP: peer6, senderMAC: otherMAC}, ""},
		{"Ethernet padding after the payload", nsFrame(t, vip6, nsOpts{trailer: 6}), frameInfo{kind: kindRequest, target: vip6, senderIP: peer6, senderMAC: peerMAC}, ""},
		{"duplicate address detection", nsFrame(t, vip6, nsOpts{src: netip.IPv6Unspecified(), noSLL: true}), frameInfo{kind: kindRequest, target: vip6, senderIP: netip.IPv6Unspecified()}, ""},
		{"DAD with a link-layer option", nsFrame(t, vip6, nsOpts{src: netip.IPv6Unspecified()}), frameInfo{}, "duplicate address detection"},
		{"DAD not to the solicited-node group", nsFrame(t, vip6, nsOpts{src: netip.IPv6Unspecified(), noSLL: true, dst: allNodes}), frameInfo{}, "duplicate address detection"},
		{"routed (hop limit 254)", nsFrame(t, vip6, nsOpts{hopLimit: 254}), frameInfo{}, "hop limit"},
		{"multicast source", nsFrame(t, vip6, nsOpts{src: allNodes}), frameInfo{}, "multicast source"},
		{"bad checksum", nsFrame(t, vip6, nsOpts{badSum: true}), frameInfo{}, "checksum"},
		{"multicast target", nsFrame(t, snm, nsOpts{dst: allNodes}), frameInfo{}, "multicast target"},
		{"truncated payload", nsFrame(t, vip6, nsOpts{})[:80], frameInfo{}, "beyond the frame"},
		{"short", make([]byte, 20), frameInfo{}, "short"},
		{"unsolicited advertisement is a claim", unsolicited, frameInfo{kind: kindClaim, target: vip6, claimMAC: otherMAC, speaker: true}, ""},
		{"solicited advertisement is a claim", solicitedToPeer, frameInfo{kind: kindClaim, target: vip6, claimMAC: otherMAC, speaker: true}, ""},
		{"solicited advertisement to multicast", badMulticastNA, frameInfo{}, "malformed neighbor advertisement"},
		{"echo request", ipv6Frame(peerMAC, ourMAC, peer6, vip6, 64, []byte{128, 0, 0, 0, 0, 0, 0, 0}, 0), frameInfo{}, "ignored"},
		{"UDP", func() []byte { f := nsFrame(t, vip6, nsOpts{}); f[ethHeaderLen+6] = 17; return f }(), frameInfo{}, "ignored"},
		{"not IPv6", func() []byte { f := nsFrame(t, vip6, nsOpts{}); f[12] = 8; f[13] = 0; return f }(), frameInfo{}, "ignored"},
		{"IPv4 header in an IPv6 frame", func() []byte { f := nsFrame(t, vip6, nsOpts{}); f[ethHeaderLen] = 0x45; return f }(), frameInfo{}, "IP version 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseNDP(tc.frame)
			checkParse(t, got, err, tc.want, tc.err)
		})
	}
}

// A speaker's frames carry speakerMark; other hosts' do not, and a reply
// to a probe names the address in use as its sender.
func TestSpeakerMark(t *testing.T) {
	g := mustGratuitous(otherMAC, vip4)
	na, err := unsolicitedNA(otherMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	unmarked := func(f []byte, n int) []byte { f = slices.Clone(f); clear(f[n:]); return f }
	probeReply := unmarked(mustARP(arp.OperationReply, otherMAC, ourMAC, ourMAC, vip4, netip.IPv4Unspecified()), ethHeaderLen+arpLen)
	for _, tc := range []struct {
		name  string
		frame []byte
		parse func([]byte) (frameInfo, error)
		want  frameInfo
	}{
		{"speaker's gratuitous ARP", g[0], parseARP, frameInfo{kind: kindClaim, target: vip4, claimMAC: otherMAC, speaker: true}},
		{"host's gratuitous ARP (zero padding)", unmarked(g[0], ethHeaderLen+arpLen), parseARP, frameInfo{kind: kindClaim, target: vip4, claimMAC: otherMAC}},
		{"host's reply to our probe", probeReply, parseARP, frameInfo{kind: kindClaim, target: vip4, claimMAC: otherMAC}},
		{"speaker's advertisement", na, parseNDP, frameInfo{kind: kindClaim, target: vip6, claimMAC: otherMAC, speaker: true}},
		{"host's advertisement", na[:len(na)-len(speakerMark)], parseNDP, frameInfo{kind: kindClaim, target: vip6, claimMAC: otherMAC}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.parse(tc.frame)
			checkParse(t, got, err, tc.want, "")
		})
	}
}

// A DAD probe is what RFC 4862 5.4.2 asks for, and what our own parser
// (like any receiver) takes for one.
func TestDADFrame(t *testing.T) {
	f, err := dadFrame(ourMAC, vip6)
	if err != nil {
		t.Fatal(err)
	}
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	if got := net.HardwareAddr(f[0:6]).String(); got != multicastMAC(snm).String() {
		t.Fatalf("Ethernet destination %s", got)
	}
	p, err := parseNDP(f)
	checkParse(t, p, err, frameInfo{kind: kindRequest, target: vip6, senderIP: netip.IPv6Unspecified()}, "")
}

// The frames the kernel and other hosts see: pin them byte for byte.
func TestFramesAreExact(t *testing.T) {
	req, err := parseARP(arpRequestFrame(vip4))
	if err != nil {
		t.Fatal(err)
	}
	g := mustGratuitous(ourMAC, vip4)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  string
	}{
		{"ARP reply", mustReply(req),
			// eth dst=peer src=ours type=ARP | htype 1 ptype 0800 6 4 op 2 | sha=ours spa=vip | tha=peer tpa=peer | padding
			"020000000064" + "02beac000001" + "0806" + "0001080006040002" + "02beac000001" + "c63364c9" + "020000000064" + "c6336464" + "626561636f6e2d6c32" + strings.Repeat("00", 9)},
		{"ARP announcement", g[0],
			"ffffffffffff" + "02beac000001" + "0806" + "0001080006040001" + "02beac000001" + "c63364c9" + "000000000000" + "c63364c9" + "626561636f6e2d6c32" + strings.Repeat("00", 9)},
		{"gratuitous ARP reply", g[1],
			"ffffffffffff" + "02beac000001" + "0806" + "0001080006040002" + "02beac000001" + "c63364c9" + "02beac000001" + "c63364c9" + "626561636f6e2d6c32" + strings.Repeat("00", 9)},
		{"ARP probe", must(arpProbeFrame(ourMAC, vip4)),
			// sender IP 0.0.0.0, target MAC zero (RFC 5227 2.1.1)
			"ffffffffffff" + "02beac000001" + "0806" + "0001080006040001" + "02beac000001" + "00000000" + "000000000000" + "c63364c9" + "626561636f6e2d6c32" + strings.Repeat("00", 9)},
	} {
		if got := hex.EncodeToString(tc.frame); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestNeighborAdvertisements(t *testing.T) {
	for _, tc := range []struct {
		name      string
		req       []byte
		wantDst   netip.Addr
		wantMAC   net.HardwareAddr
		solicited bool
	}{
		{"answer to a solicitation", nsFrame(t, vip6, nsOpts{}), peer6, peerMAC, true},
		{"answer to a link-local solicitation", nsFrame(t, vip6, nsOpts{src: peerLL}), peerLL, peerMAC, true},
		{"answer to DAD goes to all nodes", nsFrame(t, vip6, nsOpts{src: netip.IPv6Unspecified(), noSLL: true}), allNodes, multicastMAC(allNodes), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseNDP(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			f, err := naReplyFrame(ourMAC, p)
			if err != nil {
				t.Fatal(err)
			}
			checkNA(t, f, tc.wantMAC, tc.wantDst, tc.solicited)
		})
	}
	t.Run("unsolicited", func(t *testing.T) {
		f, err := unsolicitedNA(ourMAC, vip6)
		if err != nil {
			t.Fatal(err)
		}
		checkNA(t, f, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, allNodes, false)
	})
}

// checkNA verifies an advertisement from us for vip6 as a receiver would:
// Ethernet and IPv6 headers, checksum, flags and target link-layer address.
func checkNA(t *testing.T, f []byte, dstMAC net.HardwareAddr, dst netip.Addr, solicited bool) {
	t.Helper()
	if len(f) < minFrameLen {
		t.Fatalf("frame of %d bytes", len(f))
	}
	if got := net.HardwareAddr(f[0:6]).String(); got != dstMAC.String() {
		t.Fatalf("Ethernet destination %s, want %s", got, dstMAC)
	}
	if got := net.HardwareAddr(f[6:12]).String(); got != ourMAC.String() {
		t.Fatalf("Ethernet source %s", got)
	}
	ip := f[ethHeaderLen:]
	src, d := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	if ip[0] != 0x60 || ip[6] != protoICMPv6 || ip[7] != 255 || src != vip6 || d != dst {
		t.Fatalf("IPv6 header %x: src %s dst %s", ip[:40], src, d)
	}
	body := ip[ipv6Len : ipv6Len+int(binary.BigEndian.Uint16(ip[4:6]))]
	if checksum(src, d, body) != 0 {
		t.Fatal("bad checksum")
	}
	m, err := ndp.ParseMessage(body)
	if err != nil {
		t.Fatal(err)
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || na.TargetAddress != vip6 || na.Solicited != solicited || !na.Override || na.Router {
		t.Fatalf("advertisement %+v", m)
	}
	if tll := linkLayer(na.Options, ndp.Target); tll.String() != ourMAC.String() {
		t.Fatalf("target link-layer address %v", tll)
	}
}

// The checksum must agree with mdlayher/ndp's, computed independently.
func TestChecksumAgreesWithNDP(t *testing.T) {
	for _, dst := range []netip.Addr{allNodes, peer6, peerLL} {
		icmp, err := ndp.MarshalMessageChecksum(&ndp.NeighborAdvertisement{TargetAddress: vip6, Override: true}, vip6, dst)
		if err != nil {
			t.Fatal(err)
		}
		if c := checksum(vip6, dst, icmp); c != 0 {
			t.Fatalf("dst %s: checksum over a correct message = %#x, want 0", dst, c)
		}
		want := binary.BigEndian.Uint16(icmp[2:4])
		icmp[2], icmp[3] = 0, 0
		if got := checksum(vip6, dst, icmp); got != want {
			t.Fatalf("dst %s: checksum %#x, ndp says %#x", dst, got, want)
		}
	}
}

func TestMulticastMAC(t *testing.T) {
	snm, _ := ndp.SolicitedNodeMulticast(vip6)
	if got := multicastMAC(snm).String(); got != "33:33:ff:00:02:01" {
		t.Fatalf("got %s", got)
	}
}

// BenchmarkAnswer measures the per-request path: parse, look up, build the
// reply.
func BenchmarkAnswer(b *testing.B) {
	set := addrSet{vip4: {}, vip6: {}}
	for _, tc := range []struct {
		family string
		frame  []byte
	}{
		{"ipv4", arpRequestFrame(vip4)},
		{"ipv6", nsFrame(b, vip6, nsOpts{})},
	} {
		b.Run(tc.family, func(b *testing.B) {
			for b.Loop() {
				p, err := parse(tc.frame, tc.family)
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := set[p.target]; !ok {
					b.Fatal("not announced")
				}
				if _, err := replyFrame(ourMAC, p, tc.family); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
