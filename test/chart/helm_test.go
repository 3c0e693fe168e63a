package chart

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beaconlb/beacon/internal/testenv"
)

// Release coordinates used by every test.
const (
	release   = "beacon"
	namespace = "beacon-system"
)

// chartDir is charts/beacon of this source tree.
func chartDir() string { return filepath.Join(testenv.RepoRoot(), "charts", "beacon") }

// helmBin returns the helm that `make testbin` built, or skips (fails
// under BEACON_REQUIRE_ENVTEST=1) without it.
func helmBin(t testing.TB) string {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	bin := filepath.Join(assets, "helm")
	if assets != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	why := "no helm in $KUBEBUILDER_ASSETS: export KUBEBUILDER_ASSETS=$(hack/testbin.sh | tail -n1)"
	if os.Getenv("BEACON_REQUIRE_ENVTEST") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// helmDirs gives helm private cache/config/data directories, so tests
// neither read nor write the user's.
func helmDirs(t testing.TB) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"HELM_CACHE_HOME":  filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME": filepath.Join(dir, "config"),
		"HELM_DATA_HOME":   filepath.Join(dir, "data"),
	}
}

// helm runs the helm binary with args and returns its stdout; it fails
// the test on error, with stderr.
func helm(t testing.TB, args ...string) string {
	t.Helper()
	out, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func runHelm(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, helmBin(t), args...)
	cmd.Env = os.Environ()
	for k, v := range helmDirs(t) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), &helmError{err: err, stderr: stderr.String()}
	}
	return string(out), nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }
func (e *helmError) Unwrap() error { return e.err }
