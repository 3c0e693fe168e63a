package agent

import (
	"net/netip"
	"testing"

	"github.com/beaconlb/beacon/config/v1alpha1"
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
