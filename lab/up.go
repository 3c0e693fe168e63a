package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/beaconlb/beacon/internal/cli"
)

// Up builds the lab described by cfg and returns once the API server is
// ready, the CRDs are installed, Node and Pod objects exist and every echo
// server answers. It first waits (within ctx) for the machine-wide lab lock,
// then removes any leftover lab (DownAll). On error it tears down what it
// built. The caller must call Down.
func Up(ctx context.Context, cfg Config) (_ *Lab, err error) {
	cfg = cfg.withDefaults()
	in, err := preflight(cfg)
	if err != nil {
		return nil, err
	}
	lock, err := takeLabLock(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l := &Lab{cfg: cfg, topo: in.topo, dir: StateDir, procs: map[string]*Process{}, lock: lock}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Down())
		}
	}()
	start := time.Now()
	if err := l.prepareStateDir(in.echoBin); err != nil {
		return nil, err
	}
	cfg.logf("lab: building %d namespaces", len(in.topo.Namespaces()))
	if err := buildNetwork(&l.topo); err != nil {
		return nil, err
	}
	etcd, apiserver, err := l.startAPIServer()
	if err != nil {
		return nil, err
	}
	cfg.logf("lab: starting FRR (zebra, bgpd, bfdd) in %s", Netns(Router))
	if err := l.startRouter(ctx); err != nil {
		return nil, err
	}
	if err := l.startEchoServers(ctx); err != nil {
		return nil, err
	}
	if err := l.waitRouter(ctx); err != nil {
		return nil, err
	}
	cfg.logf("lab: FRR ready after %v", time.Since(start).Round(time.Millisecond))
	if err := l.connect(); err != nil {
		return nil, err
	}
	if err := waitAPIServer(ctx, l.restCfg, etcd, apiserver); err != nil {
		return nil, err
	}
	cfg.logf("lab: API server ready after %v; installing CRDs from %s", time.Since(start).Round(time.Millisecond), in.crdDir)
	if err := installCRDs(ctx, l.restCfg, in.crdDir); err != nil {
		return nil, err
	}
	if err := createObjects(ctx, l.kube, &l.topo, cfg.Namespace); err != nil {
		return nil, err
	}
	if !cfg.NoEndpointWriter {
		if err := l.startEndpointWriter(); err != nil {
			return nil, err
		}
	}
	cfg.logf("lab: up in %v", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// inputs is what Up needs from outside the lab, resolved before it touches
// anything.
type inputs struct {
	topo    Topology
	echoBin string
	crdDir  string
}

// preflight plans the lab and checks everything Up needs (root, the API
// server binaries, beacon-echo, the CRDs) before the lab lock is taken.
func preflight(cfg Config) (inputs, error) {
	topo, err := Plan(cfg)
	if err != nil {
		return inputs{}, err
	}
	if err := cfg.Router.validate(topo); err != nil {
		return inputs{}, err
	}
	if os.Geteuid() != 0 {
		return inputs{}, errors.New("lab: must run as root")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if cfg.AssetsDir == "" {
			return inputs{}, errors.New("lab: no AssetsDir and KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/testbin.sh | tail -n1)")
		}
		if _, err := os.Stat(filepath.Join(cfg.AssetsDir, b)); err != nil {
			return inputs{}, fmt.Errorf("lab: %s missing in %s: %w", b, cfg.AssetsDir, err)
		}
	}
	echoBin, err := findEcho(cfg.EchoBinary)
	if err != nil {
		return inputs{}, err
	}
	crdDir, err := findCRDs(cfg.CRDDir)
	if err != nil {
		return inputs{}, err
	}
	return inputs{topo: topo, echoBin: echoBin, crdDir: crdDir}, nil
}

// takeLabLock takes the machine-wide lab lock. A lab left by `beacon-lab
// up` (Detach) is replaced when cfg asks for it and refused at once
// otherwise; a test's lab is waited for (within ctx).
func takeLabLock(ctx context.Context, cfg Config) (*os.File, error) {
	lock, err := tryLock()
	if err != nil || lock != nil {
		return lock, err
	}
	if sv, err := readSaved(); err == nil && sv.Detached {
		if !cfg.ReplaceDetached {
			return nil, errors.New("lab: a lab started by `beacon-lab up` is running; remove it with `beacon-lab down`")
		}
		cfg.logf("lab: removing the lab started by `beacon-lab up`")
		if err := DownAll(); err != nil {
			return nil, err
		}
	} else {
		cfg.logf("lab: waiting for the lab lock %s (held by another test or lab)", LockPath)
	}
	return acquireLock(ctx)
}

// prepareStateDir removes any leftover lab, then makes a fresh state
// directory holding lab.json and a copy of the echo binary.
func (l *Lab) prepareStateDir(echoBin string) error {
	if err := DownAll(); err != nil {
		return fmt.Errorf("lab: removing leftovers: %w", err)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return err
	}
	for _, d := range []string{"bin", "logs", "pids", "etcd"} {
		if err := os.MkdirAll(filepath.Join(l.dir, d), 0o755); err != nil {
			return err
		}
	}
	cfg := l.cfg
	if err := writeSaved(saved{Nodes: cfg.Nodes, PodsPerNode: cfg.PodsPerNode, Namespace: cfg.Namespace, OwnerPid: os.Getpid(), Router: cfg.Router}); err != nil {
		return err
	}
	if err := copyFile(echoBin, l.echoPath()); err != nil {
		return fmt.Errorf("lab: copy echo binary: %w", err)
	}
	return nil
}

// startAPIServer writes the PKI and the kubeconfig, then starts etcd and
// kube-apiserver in the host namespace (without waiting for them).
func (l *Lab) startAPIServer() (etcd, apiserver *Process, err error) {
	l.cfg.logf("lab: starting etcd and kube-apiserver in %s", Netns(Host))
	p, err := newPKI(l.topo.Host)
	if err != nil {
		return nil, nil, err
	}
	files, err := p.write(l.dir)
	if err != nil {
		return nil, nil, err
	}
	if err := writeKubeconfig(l.Kubeconfig(), l.topo.Host, p); err != nil {
		return nil, nil, err
	}
	if etcd, err = l.StartProcess(etcdSpec(l.cfg.AssetsDir, l.dir)); err != nil {
		return nil, nil, err
	}
	if apiserver, err = l.StartProcess(apiServerSpec(l.cfg.AssetsDir, l.topo.Host, files)); err != nil {
		return nil, nil, err
	}
	return etcd, apiserver, nil
}

// startEchoServers starts every pod's echo server, then waits until each
// answers (they start in parallel).
func (l *Lab) startEchoServers(ctx context.Context) error {
	l.cfg.logf("lab: starting %d echo servers", len(l.topo.Pods))
	for _, pod := range l.topo.Pods {
		if _, err := l.StartProcess(l.echoSpec(pod)); err != nil {
			return err
		}
	}
	for _, pod := range l.topo.Pods {
		if err := l.waitEcho(ctx, pod); err != nil {
			return err
		}
	}
	return nil
}

// connect makes the lab's admin client config and clientset from its
// kubeconfig.
func (l *Lab) connect() (err error) {
	if l.restCfg, err = restConfigFromKubeconfig(l.Kubeconfig()); err != nil {
		return err
	}
	l.kube, err = kubernetes.NewForConfig(l.restCfg)
	return err
}

// startEndpointWriter runs the EndpointSlice writer until Down or Detach.
func (l *Lab) startEndpointWriter() error {
	ecs, err := endpointWriterClient(l.restCfg)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(context.Background())
	l.stop, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		_ = RunEndpointWriter(wctx, ecs)
	}()
	return nil
}

// endpointWriterClient is the EndpointSlice writer's clientset: its
// informers wait out API server outages (chaos tests stop it).
func endpointWriterClient(cfg *rest.Config) (kubernetes.Interface, error) {
	ecs, err := kubernetes.NewForConfig(cli.WaitOutOutages(cfg))
	if err != nil {
		return nil, fmt.Errorf("lab: endpoint writer client: %w", err)
	}
	return ecs, nil
}

// findEcho resolves the beacon-echo binary.
func findEcho(explicit string) (string, error) {
	cands := []string{explicit, os.Getenv("BEACON_ECHO")}
	if self, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(self), "beacon-echo"))
	}
	if p, err := exec.LookPath("beacon-echo"); err == nil {
		cands = append(cands, p)
	}
	for _, c := range cands {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
		if c == explicit {
			return "", fmt.Errorf("lab: echo binary %s not found", c)
		}
	}
	return "", errors.New("lab: beacon-echo not found (set Config.EchoBinary or $BEACON_ECHO, or `go build -o bin/ ./cmd/...`)")
}

// findCRDs resolves the CRD directory.
func findCRDs(explicit string) (string, error) {
	if explicit != "" {
		if _, err := os.Stat(explicit); err != nil {
			return "", fmt.Errorf("lab: CRD directory: %w", err)
		}
		return explicit, nil
	}
	var cands []string
	if _, file, _, ok := runtime.Caller(0); ok {
		cands = append(cands, filepath.Join(filepath.Dir(file), "..", "charts", "beacon", "crds"))
	}
	cands = append(cands, filepath.Join("charts", "beacon", "crds"))
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return filepath.Clean(c), nil
		}
	}
	return "", errors.New("lab: CRD directory charts/beacon/crds not found (set Config.CRDDir)")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}
