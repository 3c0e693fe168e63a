package agent

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/l2"
	"github.com/beaconlb/beacon/speaker/plan"
)

func TestToProbe(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.201"), netip.MustParseAddr("198.51.100.202")
	prev := []announce.Decision{{Service: "ns/x", IP: a, Node: "n2"}, {Service: "ns/y", IP: b, Node: ""}}
	plan := []announce.Decision{{Service: "ns/x", IP: a, Node: "n1"}, {Service: "ns/y", IP: b, Node: "n1"}, {Service: "ns/z", IP: c, Node: "n1"}}
	for _, tc := range []struct {
		name    string
		planned bool
		recheck map[netip.Addr]bool
		want    []netip.Addr
	}{
		// a moves from n2: no probe. b was announced by nobody, c is new.
		{"running", true, nil, []netip.Addr{b, c}},
		// The first plan of a process probes nothing new.
		{"first plan", false, nil, nil},
		// Addresses the pools list in conflict are probed, also when they
		// move and in the first plan.
		{"conflict moves", true, map[netip.Addr]bool{a: true}, []netip.Addr{a, b, c}},
		{"conflict after a restart", false, map[netip.Addr]bool{a: true}, []netip.Addr{a}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := toProbe("n1", prev, plan, tc.planned, tc.recheck)
			var ips []netip.Addr
			for ip := range got {
				ips = append(ips, ip)
			}
			slices.SortFunc(ips, netip.Addr.Compare)
			if !slices.Equal(ips, tc.want) {
				t.Fatalf("got %v, want %v", ips, tc.want)
			}
		})
	}
}

func TestApplyConflicts(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")
	other := netip.MustParseAddr("198.51.100.201")
	mac, _ := net.ParseMAC("02:00:00:00:00:99")
	reports := []plan.Report{
		{Namespace: "ns", Service: "db", Via: v1alpha1.ViaL2, Addresses: []netip.Addr{other}},
		{Namespace: "ns", Service: "web", Via: v1alpha1.ViaL2, Addresses: []netip.Addr{v4, v6}},
	}
	decisions := []announce.Decision{{Service: "ns/web", IP: v4, Node: "n1"}, {Service: "ns/web", IP: v6, Node: "n1"}, {Service: "ns/db", IP: other, Node: "n1"}}
	conflicts := conflictsOf([]Responder{
		stubResponder{{IP: v6, MAC: mac, Interface: "eth0", Announced: true}},
		stubResponder{{IP: v4, MAC: mac, Interface: "eth1"}},
	})
	applyConflicts(reports, "n1", decisions, conflicts)
	web := reports[1]
	if !slices.Equal(web.Addresses, []netip.Addr{v6}) {
		t.Errorf("web announces %v; the address found in use must go, the one claimed later stays", web.Addresses)
	}
	want := []v1alpha1.AddressConflict{
		{Address: v4.String(), MAC: mac.String(), Interface: "eth1"},
		{Address: v6.String(), MAC: mac.String(), Interface: "eth0", Announced: true},
	}
	if !slices.Equal(web.Conflicts, want) {
		t.Errorf("web conflicts %+v, want %+v", web.Conflicts, want)
	}
	if db := reports[0]; len(db.Conflicts) != 0 || len(db.Addresses) != 1 {
		t.Errorf("db changed: %+v", db)
	}
}

// stubResponder only reports conflicts.
type stubResponder []l2.Conflict

func (stubResponder) SetAnnounced([]netip.Addr)  {}
func (stubResponder) Announce(_, _ []netip.Addr) {}
func (stubResponder) Reannounce()                {}
func (s stubResponder) Conflicts() []l2.Conflict { return s }
