package config

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"strings"
)

// Family is an IP address family.
type Family int

// The two IP families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return fmt.Sprintf("Family(%d)", int(f))
}

// FamilyOf returns the family of a valid address.
func FamilyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// Range is an inclusive range of addresses of one family.
type Range struct {
	First, Last netip.Addr
}

// Family returns the range's address family.
func (r Range) Family() Family { return FamilyOf(r.First) }

// Contains reports whether a lies within the range.
func (r Range) Contains(a netip.Addr) bool {
	return a.BitLen() == r.First.BitLen() && r.First.Compare(a) <= 0 && a.Compare(r.Last) <= 0
}

// Overlaps reports whether two ranges share an address.
func (r Range) Overlaps(o Range) bool {
	return r.First.BitLen() == o.First.BitLen() && r.First.Compare(o.Last) <= 0 && o.First.Compare(r.Last) <= 0
}

// Size returns the number of addresses in the range, saturating at MaxInt64.
func (r Range) Size() int64 {
	return Distance(r.First, r.Last) + 1
}

func (r Range) String() string {
	if !r.First.IsValid() || !r.Last.IsValid() {
		return "invalid range"
	}
	if p, ok := r.Prefix(); ok {
		return p.String()
	}
	return r.First.String() + "-" + r.Last.String()
}

// Prefix returns the range as a CIDR if it is exactly one.
func (r Range) Prefix() (netip.Prefix, bool) {
	for bits := 0; bits <= r.First.BitLen(); bits++ {
		p := netip.PrefixFrom(r.First, bits).Masked()
		if p.Addr() == r.First && LastOf(p) == r.Last {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// Distance returns last-first for two addresses of one family with
// first <= last, saturating at MaxInt64-1 so that Distance+1 cannot overflow.
func Distance(first, last netip.Addr) int64 {
	a, b := first.As16(), last.As16()
	lo, borrow := bits.Sub64(binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(a[8:]), 0)
	hi, _ := bits.Sub64(binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(a[:8]), borrow)
	if hi != 0 || lo >= math.MaxInt64 {
		return math.MaxInt64 - 1
	}
	return int64(lo)
}

// LastOf returns the last address of a prefix.
func LastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// mapped is ::ffff:0:0/96, where IPv6 notation stands for IPv4 addresses.
var mapped = Range{First: netip.MustParseAddr("::ffff:0.0.0.0"), Last: netip.MustParseAddr("::ffff:255.255.255.255")}

// ParseBlock parses an address block of an IPPool: a CIDR or "first-last".
// It rejects what the CRD's CEL rules reject, so that the controller is safe
// on API servers that skip CRD validation, and blocks reaching into the
// IPv4-mapped range (such as ::/80), which no Service can use as IPv6.
func ParseBlock(s string) (Range, error) {
	r, err := parseBlock(s)
	if err == nil && r.Overlaps(mapped) {
		return Range{}, fmt.Errorf("%q reaches into %s, the IPv4-mapped addresses: write IPv4 addresses as IPv4", s, mapped)
	}
	return r, err
}

func parseBlock(s string) (Range, error) {
	s = strings.TrimSpace(s)
	if first, last, ok := strings.Cut(s, "-"); ok {
		f, err := parseAddr(strings.TrimSpace(first))
		if err != nil {
			return Range{}, fmt.Errorf("range %q: %w", s, err)
		}
		l, err := parseAddr(strings.TrimSpace(last))
		if err != nil {
			return Range{}, fmt.Errorf("range %q: %w", s, err)
		}
		if f.BitLen() != l.BitLen() {
			return Range{}, fmt.Errorf("range %q mixes IPv4 and IPv6", s)
		}
		if f.Compare(l) > 0 {
			return Range{}, fmt.Errorf("range %q has its first address after its last", s)
		}
		return Range{First: f, Last: l}, nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return Range{}, fmt.Errorf("%q is neither a CIDR nor a range first-last: %w", s, err)
	}
	if p.Addr().Is4In6() || p.Addr().Zone() != "" {
		return Range{}, fmt.Errorf("CIDR %q: use plain IPv4 or IPv6 notation", s)
	}
	if p.Masked() != p {
		return Range{}, fmt.Errorf("CIDR %q has host bits set; write %s", s, p.Masked())
	}
	return Range{First: p.Addr(), Last: LastOf(p)}, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Is4In6() || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("address %q: use plain IPv4 or IPv6 notation", s)
	}
	return a, nil
}

// Subtract returns the parts of r not covered by any of cut.
func Subtract(r Range, cut []Range) []Range {
	out := []Range{r}
	for _, c := range cut {
		var next []Range
		for _, piece := range out {
			if !piece.Overlaps(c) {
				next = append(next, piece)
				continue
			}
			if piece.First.Compare(c.First) < 0 {
				next = append(next, Range{First: piece.First, Last: c.First.Prev()})
			}
			if c.Last.Compare(piece.Last) < 0 {
				next = append(next, Range{First: c.Last.Next(), Last: piece.Last})
			}
		}
		out = next
	}
	return out
}
