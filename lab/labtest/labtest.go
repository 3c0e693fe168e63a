// Package labtest starts the lab from Go tests: Up skips (or, with
// BEACON_REQUIRE_ENVTEST=1, fails) when the lab cannot run here, builds the
// echo server, and registers the teardown with t.Cleanup so it runs even
// when the test fails.
package labtest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

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
	Require(t)
	if cfg.EchoBinary == "" && os.Getenv("BEACON_ECHO") == "" {
		cfg.EchoBinary = BuildEcho(t)
	}
	if cfg.Logf == nil {
		cfg.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), UpTimeout)
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

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BuildEcho builds cmd/beacon-echo into a test temporary directory.
func BuildEcho(t testing.TB) string {
	t.Helper()
	return Build(t, "./cmd/beacon-echo")
}

// Build builds a main package of this module (e.g. "./cmd/beacon-lab") into
// a test temporary directory and returns the binary's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	return BuildInto(t, t.TempDir(), pkg)
}

// BuildInto builds a main package of this module into dir and returns the
// binary's path.
func BuildInto(t testing.TB, dir, pkg string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building %s: go not on PATH: %v", pkg, err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command(goBin, "build", "-o", out, pkg)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
