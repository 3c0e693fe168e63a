package handoff

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

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
			got := Ruleset(tc.mark, tc.routes).String()
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs (go test ./speaker/handoff -run %s -update to accept):\ngot:\n%s\nwant:\n%s", path, t.Name(), got, want)
			}
		})
	}
}
