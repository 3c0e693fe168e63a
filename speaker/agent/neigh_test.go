package agent

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/beaconlb/beacon/internal/netnstest"
)

// TestForgetNeighbours: in a namespace of its own, entries resolving to the
// link's own MAC go, and so do entries of the addresses to forget whatever
// their MAC; static entries and other addresses' entries stay.
func TestForgetNeighbours(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	ns := netnstest.New(t, "beacon-neightest")
	const own, other = "02:00:00:00:00:01", "02:00:00:00:00:02"
	for _, args := range [][]string{
		{"link", "add", "d0", "address", own, "type", "veth", "peer", "name", "d1"},
		{"link", "set", "d0", "up"}, {"link", "set", "d1", "up"},
		{"addr", "add", "198.51.100.1/24", "dev", "d0"},
		{"neigh", "add", "198.51.100.200", "lladdr", own, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "198.51.100.201", "lladdr", own, "dev", "d0", "nud", "permanent"},
		{"neigh", "add", "198.51.100.202", "lladdr", other, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "198.51.100.210", "lladdr", other, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "198.51.100.211", "lladdr", other, "dev", "d0", "nud", "permanent"},
		{"-6", "neigh", "add", "2001:db8::200", "lladdr", own, "dev", "d0", "nud", "reachable"},
		{"-6", "neigh", "add", "2001:db8::210", "lladdr", other, "dev", "d0", "nud", "reachable"},
		{"-6", "neigh", "add", "2001:db8::202", "lladdr", other, "dev", "d0", "nud", "stale"},
	} {
		if out, err := netnstest.Run("ip", append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	served := map[netip.Addr]bool{}
	for _, s := range []string{"198.51.100.210", "198.51.100.211", "2001:db8::210"} {
		served[netip.MustParseAddr(s)] = true
	}
	var n int
	forget := func(a netip.Addr) bool { return served[a] }
	if err := netnstest.Do(ns, func() (err error) { n, err = ForgetNeighbours(forget); return err }); err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("forgot %d entries, want 4", n)
	}
	out, err := netnstest.Run("ip", "-n", ns, "neigh", "show", "dev", "d0")
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"198.51.100.200": false, "198.51.100.201": true, "198.51.100.202": true,
		"198.51.100.210": false, "198.51.100.211": true,
		"2001:db8::200": false, "2001:db8::210": false, "2001:db8::202": true,
	} {
		if got := strings.Contains(out, ip+" "); got != want {
			t.Errorf("entry for %s present %t, want %t:\n%s", ip, got, want, out)
		}
	}
}
