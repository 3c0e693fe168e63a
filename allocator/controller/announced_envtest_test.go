package controller_test

import (
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

var unannouncedLine = regexp.MustCompile(`(?m)^beacon_addresses_unannounced (\S+)$`)

// TestUnannouncedGauge: an allocated address that no ServiceAnnouncement
// lists counts in beacon_addresses_unannounced until a speaker reports it
// with a node. The controller runs with a class of its own, so Services of
// other tests do not count.
func TestUnannouncedGauge(t *testing.T) {
	h := newHarness(t)
	const class = "beaconlb.io/t-unannounced"
	h.pool("t-unannounced", nil, "198.18.18.0/30")
	metricsAddr := testenv.FreeAddr(t)
	h.startController(func(o *app.Options) {
		o.LoadBalancerClass = class
		o.MetricsAddr = metricsAddr
	})
	gauge := func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		if m := unannouncedLine.FindSubmatch(b); m != nil {
			return string(m[1])
		}
		return "absent"
	}
	h.eventually(10*time.Second, "gauge 0 with nothing allocated", func() (bool, string) { g := gauge(); return g == "0", g })

	h.service("web", func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) })
	h.waitIPs("web", "198.18.18.0")
	h.eventually(10*time.Second, "gauge 1: allocated, no announcement", func() (bool, string) { g := gauge(); return g == "1", g })

	ann := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Labels: map[string]string{v1alpha1.NodeLabel: "n1"}},
		Service:    "web", Node: "n1", Via: v1alpha1.ViaL2, Addresses: []string{"198.18.18.0"},
	}
	if err := h.env.Beacon.CreateIn(h.ctx, h.ns, client.ServiceAnnouncements, ann); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, "gauge 0: announced by n1", func() (bool, string) { g := gauge(); return g == "0", g })

	// The speaker stops announcing (it deletes its report): unannounced again.
	if err := h.env.Beacon.DeleteIn(h.ctx, h.ns, client.ServiceAnnouncements, ann.Name); err != nil {
		t.Fatal(err)
	}
	h.eventually(10*time.Second, "gauge 1: announcement gone", func() (bool, string) { g := gauge(); return g == "1", g })
}
