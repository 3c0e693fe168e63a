package kind

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab/echo"
)

// cluster is what kind-up reported about the cluster.
type cluster struct {
	env  map[string]string
	kube kubernetes.Interface
	macs map[string]string // node by eth0 MAC, once read
}

// envFile is where kind-up writes its KEY=value lines.
func envFile() string {
	if f := os.Getenv("BEACON_KIND_ENV"); f != "" {
		return f
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "beacon", "kind", "cluster", "env")
}

// need returns the cluster of make kind-up, or skips the test without one.
func need(t *testing.T) *cluster {
	t.Helper()
	f := envFile()
	raw, err := os.ReadFile(f)
	if os.IsNotExist(err) {
		t.Skipf("no kind cluster (%s not found): run make kind-up first", f)
	}
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{env: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			c.env[k] = v
		}
	}
	for _, k := range []string{"KUBECONFIG", "ENGINE", "ROUTER", "ROUTER_IP", "CLIENT", "CLIENT_IP", "LAN_CIDR", "LAN_POOL", "BGP_POOL", "ECHO_IMAGE", "KUBECTL", "HELM", "IMAGE"} {
		if c.env[k] == "" {
			t.Fatalf("%s: no %s= line; re-run make kind-up", f, k)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.env["KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs a command with a deadline and returns its combined output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return runUntil(ctx, name, args...)
}

// runUntil is run with ctx's deadline.
func runUntil(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (c *cluster) kubectl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, c.env["KUBECTL"], append([]string{"--kubeconfig", c.env["KUBECONFIG"]}, args...)...)
}

// exec runs a command in one of kind-up's containers (router, client).
func (c *cluster) exec(ctx context.Context, container string, args ...string) (string, error) {
	return run(ctx, c.env["ENGINE"], append([]string{"exec", container}, args...)...)
}

// eventually polls cond every 250 ms until it returns nil, and fails with
// cond's last error once within has passed.
func eventually(t *testing.T, within time.Duration, what string, cond func() error) {
	t.Helper()
	testenv.Poll(t, context.Background(), 250*time.Millisecond, within, what, func() (bool, string) {
		if err := cond(); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// namespace creates a namespace for one test and deletes it (waiting,
// bounded, until it is gone) when the test ends.
func (c *cluster) namespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	name := "e2e-" + rand.String(6)
	if _, err := c.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", name, err)
			return
		}
		eventually(t, 2*time.Minute, "namespace "+name+" gone", func() error {
			_, err := c.kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%v)", err)
		})
	})
	return name
}

// echoDeployment creates a Deployment of the echo image with a readiness
// probe, and waits until replicas pods are ready.
func (c *cluster) echoDeployment(t *testing.T, ns string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": "echo"}
	env := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					// One pod per node, so that node-level checks can
					// tell which nodes have a ready pod. Only nodes the
					// pods may run on count (tainted ones, such as the
					// control plane and a cordoned node, would otherwise
					// be empty domains that block every second pod on a
					// node), and only pods of the same revision, so a
					// rolling update or an eviction can always place its
					// pods.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
						MatchLabelKeys:   []string{appsv1.DefaultDeploymentUniqueLabelKey},
						NodeTaintsPolicy: ptr.To(corev1.NodeInclusionPolicyHonor),
					}},
					TerminationGracePeriodSeconds: ptr.To[int64](2),
					Containers: []corev1.Container{{
						Name:            "echo",
						Image:           c.env["ECHO_IMAGE"],
						ImagePullPolicy: corev1.PullNever,
						Args:            []string{"-pod=$(POD_NAME)", "-node=$(NODE_NAME)", "-port=5000"},
						Env:             []corev1.EnvVar{env("POD_NAME", "metadata.name"), env("NODE_NAME", "spec.nodeName")},
						Ports:           []corev1.ContainerPort{{ContainerPort: 5000}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(5000)}},
							PeriodSeconds: 1, FailureThreshold: 1,
						},
						SecurityContext: &corev1.SecurityContext{
							RunAsNonRoot: ptr.To(true), AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
							Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
					}},
				},
			},
		},
	}
	ctx := context.Background()
	if _, err := c.kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitReady(t, ns, replicas)
}

// waitReady waits until the echo Deployment has exactly n ready pods and
// no others.
func (c *cluster) waitReady(t *testing.T, ns string, n int32) {
	t.Helper()
	eventually(t, 3*time.Minute, fmt.Sprintf("%d ready echo pods", n), func() error {
		d, err := c.kube.AppsV1().Deployments(ns).Get(context.Background(), "echo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s := d.Status; s.ReadyReplicas != n || s.Replicas != n || s.UpdatedReplicas != n {
			return fmt.Errorf("replicas %d, updated %d, ready %d", s.Replicas, s.UpdatedReplicas, s.ReadyReplicas)
		}
		return nil
	})
}

// readyNodes returns the nodes that run a ready echo pod.
func (c *cluster) readyNodes(t *testing.T, ns string) map[string]bool {
	t.Helper()
	pods, err := c.kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=echo"})
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]bool{}
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
				nodes[p.Spec.NodeName] = true
			}
		}
	}
	return nodes
}

// nodeIPs maps node names to their IPv4 InternalIP addresses.
func (c *cluster) nodeIPs(t *testing.T) map[string]netip.Addr {
	t.Helper()
	return c.nodeAddrs(t, false)
}

// nodeAddrs maps node names to their InternalIP addresses of one family.
func (c *cluster) nodeAddrs(t *testing.T, ipv6 bool) map[string]netip.Addr {
	t.Helper()
	nodes, err := c.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ips := map[string]netip.Addr{}
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if ip, err := netip.ParseAddr(a.Address); err == nil && a.Type == corev1.NodeInternalIP && ip.Is6() == ipv6 {
				ips[n.Name] = ip
			}
		}
	}
	return ips
}

// expose runs kubectl expose for the echo Deployment as a LoadBalancer
// Service on port 80 and returns its IPv4 ingress address once assigned.
func (c *cluster) expose(t *testing.T, ns, name string, extra ...string) netip.Addr {
	t.Helper()
	ctx := context.Background()
	args := append([]string{"-n", ns, "expose", "deployment", "echo", "--name", name, "--type=LoadBalancer", "--port=80", "--target-port=5000"}, extra...)
	if _, err := c.kubectl(ctx, args...); err != nil {
		t.Fatal(err)
	}
	var ip netip.Addr
	eventually(t, time.Minute, "EXTERNAL-IP of "+name, func() error {
		svc, err := c.kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil && a.Is4() {
				ip = a
				return nil
			}
		}
		return fmt.Errorf("no IPv4 ingress yet: %+v", svc.Status.LoadBalancer)
	})
	return ip
}

// parseReply reads the echo server's answer line.
func parseReply(out string) (echo.Reply, error) {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "pod=") {
			return echo.ParseReply(line)
		}
	}
	return echo.Reply{}, fmt.Errorf("no echo reply in %q", out)
}

// inRange reports whether ip lies in a first-last range or a CIDR.
func inRange(t *testing.T, r string, ip netip.Addr) bool {
	t.Helper()
	if first, last, ok := strings.Cut(r, "-"); ok {
		a, b := netip.MustParseAddr(first), netip.MustParseAddr(last)
		return a.Compare(ip) <= 0 && ip.Compare(b) <= 0
	}
	return netip.MustParsePrefix(r).Contains(ip)
}
