package allocator

import (
	"fmt"
	"net/netip"

	"github.com/beaconlb/beacon/config"
)

// special lists address ranges that can never be a Service address: a pool
// reaching into one would hand out, and speakers would announce, addresses
// that hosts treat as their own or as group addresses.
var special = []struct {
	r    config.Range
	what string
}{
	{block("0.0.0.0/8"), `"this network" addresses (0.0.0.0/8)`},
	{block("127.0.0.0/8"), "loopback addresses (127.0.0.0/8)"},
	{block("169.254.0.0/16"), "link-local addresses (169.254.0.0/16)"},
	{block("224.0.0.0/4"), "multicast addresses (224.0.0.0/4)"},
	{block("240.0.0.0/4"), "reserved and broadcast addresses (240.0.0.0/4)"},
	{block("::/128"), "the unspecified address (::)"},
	{block("::1/128"), "the loopback address (::1)"},
	{block("fe80::/10"), "link-local addresses (fe80::/10)"},
	{block("ff00::/8"), "multicast addresses (ff00::/8)"},
}

func block(s string) config.Range {
	p := netip.MustParsePrefix(s)
	return config.Range{First: p.Addr(), Last: config.LastOf(p)}
}

// CheckUsable explains why a pool block contains addresses that cannot be
// Service addresses (unspecified, loopback, link-local, multicast,
// reserved/broadcast), or returns nil.
func CheckUsable(r config.Range) error {
	for _, s := range special {
		if r.Overlaps(s.r) {
			return fmt.Errorf("%s contains %s, which cannot be Service addresses", r, s.what)
		}
	}
	return nil
}
