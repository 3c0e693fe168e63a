package controller_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// TestAddressConflicts: a speaker reports that another host uses a
// Service's address. The controller moves the Service, keeps the address
// out of automatic choice (also for the hold after the report goes), marks
// the pool, and leaves a Service that requested the address where it is,
// with a Warning.
func TestAddressConflicts(t *testing.T) {
	h := newHarness(t)
	const class = "beaconlb.io/t-conflicts"
	h.pool("t-conflicts", nil, "198.18.77.0/29")
	h.startController(func(o *app.Options) {
		o.LoadBalancerClass = class
		o.ConflictHold = 3 * time.Second
	})
	mine := func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) }
	h.service("web", mine)
	h.waitIPs("web", "198.18.77.0")
	h.service("asks", func(s *v1.Service) {
		mine(s)
		s.Annotations["beaconlb.io/ips"] = "198.18.77.5"
	})
	h.waitIPs("asks", "198.18.77.5")

	report := func(name, svc string, cs ...v1alpha1.AddressConflict) *v1alpha1.ServiceAnnouncement {
		ann := &v1alpha1.ServiceAnnouncement{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{v1alpha1.NodeLabel: "n1"}},
			Service:    svc, Node: "n1", Via: v1alpha1.ViaL2, Addresses: []string{}, Conflicts: cs,
		}
		if err := h.env.Beacon.CreateIn(h.ctx, h.ns, client.ServiceAnnouncements, ann); err != nil {
			t.Fatal(err)
		}
		return ann
	}
	webAnn := report("web-n1", "web", v1alpha1.AddressConflict{Address: "198.18.77.0", MAC: "02:00:00:00:00:99", Interface: "eth0"})
	report("asks-n1", "asks", v1alpha1.AddressConflict{Address: "198.18.77.5", MAC: "02:00:00:00:00:98", Interface: "eth0"})

	h.waitIPs("web", "198.18.77.1")
	h.waitEvent("web", controller.EventAddressConflict, "198.18.77.0 is in use by another host (MAC 02:00:00:00:00:99, seen by node n1 on eth0")
	h.waitIPs("asks", "198.18.77.5")
	h.waitEvent("asks", controller.EventAddressConflict, "198.18.77.5 is in use by another host (MAC 02:00:00:00:00:98")
	h.eventually(10*time.Second, "AddressConflict condition", func() (bool, string) {
		c := meta.FindStatusCondition(h.getPool("t-conflicts").Status.Conditions, v1alpha1.PoolAddressConflict)
		if c == nil {
			return false, "none"
		}
		return c.Status == metav1.ConditionTrue && strings.Contains(c.Message, "198.18.77.0 (MAC 02:00:00:00:00:99") &&
			strings.Contains(c.Message, "198.18.77.5"), c.Message
	})
	// 8 addresses: web and asks hold 2, 198.18.77.0 is in conflict (once
	// web has left it).
	want := []v1alpha1.AddressConflict{
		{Address: "198.18.77.0", MAC: "02:00:00:00:00:99", Interface: "eth0", Node: "n1"},
		{Address: "198.18.77.5", MAC: "02:00:00:00:00:98", Interface: "eth0", Node: "n1"},
	}
	h.eventually(10*time.Second, "counts and addressConflicts", func() (bool, string) {
		st := h.getPool("t-conflicts").Status
		ok := st.IPv4 != nil && st.IPv4.Used == 2 && st.IPv4.Available == 5 && slices.Equal(st.AddressConflicts, want)
		return ok, fmt.Sprintf("%+v %+v", st.IPv4, st.AddressConflicts)
	})

	// The speaker no longer reports web's old address (web moved); a new
	// Service does not get it during the hold, and gets it after.
	if err := h.env.Beacon.DeleteIn(h.ctx, h.ns, client.ServiceAnnouncements, webAnn.Name); err != nil {
		t.Fatal(err)
	}
	h.service("new", mine)
	h.waitIPs("new", "198.18.77.2")
	h.eventually(15*time.Second, "condition without the expired conflict", func() (bool, string) {
		c := meta.FindStatusCondition(h.getPool("t-conflicts").Status.Conditions, v1alpha1.PoolAddressConflict)
		return c != nil && !strings.Contains(c.Message, "198.18.77.0 "), fmtCond(c)
	})
	h.service("later", mine)
	h.waitIPs("later", "198.18.77.0")
}

func fmtCond(c *metav1.Condition) string {
	if c == nil {
		return "none"
	}
	return string(c.Status) + " " + c.Message
}

// TestAddressConflictsSurviveRestart: the conflicts a controller learnt
// live on in the pool's status; a controller started later, which has
// never seen the speakers' report, still keeps the address out of
// automatic choice for the hold.
func TestAddressConflictsSurviveRestart(t *testing.T) {
	h := newHarness(t)
	const class = "beaconlb.io/t-conflicts-restart"
	h.pool("t-conflicts-restart", nil, "198.18.78.0/29")
	opts := func(o *app.Options) {
		o.LoadBalancerClass = class
		o.ConflictHold = time.Hour
	}
	stop := h.startController(opts)
	mine := func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(class) }
	h.service("web", mine)
	h.waitIPs("web", "198.18.78.0")
	ann := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{Name: "web-n1", Labels: map[string]string{v1alpha1.NodeLabel: "n1"}},
		Service:    "web", Node: "n1", Via: v1alpha1.ViaL2, Addresses: []string{},
		Conflicts: []v1alpha1.AddressConflict{{Address: "198.18.78.0", MAC: "02:00:00:00:00:97", Interface: "eth0"}},
	}
	if err := h.env.Beacon.CreateIn(h.ctx, h.ns, client.ServiceAnnouncements, ann); err != nil {
		t.Fatal(err)
	}
	h.waitIPs("web", "198.18.78.1")
	want := []v1alpha1.AddressConflict{{Address: "198.18.78.0", MAC: "02:00:00:00:00:97", Interface: "eth0", Node: "n1"}}
	h.eventually(10*time.Second, "addressConflicts in pool status", func() (bool, string) {
		st := h.getPool("t-conflicts-restart").Status
		return slices.Equal(st.AddressConflicts, want), fmt.Sprintf("%+v", st.AddressConflicts)
	})

	// web has moved, so no speaker reports the address any more; the
	// controller restarts.
	stop()
	if err := h.env.Beacon.DeleteIn(h.ctx, h.ns, client.ServiceAnnouncements, ann.Name); err != nil {
		t.Fatal(err)
	}
	h.startController(opts)
	h.service("new", mine)
	h.waitIPs("new", "198.18.78.2")
	h.eventually(10*time.Second, "addressConflicts kept after the restart", func() (bool, string) {
		st := h.getPool("t-conflicts-restart").Status
		return slices.Equal(st.AddressConflicts, want) && st.IPv4 != nil && st.IPv4.Available == 5,
			fmt.Sprintf("%+v %+v", st.AddressConflicts, st.IPv4)
	})
}
