// Package labtest starts the lab from Go tests: Up skips (or, with
// BEACON_REQUIRE_ENVTEST=1, fails) when the lab cannot run here, builds the
// echo server, and registers the teardown with t.Cleanup so it runs even
// when the test fails. Site runs Beacon in a lab, and Prober measures
// traffic through it.
package labtest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab"
)

// UpTimeout bounds Up, including the wait for another test package's lab
// (the lab is one per machine; packages run in parallel).
const UpTimeout = 5 * time.Minute

// Available reports whether the lab can run here, or why not.
func Available() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "the lab needs root (network namespaces)"
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return false, "KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/testbin.sh | tail -n1)"
	}
	return true, ""
}

// Require skips the test when the lab cannot run here, or fails it when
// BEACON_REQUIRE_ENVTEST=1 (so CI cannot pass by skipping). -short skips.
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("lab tests do not run with -short")
	}
	ok, why := Available()
	if ok {
		return
	}
	if os.Getenv("BEACON_REQUIRE_ENVTEST") == "1" {
		t.Fatalf("lab required (BEACON_REQUIRE_ENVTEST=1): %s", why)
	}
	t.Skip(why)
}

// Up starts a lab for the test and registers its teardown. When cfg has no
// EchoBinary and $BEACON_ECHO is unset, it builds cmd/beacon-echo first.
// When the test failed, the cleanup logs the tail of every process log
// before tearing down.
func Up(t testing.TB, cfg lab.Config) *lab.Lab {
	t.Helper()
	return UpWithin(t, cfg, UpTimeout)
}

// UpWithin is Up with another bound on the wait for the lab lock and the
// start: long suites queue behind the other lab tests of the machine.
func UpWithin(t testing.TB, cfg lab.Config, wait time.Duration) *lab.Lab {
	t.Helper()
	Require(t)
	if cfg.EchoBinary == "" && os.Getenv("BEACON_ECHO") == "" {
		cfg.EchoBinary = BuildEcho(t)
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	start := time.Now()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	t.Logf("lab up in %v", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			DumpLogs(t, l)
		}
		if err := l.Down(); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// DumpLogs logs the tail of each tracked process's log.
func DumpLogs(t testing.TB, l *lab.Lab) {
	t.Helper()
	for _, p := range l.Processes() {
		t.Logf("--- %s (pid %d, %s, alive=%v) log tail:\n%s", p.Name, p.Pid, p.Netns, p.Alive(), lab.LogTail(p.Log, 1500))
	}
}

// BuildEcho builds cmd/beacon-echo into a test temporary directory.
func BuildEcho(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	testenv.Build(t, dir, "./cmd/beacon-echo")
	return filepath.Join(dir, "beacon-echo")
}

// FRRSpeaker configures StartFRRSpeaker.
type FRRSpeaker struct {
	// Prefixes are announced to the router (IPv4 ones on the IPv4 session,
	// IPv6 ones on the IPv6 session).
	Prefixes []netip.Prefix
	// Password is the TCP MD5 password of both sessions ("" for none).
	Password string
	// BFD runs zebra and bfdd next to bgpd and enables BFD (FRR's
	// default timers, 300 ms x 3) on both sessions. Without it bgpd runs
	// alone (-Z) and the router's BFD sessions with this node stay down.
	BFD bool
}

// StartFRRSpeaker starts a throw-away FRR in a lab node: bgpd (and with
// s.BFD zebra and bfdd) peering with the lab router as its NodeASN over
// IPv4 and IPv6 and announcing s.Prefixes. It stands in for a BGP speaker
// in tests of the lab itself. It returns bgpd's process ("test-bgpd-<node>";
// the others are test-zebra-<node> and test-bfdd-<node>); the lab's
// teardown stops them all.
func StartFRRSpeaker(t testing.TB, l *lab.Lab, node string, s FRRSpeaker) *lab.Process {
	t.Helper()
	n, ok := l.Node(node)
	if !ok {
		t.Fatalf("no node %s", node)
	}
	rt := l.Topology().Router
	var b strings.Builder
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n",
		l.Router().Config().NodeASN, n.IPv4)
	for _, a := range []netip.Addr{rt.IPv4, rt.IPv6} {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n", a, l.Router().Config().ASN)
		if s.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", a, s.Password)
		}
		if s.BFD {
			fmt.Fprintf(&b, " neighbor %s bfd\n", a)
		}
	}
	for _, af := range []struct {
		name string
		peer netip.Addr
	}{{"ipv4", rt.IPv4}, {"ipv6", rt.IPv6}} {
		fmt.Fprintf(&b, " address-family %s unicast\n  neighbor %s activate\n", af.name, af.peer)
		for _, p := range s.Prefixes {
			if p.Addr().Is4() == af.peer.Is4() {
				fmt.Fprintf(&b, "  network %s\n", p)
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("exit\n")

	// Under the lab's state directory (removed with the lab).
	dir := filepath.Join(l.StateDir(), "test-frr", node)
	if err := lab.WriteFRRDir(dir, map[string]string{"bgpd": b.String(), "zebra": "!\n", "bfdd": "!\n"}); err != nil {
		t.Fatal(err)
	}
	start := func(daemon string, extra ...string) *lab.Process {
		t.Helper()
		argv := append(lab.FRRArgv(dir, daemon), extra...)
		p, err := l.StartProcess(lab.ProcessSpec{Name: "test-" + daemon + "-" + node, Netns: node, Argv: argv})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if !s.BFD {
		return start("bgpd", "-Z") // no zebra
	}
	zebra := start("zebra")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := lab.WaitZserv(ctx, dir, zebra.Alive); err != nil {
		t.Fatalf("zebra in %s: %v: %s", node, err, lab.LogTail(zebra.Log, 1000))
	}
	start("bfdd")
	return start("bgpd")
}
