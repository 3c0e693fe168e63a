package handoff

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/beaconlb/beacon/internal/golden"
)

func TestRulesetGolden(t *testing.T) {
	route := func(ip, via string) Route {
		return Route{IP: netip.MustParseAddr(ip), Via: netip.MustParseAddr(via)}
	}
	for _, tc := range []struct {
		file   string
		mark   uint32
		routes []Route
	}{
		{"empty.golden", DefaultMark, nil},
		// Unsorted, with a duplicate address: the sets hold each address
		// once, in order.
		{"both.golden", DefaultMark, []Route{
			route("2001:db8::20", "2001:db8::1"),
			route("198.51.100.20", "198.51.100.1"),
			route("198.51.100.10", "198.51.100.2"),
			route("198.51.100.20", "198.51.100.3"),
		}},
		{"mark.golden", 0x10, []Route{route("203.0.113.7", "203.0.113.1")}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			golden.Check(t, filepath.Join("testdata", tc.file), []byte(Ruleset(tc.mark, tc.routes).String()))
		})
	}
}
