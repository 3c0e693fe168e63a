package kind

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// TestAddressPlanDisjoint: the kind cluster's networks, pools, pod and
// Service ranges (hack/kind/net.sh) and podman's own networks share no
// address. An overlap is silent and costly: with the pod range over the
// LAN, flannel took the host and the client for pods and masqueraded what
// nodes forwarded for them, so every hand-off between nodes broke its
// connection.
func TestAddressPlanDisjoint(t *testing.T) {
	names := []string{"LAN_CIDR", "LAN2_CIDR", "EXT_CIDR", "BGP_POOL", "POD_CIDR", "SERVICE_CIDR",
		"LAN_CIDR6", "EXT_CIDR6", "BGP_POOL6", "POD_CIDR6", "SERVICE_CIDR6"}
	script := ". hack/kind/net.sh"
	for _, n := range names {
		script += "; echo " + n + "=$" + n
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sourcing hack/kind/net.sh: %v", err)
	}
	prefixes := map[string]netip.Prefix{
		// hack/kind/deps.sh: podman's default network and its pool.
		"podman default": netip.MustParsePrefix("198.18.99.0/24"),
		"podman pool":    netip.MustParsePrefix("198.18.192.0/19"),
	}
	for _, line := range strings.Fields(string(out)) {
		name, value, _ := strings.Cut(line, "=")
		p, err := netip.ParsePrefix(value)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, value, err)
		}
		prefixes[name] = p
	}
	if len(prefixes) != len(names)+2 {
		t.Fatalf("read %d ranges, want %d: %v", len(prefixes), len(names)+2, prefixes)
	}
	for a, pa := range prefixes {
		for b, pb := range prefixes {
			if a < b && pa.Overlaps(pb) {
				t.Errorf("%s %s overlaps %s %s", a, pa, b, pb)
			}
		}
	}
}
