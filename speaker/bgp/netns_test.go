package bgp

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/beaconlb/beacon/internal/netnstest"
)

// The kernel tests run the whole test binary inside a network namespace of
// its own ("speaker" side), linked by a veth to a second namespace where
// real FRR runs ("router" side). gobgp dials from whatever namespace its
// goroutines' threads are in, so the only robust way to put it in a
// namespace is to start the process there: TestMain re-executes the binary
// under `ip netns exec`. Both namespaces are named bgpt-<pid>-{s,r} and are
// deleted, with every process left in them, when the inner run ends.

const (
	envNetns = "BEACON_BGPT_NETNS" // "speakerNS,routerNS" inside the inner run
	vethS    = "bgpt-s"
	vethR    = "bgpt-r"
)

// Addresses on the veth (benchmarking range, inside our namespaces only).
var (
	speakerV4 = "198.18.250.1"
	routerV4  = "198.18.250.2"
	// A second IPv4 pair on the same link: two sessions of one family.
	speakerV4b = "198.18.250.5"
	routerV4b  = "198.18.250.6"
	speakerV6  = "2001:db8:250::1"
	routerV6   = "2001:db8:250::2"
)

// whyNoKernel says why the kernel tests cannot run here, "" when they can.
func whyNoKernel() string {
	if os.Geteuid() != 0 {
		return "not root: network namespaces and FRR need root"
	}
	for _, d := range []string{"zebra", "bgpd", "bfdd"} {
		if _, err := os.Stat("/usr/lib/frr/" + d); err != nil {
			return "FRR is not installed (apt-get install frr): " + err.Error()
		}
	}
	for _, b := range []string{"ip", "vtysh"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not found"
		}
	}
	return ""
}

func TestMain(m *testing.M) {
	if os.Getenv(envNetns) != "" || os.Getenv(envHelper) != "" || whyNoKernel() != "" {
		os.Exit(m.Run())
	}
	os.Exit(runInNetns())
}

func runInNetns() int {
	sNS := fmt.Sprintf("bgpt-%d-s", os.Getpid())
	rNS := fmt.Sprintf("bgpt-%d-r", os.Getpid())
	defer cleanupNetns(sNS, rNS)
	if err := setupNetns(sNS, rNS); err != nil {
		fmt.Fprintln(os.Stderr, "bgp tests: namespaces:", err)
		return 1
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", sNS, os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envNetns+"="+sNS+","+rNS)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "bgp tests:", err)
		return 1
	}
	go func() {
		for s := range sig {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bgp tests:", err)
		return 1
	}
	return 0
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func setupNetns(sNS, rNS string) error {
	for _, ns := range []string{sNS, rNS} {
		if err := netnstest.Add(ns); err != nil {
			return err
		}
	}
	for _, c := range [][]string{
		{"link", "add", vethS, "netns", sNS, "type", "veth", "peer", "name", vethR, "netns", rNS},
		{"-n", sNS, "addr", "add", speakerV4 + "/30", "dev", vethS},
		{"-n", rNS, "addr", "add", routerV4 + "/30", "dev", vethR},
		{"-n", sNS, "addr", "add", speakerV4b + "/30", "dev", vethS},
		{"-n", rNS, "addr", "add", routerV4b + "/30", "dev", vethR},
		{"-n", sNS, "addr", "add", speakerV6 + "/64", "dev", vethS, "nodad"},
		{"-n", rNS, "addr", "add", routerV6 + "/64", "dev", vethR, "nodad"},
		{"-n", sNS, "link", "set", vethS, "up"},
		{"-n", rNS, "link", "set", vethR, "up"},
	} {
		if err := ipCmd(c...); err != nil {
			return err
		}
	}
	return nil
}

// cleanupNetns kills what is left in the namespaces and deletes them.
func cleanupNetns(names ...string) {
	for _, ns := range names {
		_ = netnstest.Delete(ns)
	}
}

// netnsOrSkip returns the speaker and router namespaces, or skips.
func netnsOrSkip(t *testing.T) (speakerNS, routerNS string) {
	t.Helper()
	v := os.Getenv(envNetns)
	if v == "" {
		why := whyNoKernel()
		if why == "" {
			why = "not running inside the test namespaces"
		}
		if os.Getenv("BEACON_REQUIRE_ENVTEST") == "1" {
			t.Fatal("kernel BGP test cannot run (BEACON_REQUIRE_ENVTEST=1): " + why)
		}
		t.Skip("kernel BGP test skipped: " + why)
	}
	s, r, _ := strings.Cut(v, ",")
	return s, r
}
