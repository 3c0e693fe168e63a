package agent

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/speaker/plan"
)

func TestReported(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.200")
	r := plan.Report{Namespace: "ns", Service: "web", Via: v1alpha1.ViaL2, Addresses: []netip.Addr{ip}, Interfaces: []string{"eth0"}}
	same := func() *v1alpha1.ServiceAnnouncement {
		return &v1alpha1.ServiceAnnouncement{Service: "web", Via: v1alpha1.ViaL2, Addresses: []string{"198.51.100.200"}, Interfaces: []string{"eth0"}}
	}
	tests := []struct {
		name   string
		change func(*v1alpha1.ServiceAnnouncement)
		want   bool
	}{
		{"same", func(*v1alpha1.ServiceAnnouncement) {}, true},
		{"no peers read back as empty", func(sa *v1alpha1.ServiceAnnouncement) { sa.Peers = []string{} }, true},
		{"other address", func(sa *v1alpha1.ServiceAnnouncement) { sa.Addresses = []string{"198.51.100.201"} }, false},
		{"one address more", func(sa *v1alpha1.ServiceAnnouncement) { sa.Addresses = append(sa.Addresses, "2001:db8::1") }, false},
		{"no address", func(sa *v1alpha1.ServiceAnnouncement) { sa.Addresses = []string{} }, false},
		{"other interface", func(sa *v1alpha1.ServiceAnnouncement) { sa.Interfaces = []string{"eth1"} }, false},
		{"peers", func(sa *v1alpha1.ServiceAnnouncement) { sa.Peers = []string{"router"} }, false},
		{"conflicts", func(sa *v1alpha1.ServiceAnnouncement) {
			sa.Conflicts = []v1alpha1.AddressConflict{{Address: "198.51.100.200"}}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sa := same()
			tt.change(sa)
			if got := reported(sa, r); got != tt.want {
				t.Errorf("reported = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHeldReportIsWritten: a report this node created and its cache does
// not show yet is not created again, and when it changes meanwhile (a
// probe found its address in use) the change is held, not dropped: it is
// written once the cache shows the create.
func TestHeldReportIsWritten(t *testing.T) {
	var mu sync.Mutex
	var writes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		writes = append(writes, r.Method)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	bc, err := client.New(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	reports := cache.NewSharedIndexInformer(&cache.ListWatch{}, &v1alpha1.ServiceAnnouncement{}, 0, cache.Indexers{})
	a := &Agent{cfg: Config{Node: "n1", Clients: cli.Clients{Beacon: bc}}, w: &watches{reports: reports}}

	ip := netip.MustParseAddr("198.51.100.200")
	r := plan.Report{Namespace: "ns", Service: "web", Via: v1alpha1.ViaL2, Interfaces: []string{"eth0"}}
	created := map[string]createdReport{}
	ctx := context.Background()
	if held, err := a.writeReports(ctx, []plan.Report{r}, created); err != nil || held {
		t.Fatalf("first write: held %v, %v", held, err)
	}
	// The same report again before the cache shows it: nothing to do.
	if held, err := a.writeReports(ctx, []plan.Report{r}, created); err != nil || held {
		t.Fatalf("same report: held %v, %v", held, err)
	}
	// It changes: held until the cache shows the create.
	r.Conflicts = []v1alpha1.AddressConflict{{Address: ip.String(), MAC: "02:00:00:00:00:99", Interface: "eth0"}}
	if held, err := a.writeReports(ctx, []plan.Report{r}, created); err != nil || !held {
		t.Fatalf("changed report: held %v, %v; want held", held, err)
	}
	sa := a.announcement(plan.Report{Namespace: "ns", Service: "web", Via: v1alpha1.ViaL2, Interfaces: []string{"eth0"}})
	sa.ResourceVersion = "1"
	if err := reports.GetStore().Add(sa); err != nil {
		t.Fatal(err)
	}
	if held, err := a.writeReports(ctx, []plan.Report{r}, created); err != nil || held {
		t.Fatalf("once the cache shows it: held %v, %v", held, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(writes, ","); got != "POST,PUT" {
		t.Errorf("writes %s, want one create and then one update", got)
	}
}
