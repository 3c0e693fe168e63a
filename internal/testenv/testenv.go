// Package testenv starts a real etcd and kube-apiserver (envtest, with the
// binaries `make testbin` builds) with Beacon's CRDs installed.
//
// Tests call Start; without KUBEBUILDER_ASSETS they skip with the reason,
// unless BEACON_REQUIRE_ENVTEST=1 (set by `make test`) turns that into a
// failure so CI cannot pass by skipping.
package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/beaconlb/beacon/client"
)

// Env is a running API server.
type Env struct {
	Config *rest.Config
	Kube   kubernetes.Interface
	Beacon *client.Client
	// Kubeconfig is the path of an admin kubeconfig file for subprocesses.
	Kubeconfig string

	env *envtest.Environment
}

// Service CIDRs of the test API server: dual-stack, documentation ranges.
const ServiceCIDRs = "198.19.0.0/16,2001:db8:19::/112"

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Available reports whether envtest binaries are configured, or why not.
func Available() (bool, string) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return false, "KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(make -s testbin | tail -n1)"
	}
	return true, ""
}

// Start starts an API server. Call Stop when done (TestMain) — Start does
// not register cleanup because one server usually serves a whole package.
func Start() (*Env, error) {
	// envtest logs through controller-runtime's logger; without one it
	// prints a warning with a stack trace.
	crlog.SetLogger(logr.Discard())
	te := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "charts", "beacon", "crds")},
		ErrorIfCRDPathMissing: true,
		// A loaded 2-core machine can take longer than the 20 s default.
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	te.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", ServiceCIDRs)
	cfg, err := te.Start()
	if err != nil {
		_ = te.Stop() // Start leaves the processes running when CRD install fails
		return nil, err
	}
	e := &Env{Config: cfg, env: te}
	if e.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = te.Stop()
		return nil, err
	}
	if e.Beacon, err = client.New(cfg); err != nil {
		_ = te.Stop()
		return nil, err
	}
	user, err := te.AddUser(envtest.User{Name: "beacon-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	f, err := os.CreateTemp("", "beacon-kubeconfig-*")
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	_, err = f.Write(kc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	e.Kubeconfig = f.Name()
	return e, nil
}

// Stop stops the API server and etcd and removes temporary files.
func (e *Env) Stop() error {
	if e.Kubeconfig != "" {
		_ = os.Remove(e.Kubeconfig)
	}
	return e.env.Stop()
}

// Main is a TestMain body: it starts an Env for the package, runs the tests
// and stops it. Without binaries it runs the tests anyway; those that need
// the Env skip (or fail when BEACON_REQUIRE_ENVTEST=1). It also removes
// what BuildOnce built.
func Main(m *testing.M, env **Env) {
	if ok, _ := Available(); ok {
		e, err := Start()
		if err != nil {
			println("testenv: cannot start the API server:", err.Error())
			os.Exit(1)
		}
		*env = e
	}
	code := m.Run()
	RemoveBuilt()
	if *env != nil {
		if err := (*env).Stop(); err != nil {
			println("testenv: stop:", err.Error())
		}
	}
	os.Exit(code)
}

// Need returns the package's Env, or skips/fails the test when there is none.
func Need(t testing.TB, env *Env) *Env {
	t.Helper()
	if env != nil {
		return env
	}
	_, why := Available()
	if os.Getenv("BEACON_REQUIRE_ENVTEST") == "1" {
		t.Fatalf("envtest required: %s", why)
	}
	t.Skip(why)
	return nil
}

// FreeAddr returns a loopback address whose port was free at the time of
// the call, for daemons a test starts (packages run in parallel).
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// Tail returns at most the last n bytes of s, for logs in failures.
func Tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Build builds main packages of this module (such as
// "./cmd/beacon-controller") into dir, each binary named after its package.
func Build(t testing.TB, dir string, pkgs ...string) {
	t.Helper()
	if err := GoBuild(dir, pkgs...); err != nil {
		t.Fatal(err)
	}
}

// GoBuild is Build for callers without a test (such as a sync.Once shared
// by a package's tests).
func GoBuild(dir string, pkgs ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %w\n%s", pkgs, err, out)
	}
	return nil
}

// built holds what BuildOnce built, by package list.
var built struct {
	sync.Mutex
	dirs map[string]string
}

// BuildOnce is Build into a temporary directory, once per test binary for
// the same packages; it returns the directory. Main (or RemoveBuilt, from
// a TestMain of one's own) deletes it.
func BuildOnce(t testing.TB, pkgs ...string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	key := strings.Join(pkgs, " ")
	if dir, ok := built.dirs[key]; ok {
		return dir
	}
	dir, err := os.MkdirTemp("", "beacon-test-bin-")
	if err != nil {
		t.Fatal(err)
	}
	if err := GoBuild(dir, pkgs...); err != nil {
		_ = os.RemoveAll(dir)
		t.Fatal(err)
	}
	if built.dirs == nil {
		built.dirs = map[string]string{}
	}
	built.dirs[key] = dir
	return dir
}

// RemoveBuilt deletes what BuildOnce built.
func RemoveBuilt() {
	built.Lock()
	defer built.Unlock()
	for key, dir := range built.dirs {
		_ = os.RemoveAll(dir)
		delete(built.dirs, key)
	}
}

// Poll calls cond every interval until it holds, and returns how long that
// took; after timeout (or when ctx ends) it fails the test with what and
// cond's last detail.
func Poll(t testing.TB, ctx context.Context, interval, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	err := wait.PollUntilContextTimeout(ctx, interval, timeout, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
	}
	return time.Since(start)
}
