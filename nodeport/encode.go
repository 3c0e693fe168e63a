package nodeport

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// This file translates the model into google/nftables objects. Each
// statement becomes the same expressions nft itself generates, so that
// `nft list` shows them as written in the model.

const (
	ipsDstNAT = 0x20 // IPS_DST_NAT, the "dnat" bit of ct status
	rtnLocal  = 2    // RTN_LOCAL, "type local" of fib
	// The TCP flags byte and its SYN bit.
	tcpFlagsOffset = 13
	tcpSYN         = 0x02
	// ICMP port unreachable codes for reject.
	icmpPortUnreach   = 3
	icmpv6PortUnreach = 4
)

func (f Family) nft() nftables.TableFamily {
	switch f {
	case IPv6:
		return nftables.TableFamilyIPv6
	case Inet:
		return nftables.TableFamilyINet
	}
	return nftables.TableFamilyIPv4
}

func (f Family) addrLen() uint32 {
	if f == IPv6 {
		return 16
	}
	return 4
}

func (f Family) saddrOffset() uint32 {
	if f == IPv6 {
		return 8
	}
	return 12
}

func (f Family) daddrOffset() uint32 {
	if f == IPv6 {
		return 24
	}
	return 16
}

// reg returns the register holding a concatenation component that starts
// at byte off: reg 1 for the first, then 32-bit registers (NFT_REG32_00 is
// 8), as nft allocates them.
func reg(off uint32) uint32 {
	if off == 0 {
		return 1
	}
	return 8 + off/4
}

func native32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

func nftTable(f Family, name string) *nftables.Table {
	return &nftables.Table{Family: f.nft(), Name: name}
}

func nftChain(t *nftables.Table, c *Chain) *nftables.Chain {
	nc := &nftables.Chain{Name: c.Name, Table: t}
	if c.Base != nil {
		nc.Type = nftables.ChainTypeNAT
		if c.Base.Type == ChainFilter {
			nc.Type = nftables.ChainTypeFilter
		}
		switch c.Base.Hook {
		case HookPrerouting:
			nc.Hooknum = nftables.ChainHookPrerouting
		case HookOutput:
			nc.Hooknum = nftables.ChainHookOutput
		case HookPostrouting:
			nc.Hooknum = nftables.ChainHookPostrouting
		}
		nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(c.Base.Priority))
		accept := nftables.ChainPolicyAccept
		nc.Policy = &accept
	}
	return nc
}

func (f Field) nftType(fam Family) nftables.SetDatatype {
	switch f {
	case FieldAddr, FieldAddr2:
		if fam == IPv6 {
			return nftables.TypeIP6Addr
		}
		return nftables.TypeIPAddr
	case FieldProto:
		return nftables.TypeInetProto
	case FieldPort:
		return nftables.TypeInetService
	}
	return nftables.TypeInvalid
}

func nftSet(t *nftables.Table, fam Family, s *Set) *nftables.Set {
	ns := &nftables.Set{Table: t, Name: s.Name, IsMap: s.Map}
	fam = s.Family.or(fam)
	if len(s.Fields) == 1 {
		ns.KeyType = s.Fields[0].nftType(fam)
	} else {
		types := make([]nftables.SetDatatype, len(s.Fields))
		for i, f := range s.Fields {
			types[i] = f.nftType(fam)
		}
		ns.KeyType = nftables.MustConcatSetType(types...)
		ns.Concatenation = true
	}
	if s.Map {
		ns.DataType = nftables.TypeVerdict
	}
	if s.Dynamic {
		ns.Dynamic, ns.HasTimeout, ns.Timeout, ns.Size = true, true, s.Timeout, s.Size
	}
	return ns
}

// keyBytes encodes an element key: each component of a concatenation is
// padded to 4 bytes; numbers are big-endian (network order).
func keyBytes(fam Family, fields []Field, k Key) []byte {
	concat := len(fields) > 1
	var b []byte
	for _, f := range fields {
		var part []byte
		switch f {
		case FieldAddr:
			part = k.Addr.AsSlice()
		case FieldAddr2:
			part = k.Addr2.AsSlice()
		case FieldProto:
			part = []byte{byte(k.Proto)}
		case FieldPort:
			part = binary.BigEndian.AppendUint16(nil, k.Port)
		}
		b = append(b, part...)
		if concat {
			for len(part)%4 != 0 {
				part = append(part, 0)
				b = append(b, 0)
			}
		}
	}
	return b
}

func nftElement(fam Family, s *Set, e Element) nftables.SetElement {
	el := nftables.SetElement{Key: keyBytes(fam, s.Fields, e.Key)}
	if s.Map {
		el.VerdictData = &expr.Verdict{Kind: expr.VerdictGoto, Chain: e.Goto}
	}
	return el
}

func payload(base expr.PayloadBase, dest, off, n uint32) *expr.Payload {
	return &expr.Payload{DestRegister: dest, Base: base, Offset: off, Len: n}
}

// encodeRule turns a rule into expressions. Every statement that needs a
// register starts again from reg 1: a statement's registers are dead once
// it has matched.
func encodeRule(fam Family, r Rule) ([]expr.Any, error) {
	var ex []expr.Any
	for _, s := range r {
		var ok bool
		var err error
		if ex, ok, err = appendMatch(ex, fam, s); !ok {
			ex, err = appendAction(ex, fam, s)
		}
		if err != nil {
			return nil, err
		}
	}
	return ex, nil
}

// appendMatch appends the expressions of s to ex; ok is false when s is
// not a match.
func appendMatch(ex []expr.Any, fam Family, s Stmt) (_ []expr.Any, ok bool, _ error) {
	net := expr.PayloadBaseNetworkHeader
	switch s := s.(type) {
	case MatchProto:
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(s.Proto)}})
	case MatchNumgen:
		ex = append(ex,
			&expr.Numgen{Register: 1, Modulus: s.Mod, Type: unix.NFT_NG_RANDOM},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: native32(0)})
	case MatchSaddr:
		if !fam.has(s.Prefix.Addr()) {
			return ex, true, fmt.Errorf("prefix %s in a %s table", s.Prefix, fam)
		}
		ex = append(ex, payload(net, 1, fam.saddrOffset(), fam.addrLen()))
		if s.Prefix.Bits() < s.Prefix.Addr().BitLen() {
			ex = append(ex, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: fam.addrLen(),
				Mask: prefixMask(s.Prefix), Xor: make([]byte, fam.addrLen())})
		}
		ex = append(ex, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: s.Prefix.Masked().Addr().AsSlice()})
	case MatchSaddrInSet:
		ex = append(ex, payload(net, 1, fam.saddrOffset(), fam.addrLen()),
			&expr.Lookup{SourceRegister: 1, SetName: s.Set})
	case MatchDaddrInSet:
		af := s.Family.or(fam)
		ex = append(append(ex, nfproto(fam, af)...), payload(net, 1, af.daddrOffset(), af.addrLen()),
			&expr.Lookup{SourceRegister: 1, SetName: s.Set})
	case MatchAddrPairInSet:
		ex = append(ex,
			payload(net, 1, fam.saddrOffset(), fam.addrLen()),
			payload(net, reg(fam.addrLen()), fam.daddrOffset(), fam.addrLen()),
			&expr.Lookup{SourceRegister: 1, SetName: s.Set})
	case MatchFibSaddrLocal:
		ex = append(ex,
			&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: native32(rtnLocal)})
	case MatchMark:
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(s.Mark), Xor: native32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: native32(s.Mark)})
	case MatchCtDNAT:
		ex = append(ex,
			&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(ipsDstNAT), Xor: native32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)})
	case MatchCtMark:
		ex = append(ex,
			&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(s.Mark), Xor: native32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)})
	case MatchTCPNoSYN:
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			payload(expr.PayloadBaseTransportHeader, 1, tcpFlagsOffset, 1),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpSYN}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}})
	case MatchDestInSet:
		ex = append(append(ex, loadDest(fam)...), &expr.Lookup{SourceRegister: 1, SetName: s.Set})
	case MatchProtoPortInSet:
		ex = append(append(ex, loadProtoPort()...), &expr.Lookup{SourceRegister: 1, SetName: s.Set})
	default:
		return ex, false, nil
	}
	return ex, true, nil
}

// appendAction appends the expressions of s, an action, terminal statement
// or verdict, to ex.
func appendAction(ex []expr.Any, fam Family, s Stmt) ([]expr.Any, error) {
	net := expr.PayloadBaseNetworkHeader
	switch s := s.(type) {
	case Counter:
		ex = append(ex, &expr.Counter{})
	case SetCtMark:
		ex = append(ex,
			&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(^s.Mark), Xor: native32(s.Mark)},
			&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true})
	case SetMark:
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(^s.Mark), Xor: native32(s.Mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	case ToggleMark:
		ex = append(ex,
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(0xffffffff), Xor: native32(s.Mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1})
	case UpdateSaddr:
		ex = append(ex, payload(net, 1, fam.saddrOffset(), fam.addrLen()),
			&expr.Dynset{SrcRegKey: 1, SetName: s.Set, Operation: unix.NFT_DYNSET_OP_UPDATE})
	case DispatchVmap:
		ex = append(append(ex, loadDest(fam)...), &expr.Lookup{SourceRegister: 1, SetName: s.Map, IsDestRegSet: true})
	case NodePortVmap:
		ex = append(append(ex, loadProtoPort()...), &expr.Lookup{SourceRegister: 1, SetName: s.Map, IsDestRegSet: true})
	case DNAT:
		if !fam.has(s.To.Addr()) {
			return nil, fmt.Errorf("dnat to %s in a %s table", s.To, fam)
		}
		ex = append(ex,
			&expr.Immediate{Register: 1, Data: s.To.Addr().AsSlice()},
			&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, s.To.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(fam.nft()), RegAddrMin: 1, RegProtoMin: 2})
	case DNATToDaddr:
		af := s.Family.or(fam)
		ex = append(ex, payload(net, 1, af.daddrOffset(), af.addrLen()),
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(af.nft()), RegAddrMin: 1})
	case Masquerade:
		ex = append(ex, &expr.Masq{FullyRandom: true})
	case Reject:
		switch {
		case s.TCPReset:
			ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
		case fam == IPv6:
			ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpv6PortUnreach})
		default:
			ex = append(ex, &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreach})
		}
	case Goto:
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictGoto, Chain: s.Chain})
	case Jump:
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictJump, Chain: s.Chain})
	case Drop:
		ex = append(ex, &expr.Verdict{Kind: expr.VerdictDrop})
	default:
		return nil, fmt.Errorf("no encoding for %T", s)
	}
	return ex, nil
}

// nfproto matches the address family af in an Inet table, as nft adds
// before an address match there; other tables need none.
func nfproto(fam, af Family) []expr.Any {
	if fam != Inet {
		return nil
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(af.nft())}},
	}
}

// loadDest loads "daddr . l4proto . dport" from reg 1 on.
func loadDest(fam Family) []expr.Any {
	n := fam.addrLen()
	return []expr.Any{
		payload(expr.PayloadBaseNetworkHeader, 1, fam.daddrOffset(), n),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg(n)},
		payload(expr.PayloadBaseTransportHeader, reg(n+4), 2, 2),
	}
}

// loadProtoPort loads "l4proto . dport" from reg 1 on.
func loadProtoPort() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		payload(expr.PayloadBaseTransportHeader, reg(4), 2, 2),
	}
}

func prefixMask(p netip.Prefix) []byte {
	n := p.Addr().BitLen() / 8
	m := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}
