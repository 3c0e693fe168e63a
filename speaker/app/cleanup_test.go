package app

import (
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/internal/netnstest"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// TestCleanKernelNeighbours: a node that forwards a LoadBalancer address
// but never announced it holds a neighbour entry for it resolving to the
// announcer's MAC; the cleaner deletes the dataplane's tables and forgets
// that entry, those of the other addresses its tables served or a pool
// holds, and those resolving to its own MAC, and keeps the rest.
func TestCleanKernelNeighbours(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace and nftables tables")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skipf("needs nft to list the tables: %v", err)
	}
	ns := netnstest.New(t, "beacon-cleantest")
	const own, announcer = "02:00:00:00:00:01", "02:00:00:00:00:02"
	for _, args := range [][]string{
		{"link", "add", "d0", "address", own, "type", "veth", "peer", "name", "d1"},
		{"link", "set", "d0", "up"}, {"link", "set", "d1", "up"},
		{"addr", "add", "198.51.100.1/24", "dev", "d0"},
		{"addr", "add", "2001:db8:100::1/64", "dev", "d0"},
		{"neigh", "add", "198.51.100.200", "lladdr", announcer, "dev", "d0", "nud", "stale"},
		{"-6", "neigh", "add", "2001:db8:100::200", "lladdr", announcer, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "203.0.113.77", "lladdr", announcer, "dev", "d0", "nud", "reachable"},
		{"neigh", "add", "198.51.100.220", "lladdr", announcer, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "198.51.100.201", "lladdr", own, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "198.51.100.5", "lladdr", announcer, "dev", "d0", "nud", "stale"},
		{"neigh", "add", "198.51.100.202", "lladdr", announcer, "dev", "d0", "nud", "stale"},
		{"-6", "neigh", "add", "2001:db8:100::5", "lladdr", announcer, "dev", "d0", "nud", "reachable"},
	} {
		if out, err := netnstest.Run("ip", append([]string{"-n", ns}, args...)...); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	// The tables a speaker in external mode left: two LoadBalancer
	// addresses and an external IP.
	in := nodeport.Input{Mode: nodeport.ModeExternal, NodeName: "node2", Services: []nodeport.Service{
		{
			Namespace: "t", Name: "web",
			LoadBalancerIPs: []netip.Addr{netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")},
			Ports:           []nodeport.Port{{Name: "http", Protocol: nodeport.TCP, Port: 80}},
		},
		{
			Namespace: "t", Name: "ext",
			ExternalIPs: []netip.Addr{netip.MustParseAddr("203.0.113.77")},
			Ports:       []nodeport.Port{{Name: "http", Protocol: nodeport.TCP, Port: 80}},
		},
	}}
	log := testr.New(t)
	if err := netnstest.Do(ns, func() error {
		ka, err := nodeport.NewKernelApplier(nodeport.KernelConfig{NoConntrack: true}, log)
		if err != nil {
			return err
		}
		defer func() { _ = ka.Close() }()
		_, err = ka.Apply(nodeport.Build(in))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if out := tables(t, ns); !strings.Contains(out, "beacon-svc") {
		t.Fatalf("no dataplane table to clean:\n%s", out)
	}

	// A pool block the tables no longer serve (its Service was released).
	pools := []config.Range{{First: netip.MustParseAddr("198.51.100.216"), Last: netip.MustParseAddr("198.51.100.223")}}
	o := Options{HandoffMark: handoff.DefaultMark, HandoffTable: handoff.DefaultRouting}
	var forgot int
	if err := netnstest.Do(ns, func() (err error) { forgot, err = cleanKernel(log, o, pools); return err }); err != nil {
		t.Fatal(err)
	}
	if forgot != 5 {
		t.Errorf("forgot %d neighbour entries, want 5", forgot)
	}
	if out := tables(t, ns); strings.Contains(out, "beacon") {
		t.Errorf("Beacon tables left:\n%s", out)
	}
	out, err := netnstest.Run("ip", "-n", ns, "neigh", "show", "dev", "d0")
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"198.51.100.200": false, "2001:db8:100::200": false, "203.0.113.77": false, // served
		"198.51.100.220": false, // in a pool
		"198.51.100.201": false, // own MAC
		"198.51.100.5":   true, "198.51.100.202": true, "2001:db8:100::5": true,
	} {
		if got := strings.Contains(out, ip+" "); got != want {
			t.Errorf("entry for %s present %t, want %t:\n%s", ip, got, want, out)
		}
	}
}

func tables(t *testing.T, ns string) string {
	t.Helper()
	out, err := netnstest.Run("ip", "netns", "exec", ns, "nft", "list", "tables")
	if err != nil {
		t.Fatal(err)
	}
	return out
}
