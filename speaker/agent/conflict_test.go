package agent

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
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
func (stubResponder) Announced() []netip.Addr    { return nil }
func (stubResponder) Check([]netip.Addr)         {}
func (stubResponder) Checked() []netip.Addr      { return nil }

// probingResponder answers for the addresses in answered only.
type probingResponder struct{ answered []netip.Addr }

func (probingResponder) SetAnnounced([]netip.Addr)  {}
func (probingResponder) Announce(_, _ []netip.Addr) {}
func (probingResponder) Reannounce()                {}
func (probingResponder) Conflicts() []l2.Conflict   { return nil }
func (p probingResponder) Announced() []netip.Addr  { return p.answered }
func (probingResponder) Check([]netip.Addr)         {}
func (probingResponder) Checked() []netip.Addr      { return nil }

// An address being probed is not reported, and its Announcing Event waits
// until the probe has passed; if the probe finds the address in use and
// the node stops announcing it, the Event is never recorded.
func TestAnnouncingAfterProbe(t *testing.T) {
	a, b := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.201")
	ag := &Agent{announcing: map[netip.Addr]plan.Event{}}
	decisions := []announce.Decision{{Service: "ns/web", IP: a, Node: "n1"}, {Service: "ns/db", IP: b, Node: "n1"}}
	announcing := func(ip netip.Addr, svc string) plan.Event {
		return plan.Event{Kind: "Service", Namespace: "ns", Name: svc, Reason: plan.EventAnnouncing, Message: "Announcing " + ip.String(), Address: ip}
	}
	other := plan.Event{Kind: "Service", Namespace: "ns", Name: "web", Reason: plan.EventWithdrawn, Message: "withdrawn"}
	reasons := func(evs []plan.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.Reason+" "+e.Message)
		}
		return out
	}

	// Both are new; a is answered at once, b is being probed.
	answered := answeredBy([]Responder{probingResponder{[]netip.Addr{a}}})
	reports := []plan.Report{{Namespace: "ns", Service: "web", Via: v1alpha1.ViaL2, Addresses: []netip.Addr{a}},
		{Namespace: "ns", Service: "db", Via: v1alpha1.ViaL2, Addresses: []netip.Addr{b}},
		{Namespace: "ns", Service: "db", Via: v1alpha1.ViaBGP, Addresses: []netip.Addr{b}}}
	keepAnswered(reports, answered)
	if len(reports[0].Addresses) != 1 || len(reports[1].Addresses) != 0 || len(reports[2].Addresses) != 1 {
		t.Errorf("reports while b is probed: %+v", reports)
	}
	got := reasons(ag.holdAnnouncing([]plan.Event{other, announcing(a, "web"), announcing(b, "db")}, "n1", decisions, answered))
	if want := []string{"Withdrawn withdrawn", "Announcing Announcing 198.51.100.200"}; !slices.Equal(got, want) {
		t.Fatalf("first sync: %q, want %q", got, want)
	}
	// Still probing: nothing more.
	if got := reasons(ag.holdAnnouncing(nil, "n1", decisions, answered)); len(got) != 0 {
		t.Fatalf("while probing: %q", got)
	}
	// The probe passed.
	answered = answeredBy([]Responder{probingResponder{[]netip.Addr{a, b}}})
	if got, want := reasons(ag.holdAnnouncing(nil, "n1", decisions, answered)), []string{"Announcing Announcing 198.51.100.201"}; !slices.Equal(got, want) {
		t.Fatalf("after the probe: %q, want %q", got, want)
	}
	if got := reasons(ag.holdAnnouncing(nil, "n1", decisions, answered)); len(got) != 0 {
		t.Fatalf("recorded twice: %q", got)
	}

	// A probe that finds c in use; the Service moves off it, so this node
	// stops announcing c: its Event is dropped, never recorded.
	c := netip.MustParseAddr("198.51.100.202")
	decisions = append(decisions, announce.Decision{Service: "ns/new", IP: c, Node: "n1"})
	if got := reasons(ag.holdAnnouncing([]plan.Event{announcing(c, "new")}, "n1", decisions, answered)); len(got) != 0 {
		t.Fatalf("c in use: %q", got)
	}
	decisions = decisions[:2]
	ag.holdAnnouncing(nil, "n1", decisions, answered)
	answered[c] = true // even if it were answered later
	if got := reasons(ag.holdAnnouncing(nil, "n1", append(decisions, announce.Decision{Service: "ns/new", IP: c, Node: "n2"}), answered)); len(got) != 0 {
		t.Fatalf("event of an address this node gave up: %q", got)
	}
}

func TestAwaitingProbe(t *testing.T) {
	svc := func(status, probing string) *v1.Service {
		s := &v1.Service{}
		if status != "" {
			s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: status}}
		}
		if probing != "" {
			s.Annotations = map[string]string{lbservice.AnnotationProbing: probing}
		}
		return s
	}
	got := awaitingProbe([]*v1.Service{
		svc("198.51.100.200", ""),
		svc("198.51.100.201", "198.51.100.201,2001:db8:100::201"),
		svc("", "198.51.100.202"),
	})
	want := map[netip.Addr]bool{netip.MustParseAddr("2001:db8:100::201"): true, netip.MustParseAddr("198.51.100.202"): true}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// An offered address this node only probes: reported under probed once
// its check passed, under conflicts when a host answered, and the report
// is left out while the probe runs.
func TestKeepProbed(t *testing.T) {
	clear4, taken := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.201")
	busy := netip.MustParseAddr("198.51.100.202")
	mac, _ := net.ParseMAC("02:00:00:00:00:99")
	reports := []plan.Report{
		{Namespace: "ns", Service: "a", Via: v1alpha1.ViaL2, Probing: []netip.Addr{clear4}},
		{Namespace: "ns", Service: "b", Via: v1alpha1.ViaL2, Probing: []netip.Addr{taken}},
		{Namespace: "ns", Service: "c", Via: v1alpha1.ViaL2, Probing: []netip.Addr{busy}},
	}
	decisions := []announce.Decision{
		{Service: "ns/a", IP: clear4, Prober: "n1"}, {Service: "ns/b", IP: taken, Prober: "n1"}, {Service: "ns/c", IP: busy, Prober: "n1"},
	}
	conflicts := conflictsOf([]Responder{stubResponder{{IP: taken, MAC: mac, Interface: "eth0"}}})
	applyConflicts(reports, "n1", decisions, conflicts)
	got := keepProbed(reports, map[netip.Addr]bool{clear4: true})
	if len(got) != 2 {
		t.Fatalf("reports %+v; want a and b (c is still probing)", got)
	}
	if a := got[0]; a.Service != "a" || !slices.Equal(a.Probed, []netip.Addr{clear4}) || len(a.Conflicts) != 0 {
		t.Errorf("a: %+v", a)
	}
	if b := got[1]; b.Service != "b" || len(b.Probed) != 0 || len(b.Conflicts) != 1 || b.Conflicts[0].Address != taken.String() {
		t.Errorf("b: %+v", b)
	}
}
