package controller_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/allocator/controller"
)

const testClass = "beaconlb.io/test"

// foreignService creates a LoadBalancer Service as another implementation
// leaves it: its own ingress address and, as a cloud-controller-manager
// does, the generic cleanup finalizer. It returns the Service after the
// last write.
func (h *harness) foreignService(name string, class *string, ip string, finalizer bool) *v1.Service {
	h.t.Helper()
	s := h.service(name, func(s *v1.Service) {
		s.Spec.LoadBalancerClass = class
		if finalizer {
			s.Finalizers = []string{controller.Finalizer}
		}
	})
	s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip}}
	out, err := h.env.Kube.CoreV1().Services(h.ns).UpdateStatus(h.ctx, s, metav1.UpdateOptions{})
	if err != nil {
		h.t.Fatalf("status of %s: %v", name, err)
	}
	return out
}

// TestForeignServicesUntouched: with --load-balancer-class, Services of
// other implementations are never written, even though they carry the same
// generic finalizer, whether they exist at start-up, appear later, change or
// are being deleted.
func TestForeignServicesUntouched(t *testing.T) {
	h := newHarness(t)
	h.pool("t-foreign", nil, "198.18.15.0/30")
	want := map[string]*v1.Service{}
	want["ccm"] = h.foreignService("ccm", nil, "203.0.113.9", true)
	want["other-class"] = h.foreignService("other-class", ptr.To("example.com/other"), "203.0.113.10", true)
	h.foreignService("ccm-deleting", nil, "203.0.113.11", true)
	// Without the finalizer (as MetalLB leaves it) an address from our pool
	// is no sign that we gave it out.
	want["no-finalizer"] = h.foreignService("no-finalizer", nil, "198.18.15.3", false)
	h.deleteService("ccm-deleting") // stays, terminating, behind the finalizer
	s, err := h.getService("ccm-deleting")
	if err != nil || s.DeletionTimestamp == nil {
		t.Fatalf("ccm-deleting not terminating: %v", err)
	}
	want["ccm-deleting"] = s

	h.startController(func(o *app.Options) { o.LoadBalancerClass = testClass })
	want["ccm-later"] = h.foreignService("ccm-later", nil, "203.0.113.12", true)
	edited := want["ccm"].DeepCopy()
	edited.Labels = map[string]string{"touched": "yes"}
	if want["ccm"], err = h.env.Kube.CoreV1().Services(h.ns).Update(h.ctx, edited, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("edit ccm: %v (a conflict means the controller wrote it)", err)
	}

	// Each probe is allocated only after the workers took every earlier
	// event; two in a row flush whatever a worker still held.
	ours := func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(testClass) }
	h.service("probe-1", ours)
	h.waitIPs("probe-1", "198.18.15.0")
	h.service("probe-2", ours)
	h.waitIPs("probe-2", "198.18.15.1")

	for name, before := range want {
		got, err := h.getService(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.ResourceVersion != before.ResourceVersion {
			t.Errorf("%s was written: rv %s -> %s; finalizers %v, ingress %v",
				name, before.ResourceVersion, got.ResourceVersion, got.Finalizers, ingress(got))
		}
	}
	evs, err := h.env.Kube.CoreV1().Events(h.ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if want[e.InvolvedObject.Name] != nil {
			t.Errorf("Event on foreign Service %s: %s %s", e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
}

// TestClassChangeAfterRestartReleases: a controller restarted with another
// --load-balancer-class releases what the old class got from its pools,
// clears its status and finalizer, and hands the address out again.
func TestClassChangeAfterRestartReleases(t *testing.T) {
	h := newHarness(t)
	h.pool("t-reclass", nil, "198.18.16.0/32")
	stop := h.startController(nil)
	h.service("old", nil)
	h.waitIPs("old", "198.18.16.0")
	stop()

	h.startController(func(o *app.Options) { o.LoadBalancerClass = testClass })
	h.eventually(10*time.Second, "status and finalizer cleared", func() (bool, string) {
		s, err := h.getService("old")
		if err != nil {
			return false, err.Error()
		}
		return len(s.Status.LoadBalancer.Ingress) == 0 && len(s.Finalizers) == 0, fmt.Sprintf("%v %v", ingress(s), s.Finalizers)
	})
	h.waitEvent("old", controller.EventIPReleased, "198.18.16.0")
	h.service("new", func(s *v1.Service) { s.Spec.LoadBalancerClass = ptr.To(testClass) })
	h.waitIPs("new", "198.18.16.0")
}

// TestIPPoolPrinterColumns: `kubectl get ippools.beaconlb.io` shows addresses and the
// counts from pool status (the server builds the table from the CRD).
func TestIPPoolPrinterColumns(t *testing.T) {
	h := newHarness(t)
	h.pool("t-columns", nil, "198.18.17.0/30", "2001:db8:17::/126")
	h.startController(nil)
	h.service("col", nil)
	h.waitIPs("col", "198.18.17.0")
	h.eventually(5*time.Second, "pool status", func() (bool, string) {
		st := h.getPool("t-columns").Status.IPv4
		return st != nil && st.Used == 1, fmt.Sprintf("%+v", st)
	})

	raw, err := h.env.Kube.CoreV1().RESTClient().Get().
		AbsPath("/apis/beaconlb.io/v1alpha1/ippools/t-columns").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		DoRaw(h.ctx)
	if err != nil {
		t.Fatalf("get table: %v", err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatalf("decode table: %v\n%s", err, raw)
	}
	if table.Kind != "Table" || len(table.Rows) != 1 {
		t.Fatalf("not a one-row Table: kind %q, %d rows\n%s", table.Kind, len(table.Rows), raw)
	}
	wantCols := []string{"Name", "Addresses", "V4 Used", "V4 Available", "V6 Used", "V6 Available", "Ready", "Exhausted", "Conflicting", "Age"}
	cells := map[string]string{}
	if len(table.ColumnDefinitions) != len(wantCols) {
		t.Fatalf("columns %+v, want %v", table.ColumnDefinitions, wantCols)
	}
	for i, c := range table.ColumnDefinitions {
		if c.Name != wantCols[i] {
			t.Errorf("column %d is %q, want %q", i, c.Name, wantCols[i])
		}
		cells[c.Name] = fmt.Sprint(table.Rows[0].Cells[i])
	}
	for col, want := range map[string]string{
		"Name":         "t-columns",
		"Addresses":    `["198.18.17.0/30","2001:db8:17::/126"]`,
		"V4 Used":      "1",
		"V4 Available": "3",
		"V6 Used":      "0",
		"V6 Available": "4",
		"Ready":        "True",
		"Exhausted":    "False",
		"Conflicting":  "False",
	} {
		if cells[col] != want {
			t.Errorf("cell %s = %q, want %q", col, cells[col], want)
		}
	}
}
