package agent

import (
	"os"
	"strings"
	"testing"

	"github.com/beaconlb/beacon/internal/netnstest"
)

// TestForgetOwnNeighbours: in a namespace of its own, entries resolving to
// the link's own MAC go, unless static; entries of other MACs stay.
func TestForgetOwnNeighbours(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ns := netnstest.New(t, "beacon-neightest")
	const own = "02:00:00:00:00:01"
	for _, args := range [][]string{
		{"link", "add", "d0", "address", own, "type", "veth", "peer", "name", "d1"},
		{"link", "set", "d0", "up"}, {"link", "set", "d1", "up"},
		{"addr", "add", "198.51.100.1/24", "dev", "d0"},
		{"neigh", "add", "198.51.100.200", "lladdr", own, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "198.51.100.201", "lladdr", own, "dev", "d0", "nud", "permanent"},
		{"neigh", "add", "198.51.100.202", "lladdr", "02:00:00:00:00:02", "dev", "d0", "nud", "stale"},
		{"-6", "neigh", "add", "2001:db8::200", "lladdr", own, "dev", "d0", "nud", "reachable"},
	} {
		if out, err := netnstest.Run("ip", append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	var n int
	if err := netnstest.Do(ns, func() (err error) { n, err = ForgetOwnNeighbours(); return err }); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("forgot %d entries, want 2", n)
	}
	out, err := netnstest.Run("ip", "-n", ns, "neigh", "show", "dev", "d0")
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{"198.51.100.200": false, "198.51.100.201": true, "198.51.100.202": true, "2001:db8::200": false} {
		if got := strings.Contains(out, ip+" "); got != want {
			t.Errorf("entry for %s present %t, want %t:\n%s", ip, got, want, out)
		}
	}
}
