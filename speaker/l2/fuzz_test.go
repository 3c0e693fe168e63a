package l2

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
)

// FuzzParseARP checks that parseARP never panics, and that every request
// it accepts gets a reply that parses back as our claim on the target.
func FuzzParseARP(f *testing.F) {
	f.Add(arpRequestFrame(vip4))
	f.Add(mustARP(arp.OperationRequest, peerMAC, broadcastMAC, zeroMAC, netip.IPv4Unspecified(), vip4))
	for _, g := range mustGratuitous(otherMAC, vip4) {
		f.Add(g)
	}
	f.Add(arpRequestFrame(vip4)[:30])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, frame []byte) {
		p, err := parseARP(frame)
		if err != nil || p.kind != kindRequest {
			return
		}
		reply, err := arpReplyFrame(ourMAC, p)
		if err != nil {
			t.Fatalf("request %+v: no reply: %v", p, err)
		}
		back, err := parseARP(reply)
		if err != nil || back.kind != kindClaim || back.target != p.target || back.claimMAC.String() != ourMAC.String() {
			t.Fatalf("request %+v: reply parses as %+v, %v", p, back, err)
		}
	})
}

// FuzzParseNDP checks that parseNDP never panics, and that every
// solicitation it accepts gets an advertisement that a receiver accepts.
// With fixSum the checksum is made valid first, so that the fuzzer reaches
// the NDP parser rather than stopping at the checksum.
func FuzzParseNDP(f *testing.F) {
	for _, fix := range []bool{false, true} {
		f.Add(nsFrame(f, vip6, nsOpts{}), fix)
		f.Add(nsFrame(f, vip6, nsOpts{dst: vip6}), fix)
		f.Add(nsFrame(f, vip6, nsOpts{src: netip.IPv6Unspecified(), noSLL: true}), fix)
		f.Add(nsFrame(f, vip6, nsOpts{noSLL: true, trailer: 6}), fix)
		f.Add(nsFrame(f, vip6, nsOpts{badSum: true}), fix)
		na, _ := unsolicitedNA(otherMAC, vip6)
		f.Add(na, fix)
		f.Add(nsFrame(f, vip6, nsOpts{})[:70], fix)
		f.Add([]byte{}, fix)
	}
	f.Fuzz(func(t *testing.T, frame []byte, fixSum bool) {
		if fixSum {
			fixChecksum(frame)
		}
		p, err := parseNDP(frame)
		if err != nil || p.kind != kindRequest {
			return
		}
		reply, err := naReplyFrame(ourMAC, p)
		if err != nil {
			t.Fatalf("request %+v: cannot answer: %v", p, err)
		}
		back, err := parseNDP(reply)
		if err != nil || back.kind != kindClaim || back.target != p.target || back.claimMAC.String() != ourMAC.String() {
			t.Fatalf("request %+v: reply parses as %+v, %v", p, back, err)
		}
	})
}

// fixChecksum rewrites the ICMPv6 checksum of an IPv6 frame, if it has room.
func fixChecksum(frame []byte) {
	if len(frame) < ethHeaderLen+ipv6Len+4 {
		return
	}
	ip := frame[ethHeaderLen:]
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if plen < 4 || plen > len(ip)-ipv6Len {
		return
	}
	src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
	body := ip[ipv6Len : ipv6Len+plen]
	body[2], body[3] = 0, 0
	binary.BigEndian.PutUint16(body[2:4], checksum(src, dst, body))
}
