package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/beaconlb/beacon/internal/cli"
)

// Machine-wide locations: namespace names are global, so is the lab.
const (
	// StateDir holds lab.json, kubeconfig, pki/, etcd/, logs/, pids/, bin/.
	StateDir = "/run/beacon-lab"
	// LockPath is flock()ed by whoever owns the running lab (a test process,
	// or the detached daemon of `beacon-lab up`).
	LockPath = "/run/beacon-lab.lock"
)

// Config describes a lab. The zero value is a valid 3 nodes × 2 pods lab
// using $KUBEBUILDER_ASSETS.
type Config struct {
	// Nodes is the number of nodes (default 3, at most MaxNodes).
	Nodes int
	// PodsPerNode is the number of echo pods per node (default 2).
	PodsPerNode int
	// AssetsDir holds etcd and kube-apiserver (default $KUBEBUILDER_ASSETS,
	// as printed last by hack/testbin.sh).
	AssetsDir string
	// CRDDir holds the CRDs to install (default charts/beacon/crds of this
	// source tree, else of the working directory).
	CRDDir string
	// EchoBinary is the beacon-echo executable (default $BEACON_ECHO, else
	// beacon-echo next to this executable, else on $PATH). Up copies it into
	// the state directory.
	EchoBinary string
	// Namespace of the Pod objects (default "default").
	Namespace string
	// Router configures FRR in the router (ASNs, BFD timers, passwords).
	Router RouterConfig
	// ReplaceDetached makes Up remove a running lab started by `beacon-lab
	// up` (see Detach) instead of failing at once. A lab owned by a running
	// test is always waited for (within the context).
	ReplaceDetached bool
	// NoEndpointWriter skips the in-process EndpointSlice writer (the CLI
	// runs it in its detached daemon instead).
	NoEndpointWriter bool
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.PodsPerNode == 0 {
		c.PodsPerNode = 2
	}
	if c.AssetsDir == "" {
		c.AssetsDir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	c.Router = c.Router.withDefaults()
	return c
}

func (c Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// saved is lab.json: enough to Attach to a running lab.
type saved struct {
	Nodes       int    `json:"nodes"`
	PodsPerNode int    `json:"podsPerNode"`
	Namespace   string `json:"namespace"`
	OwnerPid    int    `json:"ownerPid"`
	// Router is the router's configuration (defaults filled in).
	Router RouterConfig `json:"router"`
	// Detached: the lab belongs to the daemon of `beacon-lab up`.
	Detached bool `json:"detached,omitempty"`
}

// Lab is a running lab. Its methods are safe for concurrent use.
type Lab struct {
	cfg  Config
	topo Topology
	dir  string

	restCfg *rest.Config
	kube    kubernetes.Interface

	mu     sync.Mutex
	procs  map[string]*Process
	lock   *os.File
	stop   context.CancelFunc // endpoint writer
	done   chan struct{}
	downed bool
}

// Up builds the lab described by cfg and returns once the API server is
// ready, the CRDs are installed, Node and Pod objects exist and every echo
// server answers. It first waits (within ctx) for the machine-wide lab lock,
// then removes any leftover lab (DownAll). On error it tears down what it
// built. The caller must call Down.
func Up(ctx context.Context, cfg Config) (_ *Lab, err error) {
	cfg = cfg.withDefaults()
	topo, err := Plan(cfg)
	if err != nil {
		return nil, err
	}
	if err := cfg.Router.validate(topo); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("lab: must run as root")
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if cfg.AssetsDir == "" {
			return nil, errors.New("lab: no AssetsDir and KUBEBUILDER_ASSETS is unset: export KUBEBUILDER_ASSETS=$(hack/testbin.sh | tail -n1)")
		}
		if _, err := os.Stat(filepath.Join(cfg.AssetsDir, b)); err != nil {
			return nil, fmt.Errorf("lab: %s missing in %s: %w", b, cfg.AssetsDir, err)
		}
	}
	echoBin, err := findEcho(cfg.EchoBinary)
	if err != nil {
		return nil, err
	}
	crdDir, err := findCRDs(cfg.CRDDir)
	if err != nil {
		return nil, err
	}

	lock, err := tryLock()
	if err != nil {
		return nil, err
	}
	if lock == nil {
		// Somebody holds the lab. A lab left by `beacon-lab up` (Detach) is
		// replaced when asked, refused at once otherwise; a test's lab is
		// waited for.
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
		if lock, err = acquireLock(ctx); err != nil {
			return nil, err
		}
	}
	l := &Lab{cfg: cfg, topo: topo, dir: StateDir, procs: map[string]*Process{}, lock: lock}
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Down())
		}
	}()
	start := time.Now()
	if err := DownAll(); err != nil {
		return nil, fmt.Errorf("lab: removing leftovers: %w", err)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return nil, err
	}
	for _, d := range []string{"bin", "logs", "pids", "etcd"} {
		if err := os.MkdirAll(filepath.Join(l.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := writeSaved(saved{Nodes: cfg.Nodes, PodsPerNode: cfg.PodsPerNode, Namespace: cfg.Namespace, OwnerPid: os.Getpid(), Router: cfg.Router}); err != nil {
		return nil, err
	}
	if err := copyFile(echoBin, l.echoPath()); err != nil {
		return nil, fmt.Errorf("lab: copy echo binary: %w", err)
	}

	cfg.logf("lab: building %d namespaces", len(topo.Namespaces()))
	if err := buildNetwork(&l.topo); err != nil {
		return nil, err
	}

	cfg.logf("lab: starting etcd and kube-apiserver in %s", Netns(Host))
	p, err := newPKI(topo.Host)
	if err != nil {
		return nil, err
	}
	files, err := p.write(l.dir)
	if err != nil {
		return nil, err
	}
	if err := writeKubeconfig(l.Kubeconfig(), topo.Host, p); err != nil {
		return nil, err
	}
	etcd, err := l.StartProcess(etcdSpec(cfg.AssetsDir, l.dir))
	if err != nil {
		return nil, err
	}
	apiserver, err := l.StartProcess(apiServerSpec(cfg.AssetsDir, topo.Host, files))
	if err != nil {
		return nil, err
	}

	cfg.logf("lab: starting FRR (zebra, bgpd, bfdd) in %s", Netns(Router))
	if err := l.startRouter(ctx); err != nil {
		return nil, err
	}

	cfg.logf("lab: starting %d echo servers", len(topo.Pods))
	for _, pod := range topo.Pods {
		if _, err := l.StartProcess(l.echoSpec(pod)); err != nil {
			return nil, err
		}
	}
	for _, pod := range topo.Pods {
		if err := l.waitEcho(ctx, pod); err != nil {
			return nil, err
		}
	}

	if err := l.waitRouter(ctx); err != nil {
		return nil, err
	}
	cfg.logf("lab: FRR ready after %v", time.Since(start).Round(time.Millisecond))

	if l.restCfg, err = restConfigFromKubeconfig(l.Kubeconfig()); err != nil {
		return nil, err
	}
	if l.kube, err = kubernetes.NewForConfig(l.restCfg); err != nil {
		return nil, err
	}
	if err := waitAPIServer(ctx, l.restCfg, etcd, apiserver); err != nil {
		return nil, err
	}
	cfg.logf("lab: API server ready after %v; installing CRDs from %s", time.Since(start).Round(time.Millisecond), crdDir)
	if err := installCRDs(ctx, l.restCfg, crdDir); err != nil {
		return nil, err
	}
	if err := createObjects(ctx, l.kube, &l.topo, cfg.Namespace); err != nil {
		return nil, err
	}
	if !cfg.NoEndpointWriter {
		// Its informers wait out API server outages (chaos tests stop it).
		ecs, err := kubernetes.NewForConfig(cli.WaitOutOutages(l.restCfg))
		if err != nil {
			return nil, fmt.Errorf("lab: endpoint writer client: %w", err)
		}
		wctx, cancel := context.WithCancel(context.Background())
		l.stop, l.done = cancel, make(chan struct{})
		go func() {
			defer close(l.done)
			_ = RunEndpointWriter(wctx, ecs)
		}()
	}
	cfg.logf("lab: up in %v", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// Down stops the EndpointSlice writer, then removes everything (DownAll) and
// releases the lab lock. It is idempotent.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.downed {
		return nil
	}
	l.downed = true
	l.stopWriterLocked()
	err := DownAll()
	if l.lock != nil {
		_ = l.lock.Close()
		l.lock = nil
	}
	return err
}

func (l *Lab) stopWriterLocked() {
	if l.stop != nil {
		l.stop()
		select {
		case <-l.done:
		case <-time.After(5 * time.Second):
		}
		l.stop = nil
	}
}

// DownAll removes every lab leftover, whoever made it: it stops (SIGTERM,
// SIGKILL after 1 s) every process recorded in the state directory or living in a beacon- network
// namespace, deletes those namespaces and any beacon- link of the calling
// namespace, and removes the state directory. It does not take the lab
// lock: it is the emergency brake (`beacon-lab down`).
func DownAll() error {
	inv, err := TakeInventory()
	if err != nil {
		return err
	}
	var errs []error
	// A short grace: the lab is disposable, and etcd with kube-apiserver
	// stopped together can take many seconds to agree on a clean exit.
	if err := stopProcesses(inv.Processes, time.Second); err != nil {
		errs = append(errs, err)
	}
	for ns := range inv.Netns {
		if err := deleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range inv.Links {
		link, err := netlink.LinkByName(name)
		if err != nil {
			continue
		}
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("lab: delete link %s: %w", name, err))
		}
	}
	if err := os.RemoveAll(StateDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Inventory is what a lab (running or leftover) holds on this machine.
type Inventory struct {
	// Netns maps each lab network namespace to its inode.
	Netns map[string]uint64
	// Links are the lab-named links of the calling namespace (normally none).
	Links []string
	// Processes are the recorded processes that still run plus every
	// other process living in one of Netns.
	Processes []*Process
	// StateDir reports whether StateDir exists.
	StateDir bool
}

// Empty reports whether nothing of a lab is left.
func (inv *Inventory) Empty() bool {
	return len(inv.Netns) == 0 && len(inv.Links) == 0 && len(inv.Processes) == 0 && !inv.StateDir
}

// String lists the inventory.
func (inv *Inventory) String() string {
	var ns, procs []string
	for n := range inv.Netns {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	for _, p := range inv.Processes {
		procs = append(procs, fmt.Sprintf("%s(pid %d in %s)", p.Name, p.Pid, p.Netns))
	}
	return fmt.Sprintf("netns=%v links=%v processes=%v stateDir=%v", ns, inv.Links, procs, inv.StateDir)
}

// TakeInventory lists the lab's namespaces, links and live processes.
func TakeInventory() (*Inventory, error) {
	inv := &Inventory{Netns: map[string]uint64{}}
	names, err := ListNetns()
	if err != nil {
		return nil, err
	}
	for _, ns := range names {
		ino, err := netnsInode(filepath.Join(NetnsDir, ns))
		if err != nil {
			ino = 0 // a dangling name: still delete it
		}
		inv.Netns[ns] = ino
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("lab: list links: %w", err)
	}
	for _, l := range links {
		if IsLabName(l.Attrs().Name) {
			inv.Links = append(inv.Links, l.Attrs().Name)
		}
	}
	recorded, err := loadProcesses(StateDir)
	if err != nil {
		return nil, err
	}
	if inv.Processes, err = inv.survivors(recorded); err != nil {
		return nil, err
	}
	_, err = os.Stat(StateDir)
	inv.StateDir = err == nil
	return inv, nil
}

// Survivors returns the processes of the inventory that still run, plus
// any process now living in one of its namespaces (even if the namespace's
// name is gone). Use it to check that a teardown left nothing behind.
func (inv *Inventory) Survivors() ([]*Process, error) { return inv.survivors(inv.Processes) }

func (inv *Inventory) survivors(known []*Process) ([]*Process, error) {
	inodes := map[uint64]string{}
	for ns, ino := range inv.Netns {
		if ino != 0 {
			inodes[ino] = ns
		}
	}
	inNetns, err := processesInNetns(inodes)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []*Process
	for _, p := range append(append([]*Process(nil), known...), inNetns...) {
		if seen[p.Pid] || !pidAlive(p.Pid, p.start) {
			continue
		}
		seen[p.Pid] = true
		out = append(out, p)
	}
	return out, nil
}

// Attach returns the lab that is running now (made by another process,
// e.g. `beacon-lab up`). Its Down is DownAll.
func Attach() (*Lab, error) {
	sv, err := readSaved()
	if err != nil {
		return nil, err
	}
	cfg := Config{Nodes: sv.Nodes, PodsPerNode: sv.PodsPerNode, Namespace: sv.Namespace, Router: sv.Router}.withDefaults()
	topo, err := Plan(cfg)
	if err != nil {
		return nil, err
	}
	l := &Lab{cfg: cfg, topo: topo, dir: StateDir, procs: map[string]*Process{}}
	procs, err := loadProcesses(StateDir)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		l.procs[p.Name] = p
	}
	if l.restCfg, err = restConfigFromKubeconfig(l.Kubeconfig()); err != nil {
		return nil, err
	}
	if l.kube, err = kubernetes.NewForConfig(l.restCfg); err != nil {
		return nil, err
	}
	return l, nil
}

// Detach hands the lab over to a background process so that it outlives
// this one: argv runs in the host namespace, tracked like every lab process
// and holding the lab lock (inherited as file descriptor 3) for as long as
// it lives; usually it runs the EndpointSlice writer (`beacon-lab up` uses
// its own hidden "daemon" subcommand). This Lab's writer is stopped. Remove
// the lab with DownAll.
func (l *Lab) Detach(argv []string) error {
	l.mu.Lock()
	lock := l.lock
	l.mu.Unlock()
	if lock == nil {
		return errors.New("lab: Detach: this Lab does not hold the lab lock")
	}
	sv, err := readSaved()
	if err != nil {
		return err
	}
	p, err := l.startProcess(ProcessSpec{Name: procDaemon, Netns: Host, Argv: argv, extraFiles: []*os.File{lock}})
	if err != nil {
		return err
	}
	sv.Detached, sv.OwnerPid = true, p.Pid
	if err := writeSaved(sv); err != nil {
		return err
	}
	if err := lock.Truncate(0); err == nil {
		_, _ = lock.WriteAt([]byte(strconv.Itoa(p.Pid)+"\n"), 0)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopWriterLocked()
	_ = l.lock.Close() // the daemon keeps the lock
	l.lock = nil
	l.downed = true // Down on this value would not own the lab any more
	return nil
}

// RunDaemon is the body of the process Detach starts for the CLI: it
// attaches to the running lab and runs the EndpointSlice writer until ctx
// ends.
func RunDaemon(ctx context.Context) error {
	l, err := Attach()
	if err != nil {
		return err
	}
	ecs, err := kubernetes.NewForConfig(cli.WaitOutOutages(l.restCfg))
	if err != nil {
		return fmt.Errorf("lab: endpoint writer client: %w", err)
	}
	return RunEndpointWriter(ctx, ecs)
}

// Topology returns the lab's plan (addresses, MACs, names).
func (l *Lab) Topology() Topology { return l.topo }

// Nodes returns the lab's nodes in order.
func (l *Lab) Nodes() []Node { return append([]Node(nil), l.topo.Nodes...) }

// Pods returns the lab's pods, by node then index.
func (l *Lab) Pods() []Pod { return append([]Pod(nil), l.topo.Pods...) }

// Pod returns a pod by name ("n1-p1").
func (l *Lab) Pod(name string) (Pod, bool) {
	for _, p := range l.topo.Pods {
		if p.Name == name {
			return p, true
		}
	}
	return Pod{}, false
}

// Node returns a node by name ("node1").
func (l *Lab) Node(name string) (Node, bool) {
	for _, n := range l.topo.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Namespace returns the Kubernetes namespace of the lab's Pod objects.
func (l *Lab) Namespace() string { return l.cfg.Namespace }

// StateDir returns the lab's state directory (logs/ holds process logs).
func (l *Lab) StateDir() string { return l.dir }

// Kubeconfig returns the path of an admin kubeconfig. Its server is the
// API server's LAN address (https://198.51.100.2:6443): use it from
// processes in lab namespaces (Exec, StartProcess). From elsewhere, use
// RESTConfig.
func (l *Lab) Kubeconfig() string { return filepath.Join(l.dir, "kubeconfig") }

// RESTConfig returns an admin client config that dials from inside the host
// namespace, so it works from any namespace, the root one included. Each
// call returns a fresh copy.
func (l *Lab) RESTConfig() *rest.Config { return rest.CopyConfig(l.restCfg) }

// Kube returns an admin clientset (built on RESTConfig).
func (l *Lab) Kube() kubernetes.Interface { return l.kube }

// InNetns runs fn in the named lab namespace (see the package function).
func (l *Lab) InNetns(ns string, fn func() error) error { return InNetns(ns, fn) }

// Exec runs a command in the named lab namespace and returns its combined
// output (see the package function).
func (l *Lab) Exec(ctx context.Context, ns string, argv ...string) ([]byte, error) {
	return Exec(ctx, ns, argv...)
}

// SetCable plugs a LAN station's cable in or pulls it out: its port on the
// LAN switch goes up or down, so the station's own interface loses carrier
// and keeps its addresses and routes, as a real NIC does. (Setting the
// station's interface itself down makes the kernel drop every route through
// it, the routes to other nodes' pod CIDRs included, and nothing in the lab
// puts them back.)
func (l *Lab) SetCable(ctx context.Context, station string, connected bool) error {
	state := "down"
	if connected {
		state = "up"
	}
	if out, err := l.Exec(ctx, LAN, "ip", "link", "set", station, state); err != nil {
		return fmt.Errorf("lab: %s's cable %s: %w: %s", station, state, err, out)
	}
	return nil
}

// Dialer returns a dial function that connects from the named namespace.
func (l *Lab) Dialer(ns string) DialFunc { return Dialer(ns) }

// HTTPClient returns an HTTP client whose connections start in the named
// namespace (URLs must use IP literals). Keep-alives are off so that each
// request is a new connection (and may reach another backend).
func (l *Lab) HTTPClient(ns string) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: Dialer(ns), DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
}

// StartProcess starts a tracked long-running process in a lab namespace
// (a speaker in node1, the controller in host...). DownAll stops it. A
// process of the same name must have exited first.
func (l *Lab) StartProcess(spec ProcessSpec) (*Process, error) {
	spec.extraFiles = nil
	return l.startProcess(spec)
}

func (l *Lab) startProcess(spec ProcessSpec) (*Process, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.procs[spec.Name]; ok && old.Alive() {
		return nil, fmt.Errorf("lab: process %s already running (pid %d)", spec.Name, old.Pid)
	}
	p, err := startProcess(l.dir, spec)
	if err != nil {
		return nil, err
	}
	l.procs[spec.Name] = p
	return p, nil
}

// StopProcess stops a tracked process (SIGTERM, then SIGKILL after 5 s).
func (l *Lab) StopProcess(name string) error {
	l.mu.Lock()
	p, ok := l.procs[name]
	l.mu.Unlock()
	if !ok {
		return fmt.Errorf("lab: no process %s", name)
	}
	if err := stopProcesses([]*Process{p}, 5*time.Second); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.procs[name] == p {
		delete(l.procs, name)
		_ = os.Remove(pidFile(l.dir, name))
	}
	return nil
}

// Processes returns the tracked processes.
func (l *Lab) Processes() []*Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Process
	for _, p := range l.procs {
		out = append(out, p)
	}
	return out
}

// EchoProcessName is the tracked process name of a pod's echo server.
func EchoProcessName(pod string) string { return "echo-" + pod }

func (l *Lab) echoPath() string { return filepath.Join(l.dir, "bin", "beacon-echo") }

func (l *Lab) echoSpec(p Pod) ProcessSpec {
	return ProcessSpec{Name: EchoProcessName(p.Name), Netns: p.Netns, Argv: []string{
		l.echoPath(), "--pod=" + p.Name, "--node=" + p.Node, "--port=" + strconv.Itoa(EchoPort),
	}}
}

// waitEcho polls the echo server's TCP port from inside its pod.
func (l *Lab) waitEcho(ctx context.Context, p Pod) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(EchoPort))
	dial := Dialer(p.Netns)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := dial(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		l.mu.Lock()
		proc := l.procs[EchoProcessName(p.Name)]
		l.mu.Unlock()
		if proc != nil && !proc.Alive() {
			return fmt.Errorf("lab: echo server of %s exited: %s", p.Name, LogTail(proc.Log, 2000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: echo server of %s not answering: %w (last: %v)", p.Name, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// StopEcho stops a pod's echo server (connections are then refused).
func (l *Lab) StopEcho(pod string) error {
	if _, ok := l.Pod(pod); !ok {
		return fmt.Errorf("lab: no pod %s", pod)
	}
	return l.StopProcess(EchoProcessName(pod))
}

// StartEcho (re)starts a pod's echo server and waits until it answers.
func (l *Lab) StartEcho(ctx context.Context, pod string) error {
	p, ok := l.Pod(pod)
	if !ok {
		return fmt.Errorf("lab: no pod %s", pod)
	}
	if _, err := l.StartProcess(l.echoSpec(p)); err != nil {
		return err
	}
	return l.waitEcho(ctx, p)
}

// SetPodReady sets the pod's Ready condition; the EndpointSlices follow.
func (l *Lab) SetPodReady(ctx context.Context, pod string, ready bool) error {
	return setPodReady(ctx, l.kube, l.cfg.Namespace, pod, ready)
}

// TerminatePod deletes the Pod object gracefully. With no kubelet it stays
// terminating (deletionTimestamp set) until ResetPod; its endpoints become
// ready=false, terminating=true, serving=<Ready condition>.
func (l *Lab) TerminatePod(ctx context.Context, pod string) error {
	return l.kube.CoreV1().Pods(l.cfg.Namespace).Delete(ctx, pod, metav1.DeleteOptions{})
}

// ResetPod force-deletes the Pod object and creates it again, ready.
func (l *Lab) ResetPod(ctx context.Context, pod string) error {
	p, ok := l.Pod(pod)
	if !ok {
		return fmt.Errorf("lab: no pod %s", pod)
	}
	if err := forceDeletePod(ctx, l.kube, l.cfg.Namespace, pod); err != nil {
		return err
	}
	return createPod(ctx, l.kube, &l.topo, p, l.cfg.Namespace)
}

// SetNodeReady sets the Node's Ready condition.
func (l *Lab) SetNodeReady(ctx context.Context, node string, ready bool) error {
	return setNodeReady(ctx, l.kube, node, ready)
}

// tryLock takes the machine-wide lab lock if it is free; nil if it is held.
func tryLock() (*os.File, error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		_ = f.Close()
		return nil, nil
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lab: lock %s: %w", LockPath, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// acquireLock takes the machine-wide lab lock, waiting within ctx.
func acquireLock(ctx context.Context) (*os.File, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		f, err := tryLock()
		if err != nil || f != nil {
			return f, err
		}
		select {
		case <-ctx.Done():
			holder, _ := os.ReadFile(LockPath)
			return nil, fmt.Errorf("lab: another lab is up (lock %s held by pid %s); wait, or remove it with `beacon-lab down`: %w",
				LockPath, strings.TrimSpace(string(holder)), ctx.Err())
		case <-tick.C:
		}
	}
}

func readSaved() (saved, error) {
	var sv saved
	b, err := os.ReadFile(filepath.Join(StateDir, "lab.json"))
	if err != nil {
		return sv, fmt.Errorf("lab: no running lab (%w)", err)
	}
	if err := json.Unmarshal(b, &sv); err != nil {
		return sv, fmt.Errorf("lab: %s: %w", filepath.Join(StateDir, "lab.json"), err)
	}
	return sv, nil
}

func writeSaved(sv saved) error {
	b, err := json.Marshal(sv)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(StateDir, "lab.json"), b, 0o644)
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
