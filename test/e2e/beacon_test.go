package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/echo"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds beacon-controller and beacon-speaker once per test run.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "beacon-e2e-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/beacon-controller", "./cmd/beacon-speaker")
		cmd.Dir = testenv.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// site is a lab running Beacon: the controller in host, a speaker per node.
type site struct {
	t   *testing.T
	l   *lab.Lab
	ctx context.Context
	bin string
	bc  *client.Client
}

func startBeacon(t *testing.T, l *lab.Lab) *site {
	t.Helper()
	return startBeaconWithin(t, l, 4*time.Minute)
}

// startBeaconWithin is startBeacon for a test that may take longer than 4
// minutes (benchmarks): everything it does through the site ends by then.
func startBeaconWithin(t *testing.T, l *lab.Lab, limit time.Duration) *site {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	bc, err := client.New(l.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := &site{t: t, l: l, ctx: ctx, bin: binaries(t), bc: bc}
	if _, err := l.StartProcess(lab.ProcessSpec{Name: "beacon-controller", Netns: "host", Argv: []string{
		filepath.Join(s.bin, "beacon-controller"), "--kubeconfig", l.Kubeconfig(), "--leader-elect-namespace", "default",
	}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes() {
		s.startSpeaker(n.Name)
	}
	return s
}

func (s *site) startSpeaker(node string) {
	s.t.Helper()
	if _, err := s.l.StartProcess(lab.ProcessSpec{Name: "speaker-" + node, Netns: node, Argv: []string{
		filepath.Join(s.bin, "beacon-speaker"), "--kubeconfig", s.l.Kubeconfig(), "--node-name", node, "--dataplane=full", "-v=1",
		"--namespace=default", // BGPPeer password Secrets
	}}); err != nil {
		s.t.Fatal(err)
	}
}

// killSpeaker sends SIGKILL to a node's speaker, as a crash would.
func (s *site) killSpeaker(node string) {
	s.t.Helper()
	for _, p := range s.l.Processes() {
		if p.Name == "speaker-"+node {
			if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	_ = s.l.StopProcess("speaker-" + node) // reaps it and forgets the pid file
}

func (s *site) apply(obj any) {
	s.t.Helper()
	var err error
	switch o := obj.(type) {
	case *v1alpha1.IPPool:
		err = s.bc.Create(s.ctx, client.IPPools, o)
	case *v1alpha1.L2Advertisement:
		err = s.bc.Create(s.ctx, client.L2Advertisements, o)
	case *corev1.Service:
		_, err = s.l.Kube().CoreV1().Services(o.Namespace).Create(s.ctx, o, metav1.CreateOptions{})
	}
	if err != nil {
		s.t.Fatalf("create: %v", err)
	}
}

func (s *site) lanPool() {
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	p.Spec.Addresses = []v1alpha1.AddressBlock{"198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"}
	s.apply(p)
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	ad.Spec.IPPools = []string{"lan"}
	s.apply(ad)
}

func echoService(name, pod string, mut func(*corev1.Service)) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:           corev1.ServiceTypeLoadBalancer,
			Selector:       map[string]string{"app": pod},
			IPFamilyPolicy: ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Ports:          []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if mut != nil {
		mut(svc)
	}
	return svc
}

// allEchoService selects every lab pod (one per node by default).
func allEchoService(name string, policy corev1.ServiceExternalTrafficPolicy) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: policy,
			Selector:              map[string]string{"lab.beaconlb.io/app": "echo"},
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intOrName("http")}},
		},
	}
}

func (s *site) poll(timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	s.t.Helper()
	start := time.Now()
	var last string
	err := wait.PollUntilContextTimeout(s.ctx, 10*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		s.t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
	}
	return time.Since(start)
}

func (s *site) ingress(name string) []string {
	s.t.Helper()
	var ips []string
	s.poll(30*time.Second, "ingress of "+name, func() (bool, string) {
		svc, err := s.l.Kube().CoreV1().Services("default").Get(s.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ips = nil
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		return len(ips) == len(svc.Spec.IPFamilies), fmt.Sprint(ips)
	})
	return ips
}

// announcers returns the nodes whose ServiceAnnouncement names the Service.
func (s *site) announcers(service string) []string {
	var list v1alpha1.ServiceAnnouncementList
	if err := s.bc.List(s.ctx, "default", client.ServiceAnnouncements, &list); err != nil {
		return nil
	}
	var out []string
	for _, a := range list.Items {
		if a.Service == service {
			out = append(out, a.Node)
		}
	}
	return out
}

// announcerOf returns the node whose ServiceAnnouncement lists ip for the
// Service, or "" when none (or more than one) does.
func (s *site) announcerOf(service, ip string) string {
	var list v1alpha1.ServiceAnnouncementList
	if err := s.bc.List(s.ctx, "default", client.ServiceAnnouncements, &list); err != nil {
		return ""
	}
	var nodes []string
	for _, a := range list.Items {
		if a.Service == service && slices.Contains(a.Addresses, ip) {
			nodes = append(nodes, a.Node)
		}
	}
	if len(nodes) != 1 {
		return ""
	}
	return nodes[0]
}

var macRE = regexp.MustCompile(`(?i)([0-9a-f]{2}(:[0-9a-f]{2}){5})`)

// resolve asks from client-lan who has ip (Habets arping: "60 bytes from
// MAC (IP)"; ndisc6: "Target link-layer address: MAC") and returns
// the MACs that answered.
func (s *site) resolve(ip string) []string {
	var argv []string
	if strings.Contains(ip, ":") {
		argv = []string{"ndisc6", "-1", "-r", "1", "-w", "300", ip, lab.LANInterface}
	} else {
		argv = []string{"arping", "-c", "1", "-w", "1", "-I", lab.LANInterface, ip}
	}
	out, _ := s.l.Exec(s.ctx, "client-lan", argv...)
	var macs []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "bytes from") && !strings.Contains(line, "Target link-layer") {
			continue
		}
		if m := macRE.FindString(line); m != "" {
			macs = append(macs, strings.ToLower(m))
		}
	}
	return macs
}

func (s *site) nodeOfMAC(mac string) string {
	for _, n := range s.l.Nodes() {
		if strings.EqualFold(n.MAC.String(), mac) {
			return n.Name
		}
	}
	return "?" + mac
}

// answeredBy polls until exactly one node answers for ip and cond holds
// for it; it returns that node and how long it took.
func (s *site) answeredBy(ip string, timeout time.Duration, cond func(node string) bool) (string, time.Duration) {
	s.t.Helper()
	var node string
	d := s.poll(timeout, "answer for "+ip, func() (bool, string) {
		macs := s.resolve(ip)
		if len(macs) != 1 {
			return false, fmt.Sprint(macs)
		}
		node = s.nodeOfMAC(macs[0])
		return cond(node), node
	})
	return node, d
}

func intOrName(name string) intstr.IntOrString { return intstr.FromString(name) }

// metric reads one sample from a node's speaker metrics (0 if absent).
func (s *site) metric(node, series string) float64 {
	n, _ := s.l.Node(node)
	resp, err := s.l.HTTPClient(node).Get("http://" + net.JoinHostPort(n.IPv4.String(), "9473") + "/metrics")
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// rss reads a lab process's resident set size.
func (s *site) rss(name string) string {
	for _, p := range s.l.Processes() {
		if p.Name != name {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid))
		if err != nil {
			return err.Error()
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return "unknown"
}

// stopSpeaker stops a node's speaker with SIGTERM and waits for it.
func (s *site) stopSpeaker(node string) {
	s.t.Helper()
	if err := s.l.StopProcess("speaker-" + node); err != nil {
		s.t.Fatal(err)
	}
}

// get sends one HTTP request from a lab namespace and parses the echo reply.
func (s *site) get(from, ip string, port int) (echo.Reply, error) {
	hc := s.l.HTTPClient(from)
	hc.Timeout = 2 * time.Second
	resp, err := hc.Get("http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + "/")
	if err != nil {
		return echo.Reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return echo.Reply{}, err
	}
	return echo.ParseReply(string(b))
}

// ready reports whether a node's speaker answers /readyz (it has settled).
func (s *site) ready(node string) bool {
	n, _ := s.l.Node(node)
	hc := s.l.HTTPClient(node)
	hc.Timeout = time.Second
	resp, err := hc.Get("http://" + net.JoinHostPort(n.IPv4.String(), "9474") + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == 200
}
