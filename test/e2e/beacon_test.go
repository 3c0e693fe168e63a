package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/echo"
	"github.com/beaconlb/beacon/lab/labtest"
)

// site is a lab running Beacon (see labtest.Site).
type site struct{ *labtest.Site }

func startBeacon(t *testing.T, l *lab.Lab) *site {
	t.Helper()
	return startBeaconWithin(t, l, 4*time.Minute)
}

// startBeaconWithin is startBeacon for a test that may take longer than 4
// minutes (benchmarks): everything it does through the site ends by then.
func startBeaconWithin(t *testing.T, l *lab.Lab, limit time.Duration) *site {
	t.Helper()
	return &site{labtest.StartBeacon(t, l, limit)}
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

// announcerOf returns the node whose ServiceAnnouncement lists ip for the
// Service, or "" when none (or more than one) does.
func (s *site) announcerOf(service, ip string) string {
	var list v1alpha1.ServiceAnnouncementList
	if err := s.BC.List(s.Ctx, "default", client.ServiceAnnouncements, &list); err != nil {
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

// metric reads one sample from a node's speaker metrics (0 if absent).
func (s *site) metric(node, series string) float64 {
	n, _ := s.L.Node(node)
	resp, err := s.L.HTTPClient(node).Get("http://" + net.JoinHostPort(n.IPv4.String(), "9473") + "/metrics")
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	v, _, _ := labtest.Metric(resp.Body, series)
	return v
}

// rss reads a lab process's resident set size.
func (s *site) rss(name string) string {
	for _, p := range s.L.Processes() {
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

// get sends one HTTP request from a lab namespace and parses the echo reply.
func (s *site) get(from, ip string, port int) (echo.Reply, error) {
	hc := s.L.HTTPClient(from)
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
	n, _ := s.L.Node(node)
	hc := s.L.HTTPClient(node)
	hc.Timeout = time.Second
	resp, err := hc.Get("http://" + net.JoinHostPort(n.IPv4.String(), "9474") + "/readyz")
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == 200
}
