package lab

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

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
