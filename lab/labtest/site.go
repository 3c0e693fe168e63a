package labtest

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab"
)

// Site is a lab running Beacon: the controller in host, a speaker per
// node. Test packages embed it and add their own helpers.
type Site struct {
	T   *testing.T
	L   *lab.Lab
	Ctx context.Context // ends when the test does, or at the StartBeacon limit
	BC  *client.Client
	bin string
	// speakerArgs are added to every speaker's command line.
	speakerArgs []string
}

// StartBeacon starts the controller and a speaker on every node of l.
// Everything the Site does ends within limit.
func StartBeacon(t *testing.T, l *lab.Lab, limit time.Duration) *Site {
	t.Helper()
	return StartBeaconArgs(t, l, limit)
}

// StartBeaconArgs is StartBeacon with extra speaker flags.
func StartBeaconArgs(t *testing.T, l *lab.Lab, limit time.Duration, speakerArgs ...string) *Site {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	bc, err := client.New(l.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := &Site{T: t, L: l, Ctx: ctx, BC: bc, bin: testenv.BuildOnce(t, "./cmd/beacon-controller", "./cmd/beacon-speaker"), speakerArgs: speakerArgs}
	s.StartController()
	for _, n := range l.Nodes() {
		s.StartSpeaker(n.Name)
	}
	return s
}

// StartController starts beacon-controller in the host namespace.
func (s *Site) StartController() {
	s.T.Helper()
	if _, err := s.L.StartProcess(lab.ProcessSpec{Name: "beacon-controller", Netns: lab.Host, Argv: []string{
		filepath.Join(s.bin, "beacon-controller"), "--kubeconfig", s.L.Kubeconfig(), "--leader-elect-namespace", "default",
	}}); err != nil {
		s.T.Fatal(err)
	}
}

// StartSpeaker starts a node's beacon-speaker ("speaker-<node>").
func (s *Site) StartSpeaker(node string) {
	s.T.Helper()
	argv := append([]string{
		filepath.Join(s.bin, "beacon-speaker"), "--kubeconfig", s.L.Kubeconfig(), "--node-name", node, "--dataplane=full", "-v=1",
		"--namespace=default", // BGPPeer password Secrets
	}, s.speakerArgs...)
	if _, err := s.L.StartProcess(lab.ProcessSpec{Name: "speaker-" + node, Netns: node, Argv: argv}); err != nil {
		s.T.Fatal(err)
	}
}

// SetNodeLabel sets (value non-nil) or removes a label of a Node.
func (s *Site) SetNodeLabel(node, key string, value *string) {
	s.T.Helper()
	v := "null"
	if value != nil {
		v = strconv.Quote(*value)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%s:%s}}}`, strconv.Quote(key), v)
	if _, err := s.L.Kube().CoreV1().Nodes().Patch(s.Ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		s.T.Fatal(err)
	}
}

// Process returns the tracked lab process of that name, or nil.
func (s *Site) Process(name string) *lab.Process {
	for _, p := range s.L.Processes() {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// KillSpeaker sends SIGKILL to a node's speaker, as a crash would.
func (s *Site) KillSpeaker(node string) {
	s.T.Helper()
	if p := s.Process("speaker-" + node); p != nil {
		if err := syscall.Kill(p.Pid, syscall.SIGKILL); err != nil {
			s.T.Fatal(err)
		}
	}
	_ = s.L.StopProcess("speaker-" + node) // reaps it and forgets the pid file
}

// StopSpeaker stops a node's speaker with SIGTERM and waits for it.
func (s *Site) StopSpeaker(node string) {
	s.T.Helper()
	if err := s.L.StopProcess("speaker-" + node); err != nil {
		s.T.Fatal(err)
	}
}

// Poll calls cond every 10 ms until it holds and returns how long that
// took; it fails the test after timeout with cond's last detail.
func (s *Site) Poll(timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	s.T.Helper()
	return testenv.Poll(s.T, s.Ctx, 10*time.Millisecond, timeout, what, cond)
}

// Apply creates an IPPool, an L2Advertisement or a Service.
func (s *Site) Apply(obj any) {
	s.T.Helper()
	var err error
	switch o := obj.(type) {
	case *v1alpha1.IPPool:
		err = s.BC.Create(s.Ctx, client.IPPools, o)
	case *v1alpha1.L2Advertisement:
		err = s.BC.Create(s.Ctx, client.L2Advertisements, o)
	case *corev1.Service:
		_, err = s.L.Kube().CoreV1().Services(o.Namespace).Create(s.Ctx, o, metav1.CreateOptions{})
	default:
		err = fmt.Errorf("Apply does not handle %T", obj)
	}
	if err != nil {
		s.T.Fatalf("create: %v", err)
	}
}

// LANPool creates the IPPool "lan" (lab.L2PoolV4 and V6) and an
// L2Advertisement for it.
func (s *Site) LANPool() {
	s.T.Helper()
	s.LANPoolWith(nil)
}

// LANPoolWith is LANPool with the advertisement's spec changed by edit
// (when not nil) first.
func (s *Site) LANPoolWith(edit func(*v1alpha1.L2AdvertisementSpec)) {
	s.T.Helper()
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	p.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(lab.L2PoolV4), v1alpha1.AddressBlock(lab.L2PoolV6)}
	s.Apply(p)
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	ad.Spec.IPPools = []string{"lan"}
	if edit != nil {
		edit(&ad.Spec)
	}
	s.Apply(ad)
}

// AllEchoService is a LoadBalancer Service (port 80) selecting every lab
// pod.
func AllEchoService(name string, policy corev1.ServiceExternalTrafficPolicy) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: policy,
			Selector:              map[string]string{lab.LabelApp: "echo"},
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

// Ingress waits up to 30 s for a Service (in "default") to have an
// address of each of its IP families and returns them.
func (s *Site) Ingress(name string) []string {
	s.T.Helper()
	return s.IngressWithin(name, 30*time.Second)
}

// IngressWithin is Ingress with another bound.
func (s *Site) IngressWithin(name string, timeout time.Duration) []string {
	s.T.Helper()
	var ips []string
	s.Poll(timeout, "ingress of "+name, func() (bool, string) {
		svc, err := s.L.Kube().CoreV1().Services("default").Get(s.Ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ips = nil
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		return len(ips) > 0 && len(ips) == len(svc.Spec.IPFamilies), fmt.Sprint(ips)
	})
	return ips
}

// Announcers returns the nodes whose ServiceAnnouncement names the Service,
// sorted.
func (s *Site) Announcers(service string) []string {
	var list v1alpha1.ServiceAnnouncementList
	if err := s.BC.List(s.Ctx, "default", client.ServiceAnnouncements, &list); err != nil {
		return nil
	}
	var out []string
	for _, a := range list.Items {
		if a.Service == service {
			out = append(out, a.Node)
		}
	}
	sort.Strings(out)
	return out
}

var macRE = regexp.MustCompile(`(?i)([0-9a-f]{2}(:[0-9a-f]{2}){5})`)

// Resolve asks from client-lan who has ip (Habets arping: "60 bytes from
// MAC (IP)"; ndisc6: "Target link-layer address: MAC") and returns
// the MACs that answered.
func (s *Site) Resolve(ip string) []string {
	var argv []string
	if strings.Contains(ip, ":") {
		argv = []string{"ndisc6", "-1", "-r", "1", "-w", "300", ip, lab.LANInterface}
	} else {
		argv = []string{"arping", "-c", "1", "-w", "1", "-I", lab.LANInterface, ip}
	}
	out, _ := s.L.Exec(s.Ctx, lab.ClientLAN, argv...)
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

// NodeOfMAC returns the node with that LAN MAC, or "?<mac>".
func (s *Site) NodeOfMAC(mac string) string {
	for _, n := range s.L.Nodes() {
		if strings.EqualFold(n.MAC.String(), mac) {
			return n.Name
		}
	}
	return "?" + mac
}

// Answerer returns the node that answers for ip on the LAN, or "" unless
// exactly one does.
func (s *Site) Answerer(ip string) string {
	macs := s.Resolve(ip)
	if len(macs) != 1 {
		return ""
	}
	return s.NodeOfMAC(macs[0])
}

// AnsweredBy polls until exactly one node answers for ip and cond holds
// for it; it returns that node and how long it took.
func (s *Site) AnsweredBy(ip string, timeout time.Duration, cond func(node string) bool) (string, time.Duration) {
	s.T.Helper()
	var node string
	d := s.Poll(timeout, "answer for "+ip, func() (bool, string) {
		macs := s.Resolve(ip)
		if len(macs) != 1 {
			return false, fmt.Sprint(macs)
		}
		node = s.NodeOfMAC(macs[0])
		return cond(node), node
	})
	return node, d
}
