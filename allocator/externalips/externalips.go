package externalips

import (
	"math/big"
	"net/netip"
	"slices"

	"github.com/beaconlb/beacon/config"
)

// DefaultName is the name of the ExternalIPsAllowList the chart's policy
// binding refers to.
const DefaultName = "beacon-externalips"

// Prefixes returns the CIDRs that cover exactly the effective addresses of
// every valid pool with allowExternalIPs, sorted, IPv4 first. Overlaps with
// older pools belong to those pools (config.ParsePools), so an address in an
// overlap is allowed only if the older pool allows it, as in the dataplane.
func Prefixes(ps *config.Pools) []netip.Prefix {
	if ps == nil {
		return nil
	}
	var rs []config.Range
	for _, p := range ps.ByName {
		if p.AllowExternalIPs {
			rs = append(rs, p.Ranges...)
		}
	}
	var out []netip.Prefix
	for _, r := range config.Merge(rs) {
		out = append(out, RangePrefixes(r.First, r.Last)...)
	}
	return out
}

// Pools returns the names of the valid pools with allowExternalIPs, sorted.
func Pools(ps *config.Pools) []string {
	if ps == nil {
		return nil
	}
	var out []string
	for name, p := range ps.ByName {
		if p.AllowExternalIPs && len(p.Ranges) > 0 {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Data returns the allowed CIDRs, IPv4 first, and the pools they come from:
// the fields of the ExternalIPsAllowList for a pool set. Both are nil when
// no pool allows externalIPs.
func Data(ps *config.Pools) (cidrs, pools []string) {
	for _, p := range Prefixes(ps) {
		cidrs = append(cidrs, p.String())
	}
	return cidrs, Pools(ps)
}

// RangePrefixes splits the inclusive range first-last (one family, first <=
// last) into the fewest CIDRs that cover it exactly, in address order. It
// returns nil for an invalid range.
func RangePrefixes(first, last netip.Addr) []netip.Prefix {
	if !first.IsValid() || !last.IsValid() || first.BitLen() != last.BitLen() || last.Less(first) {
		return nil
	}
	bitLen := first.BitLen()
	lo, hi := toInt(first), toInt(last)
	one := big.NewInt(1)
	var out []netip.Prefix
	for lo.Cmp(hi) <= 0 {
		// The largest block that starts at lo (alignment) and ends by hi.
		host := int(lo.TrailingZeroBits())
		if lo.Sign() == 0 {
			host = bitLen
		}
		for host > 0 {
			end := new(big.Int).Lsh(one, uint(host))
			end.Add(end, lo).Sub(end, one)
			if end.Cmp(hi) <= 0 {
				break
			}
			host--
		}
		out = append(out, netip.PrefixFrom(fromInt(lo, bitLen), bitLen-host))
		lo = new(big.Int).Add(lo, new(big.Int).Lsh(one, uint(host)))
	}
	return out
}

func toInt(a netip.Addr) *big.Int {
	b := a.AsSlice()
	return new(big.Int).SetBytes(b)
}

func fromInt(i *big.Int, bitLen int) netip.Addr {
	b := make([]byte, bitLen/8)
	i.FillBytes(b)
	a, _ := netip.AddrFromSlice(b)
	return a
}
