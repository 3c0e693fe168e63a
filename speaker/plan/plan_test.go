package plan

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
)

var (
	lanIP = netip.MustParseAddr("198.51.100.200")
	bgpIP = netip.MustParseAddr("203.0.113.5")
	eth0  = Link{Name: "eth0", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}}
)

func node(name, ip string, labels map[string]string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	n.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}}
	return n
}

func service(name string, ip netip.Addr, mut ...func(*v1.Service)) *v1.Service {
	s := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer}}
	s.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: ip.String()}}
	for _, m := range mut {
		m(s)
	}
	return s
}

func slice(svc, nodeName string) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		Endpoints:  []discoveryv1.Endpoint{{Addresses: []string{"198.18.1.10"}, NodeName: ptr.To(nodeName)}},
	}
}

func pool(name, block string) v1alpha1.IPPool {
	p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	p.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(block)}
	return p
}

func l2ad(name, poolName string, mut ...func(*v1alpha1.L2Advertisement)) v1alpha1.L2Advertisement {
	a := v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	a.Spec.IPPools = []string{poolName}
	for _, m := range mut {
		m(&a)
	}
	return a
}

// site is three live nodes on 198.51.100.0/24, one Service with
// 198.51.100.200 from pool "lan", announced in L2 on any interface.
func site(self string) Facts {
	return Facts{
		Node: self,
		Nodes: []*v1.Node{
			node("n1", "198.51.100.11", nil), node("n2", "198.51.100.12", nil), node("n3", "198.51.100.13", nil),
		},
		Services:         []*v1.Service{service("web", lanIP)},
		Pools:            []v1alpha1.IPPool{pool("lan", "198.51.100.200-198.51.100.250"), pool("routed", "203.0.113.0/24")},
		L2Advertisements: []v1alpha1.L2Advertisement{l2ad("lan", "lan")},
		Members:          Members{Alive: map[string]bool{"n1": true, "n2": true, "n3": true}, Settled: true},
		Links:            []Link{eth0},
	}
}

// elected returns the announcer and standby of ip among the nodes.
func elected(t *testing.T, ip netip.Addr, names ...string) (string, string) {
	t.Helper()
	var cs []election.Candidate
	for _, n := range names {
		cs = append(cs, election.Candidate{Name: n, Eligible: true})
	}
	a, s, ok := election.Standby(ip, cs)
	if !ok {
		t.Fatal("no announcer")
	}
	return a, s
}

func eventStrings(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, strings.Join([]string{e.Kind, e.Namespace + "/" + e.Name, e.Type, e.Reason, e.Message}, " | "))
	}
	return out
}

// TestMakeL2 follows one address through syncs on the node that wins it
// and on the one that does not.
func TestMakeL2(t *testing.T) {
	winner, standby := elected(t, lanIP, "n1", "n2", "n3")
	var loser string
	for _, n := range []string{"n1", "n2", "n3"} {
		if n != winner && n != standby {
			loser = n
		}
	}
	tests := []struct {
		name string
		self string
		// prev is applied before facts: the syncs before this one.
		prev       []func(*Facts)
		facts      func(*Facts)
		responders map[string][]netip.Addr
		reports    []string // "namespace/service via addresses interfaces"
		events     []string
		claims     []handoff.Claim
		problems   int
		waiting    bool // L2 waits for the member layer
	}{
		{
			name:       "the elected node announces on the interface holding the subnet",
			self:       winner,
			responders: map[string][]netip.Addr{"eth0": {lanIP}},
			reports:    []string{"default/web L2 [198.51.100.200] [eth0]"},
			events:     []string{"Service | default/web | Normal | Announcing | Announcing 198.51.100.200 from node " + winner + " via L2 (interface eth0)"},
			// Before its first plan the node assumes the standby held it.
			claims: []handoff.Claim{{IP: lanIP, From: standby}},
		},
		{
			name:       "another node announces nothing and records nothing",
			self:       loser,
			responders: map[string][]netip.Addr{},
			reports:    []string{},
		},
		{
			name:       "an unchanged second sync records no Event",
			self:       winner,
			prev:       []func(*Facts){func(*Facts) {}},
			responders: map[string][]netip.Addr{"eth0": {lanIP}},
			reports:    []string{"default/web L2 [198.51.100.200] [eth0]"},
			claims:     []handoff.Claim{{IP: lanIP}},
		},
		{
			name:       "the winner dies: the standby takes over, handing flows off to nobody alive",
			self:       standby,
			prev:       []func(*Facts){func(*Facts) {}},
			facts:      func(f *Facts) { f.Members.Alive[winner] = false },
			responders: map[string][]netip.Addr{"eth0": {lanIP}},
			reports:    []string{"default/web L2 [198.51.100.200] [eth0]"},
			events:     []string{"Service | default/web | Normal | Announcing | Announcing 198.51.100.200 from node " + standby + " via L2 (interface eth0)"},
			claims:     []handoff.Claim{{IP: lanIP, From: winner}},
		},
		{
			name: "the winner is excluded: it withdraws, saying why, and empties its responder",
			self: winner,
			prev: []func(*Facts){func(*Facts) {}},
			facts: func(f *Facts) {
				f.Nodes[slices.IndexFunc(f.Nodes, func(n *v1.Node) bool { return n.Name == winner })].Labels = map[string]string{election.ExcludeLabel: ""}
			},
			responders: map[string][]netip.Addr{"eth0": nil},
			reports:    []string{},
			events:     []string{"Service | default/web | Normal | Withdrawn | Withdrawn 198.51.100.200 from node " + winner + " via L2: the node is labelled " + election.ExcludeLabel},
		},
		{
			name:       "externalTrafficPolicy Local: the node with the ready endpoint announces",
			self:       loser,
			facts:      func(f *Facts) { local(f, loser) },
			responders: map[string][]netip.Addr{"eth0": {lanIP}},
			reports:    []string{"default/web L2 [198.51.100.200] [eth0]"},
			events:     []string{"Service | default/web | Normal | Announcing | Announcing 198.51.100.200 from node " + loser + " via L2 (interface eth0)"},
			claims:     []handoff.Claim{{IP: lanIP}}, // no other node is eligible: no standby
		},
		{
			name:       "a Service of another loadBalancerClass is not announced",
			self:       winner,
			facts:      func(f *Facts) { f.Services[0].Spec.LoadBalancerClass = ptr.To("other.example/lb") },
			responders: map[string][]netip.Addr{},
			reports:    []string{},
		},
		{
			name:     "no up interface holds the subnet: a problem, no report",
			self:     winner,
			facts:    func(f *Facts) { f.Links = []Link{{Name: "eth0", Prefixes: eth0.Prefixes}} },
			reports:  []string{},
			problems: 1, responders: map[string][]netip.Addr{},
			claims: []handoff.Claim{{IP: lanIP, From: standby}},
		},
		{
			name: "named interfaces: only those that exist",
			self: winner,
			facts: func(f *Facts) {
				f.L2Advertisements[0].Spec.Interfaces = []v1alpha1.InterfaceName{"bond0", "eth0"}
				f.Links = append(f.Links, Link{Name: "eth1"})
			},
			responders: map[string][]netip.Addr{"eth0": {lanIP}},
			reports:    []string{"default/web L2 [198.51.100.200] [eth0]"},
			events:     []string{"Service | default/web | Normal | Announcing | Announcing 198.51.100.200 from node " + winner + " via L2 (interface eth0)"},
			claims:     []handoff.Claim{{IP: lanIP, From: standby}},
		},
		{
			name:    "a peer not yet heard from: L2 waits",
			self:    winner,
			facts:   func(f *Facts) { f.Members.NewPeer = true },
			waiting: true,
		},
		{
			name:    "peers not settled: L2 waits",
			self:    winner,
			facts:   func(f *Facts) { f.Members.Settled = false },
			waiting: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st State
			for _, p := range tc.prev {
				f := site(tc.self)
				p(&f)
				st = Make(f, st).State
			}
			f := site(tc.self)
			if tc.facts != nil {
				tc.facts(&f)
			}
			res := Make(f, st)
			if tc.waiting {
				if res.L2 != nil || res.Reports != nil || len(res.Events) != 0 {
					t.Fatalf("acted while waiting: %+v", res)
				}
				return
			}
			if res.L2 == nil {
				t.Fatal("no L2 plan")
			}
			if got := reportStrings(res.Reports); !slices.Equal(got, tc.reports) {
				t.Errorf("reports %q, want %q", got, tc.reports)
			}
			if got := eventStrings(res.Events); !slices.Equal(got, tc.events) {
				t.Errorf("events\n%q\nwant\n%q", got, tc.events)
			}
			if !equalResponders(res.L2.Responders, tc.responders) {
				t.Errorf("responders %v, want %v", res.L2.Responders, tc.responders)
			}
			if !slices.Equal(res.L2.Claims, tc.claims) {
				t.Errorf("claims %v, want %v", res.L2.Claims, tc.claims)
			}
			if len(res.Problems) != tc.problems {
				t.Errorf("problems %q, want %d", res.Problems, tc.problems)
			}
		})
	}
}

func local(f *Facts, nodeName string) {
	f.Services[0].Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	f.EndpointSlices = []*discoveryv1.EndpointSlice{slice("web", nodeName)}
}

func reportStrings(rs []Report) []string {
	out := []string{}
	for _, r := range rs {
		var b strings.Builder
		b.WriteString(r.Namespace + "/" + r.Service + " " + r.Via + " [")
		for i, a := range r.Addresses {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString(a.String())
		}
		b.WriteString("] ")
		if r.Via == v1alpha1.ViaBGP {
			b.WriteString("[" + strings.Join(r.Peers, " ") + "]")
		} else {
			b.WriteString("[" + strings.Join(r.Interfaces, " ") + "]")
		}
		out = append(out, b.String())
	}
	return out
}

func equalResponders(a, b map[string][]netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// TestMakeRejoin: when a node comes back, the announcer repeats its
// gratuitous announcements and hands the address's flows to the standby
// that held it meanwhile.
func TestMakeRejoin(t *testing.T) {
	winner, standby := elected(t, lanIP, "n1", "n2", "n3")
	f := site(winner)
	st := Make(f, State{}).State
	f.Members.Alive[standby] = false
	res := Make(f, st)
	if res.L2.Reannounce {
		t.Error("re-announces when a node leaves")
	}
	f.Members.Alive[standby] = true
	res = Make(f, res.State)
	if !res.L2.Reannounce {
		t.Error("no re-announcement when a node comes back")
	}
	if want := []handoff.Claim{{IP: lanIP, From: standby}}; !slices.Equal(res.L2.Claims, want) {
		t.Errorf("claims %v, want %v", res.L2.Claims, want)
	}
	routes := res.L2.Routes([]handoff.Handoff{{IP: lanIP, Node: standby}, {IP: lanIP, Node: "gone"}})
	want := []handoff.Route{{IP: lanIP, Via: netip.MustParseAddr("198.51.100.1" + standby[1:])}}
	if !slices.Equal(routes, want) {
		t.Errorf("routes %v, want %v (only to a node that can serve the flows)", routes, want)
	}
}

// TestMakeRestartAfterLeave: a standby that stopped gracefully (a rolling
// restart) and comes back held nothing meanwhile: the announcer neither
// hands the address's flows to it nor repeats its announcements.
func TestMakeRestartAfterLeave(t *testing.T) {
	winner, standby := elected(t, lanIP, "n1", "n2", "n3")
	f := site(winner)
	st := Make(f, State{}).State
	f.Members.Alive[standby] = false
	f.Members.Left = map[string]bool{standby: true}
	res := Make(f, st)
	f.Members.Alive[standby] = true
	f.Members.Left[standby] = false
	res = Make(f, res.State)
	if res.L2.Reannounce {
		t.Error("re-announces when a node comes back from a graceful stop")
	}
	if want := []handoff.Claim{{IP: lanIP}}; !slices.Equal(res.L2.Claims, want) {
		t.Errorf("claims %v, want %v", res.L2.Claims, want)
	}
}

// TestMakeBackFromStall: the winner, back from a stall its peers took for
// its death, withdraws (with a Withdrawn Event saying why) while it
// rejoins, and then takes the address back from the standby that held it,
// handing the standby's flows back to it.
func TestMakeBackFromStall(t *testing.T) {
	winner, standby := elected(t, lanIP, "n1", "n2", "n3")
	f := site(winner)
	st := Make(f, State{}).State
	f.Members.Rejoining = true
	res := Make(f, st)
	if got := res.L2.Responders["eth0"]; len(got) != 0 {
		t.Fatalf("rejoining: answers for %v, want nothing", got)
	}
	want := "Service | default/web | Normal | Withdrawn | Withdrawn 198.51.100.200 from node " + winner +
		" via L2: this node's speaker is back from a stall its peers took for its death, and announces nothing until they know it lives"
	if got := eventStrings(res.Events); !slices.Contains(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
	f.Members.Rejoining = false
	res = Make(f, res.State)
	if got := res.L2.Responders["eth0"]; !slices.Equal(got, []netip.Addr{lanIP}) {
		t.Fatalf("rejoined: answers for %v, want %v", got, lanIP)
	}
	if want := []handoff.Claim{{IP: lanIP, From: standby}}; !slices.Equal(res.L2.Claims, want) {
		t.Errorf("claims %v, want %v", res.L2.Claims, want)
	}
}

// TestMakeWarnings: an invalid L2Advertisement gets one Warning per node
// until its problem changes.
func TestMakeWarnings(t *testing.T) {
	f := site("n1")
	f.L2Advertisements = append(f.L2Advertisements, l2ad("bad", "lan", func(a *v1alpha1.L2Advertisement) {
		a.Spec.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Near"}}}
	}))
	res := Make(f, State{})
	var warns []Event
	for _, e := range res.Events {
		if e.Type == v1.EventTypeWarning {
			warns = append(warns, e)
		}
	}
	if len(warns) != 1 || warns[0].Kind != "L2Advertisement" || warns[0].Name != "bad" || warns[0].Reason != EventL2ConfigInvalid ||
		!strings.HasPrefix(warns[0].Message, "node n1: invalid, ignored: ") {
		t.Fatalf("warnings %+v", warns)
	}
	if again := Make(f, res.State); slices.ContainsFunc(again.Events, func(e Event) bool { return e.Type == v1.EventTypeWarning }) {
		t.Errorf("warned again: %q", eventStrings(again.Events))
	}
	// Gone, then back: warned anew.
	g := site("n1")
	st := Make(g, res.State).State
	if again := Make(f, st); !slices.ContainsFunc(again.Events, func(e Event) bool { return e.Reason == EventL2ConfigInvalid }) {
		t.Error("a problem that came back was not warned")
	}
}

// bgpSite is one node n1 peering with a router, announcing 203.0.113.5.
func bgpSite() Facts {
	f := site("n1")
	f.Services = []*v1.Service{service("api", bgpIP)}
	f.BGP = &BGPObjects{
		Peers: []v1alpha1.BGPPeer{{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1alpha1.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1", PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "tor-pw"}}}},
		Advertisements: []v1alpha1.BGPAdvertisement{{ObjectMeta: metav1.ObjectMeta{Name: "routed"},
			Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"routed"}}}},
	}
	f.Namespace = "beacon"
	f.Secret = secrets(map[string]string{"tor-pw": "pw-1"})
	return f
}

func secrets(pw map[string]string) func(string) Secret {
	return func(name string) Secret {
		v, ok := pw[name]
		if !ok {
			return Secret{Err: apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)}
		}
		return Secret{Data: map[string][]byte{"password": []byte(v)}}
	}
}

func TestMakeBGP(t *testing.T) {
	tests := []struct {
		name     string
		prev     []func(*Facts)
		facts    func(*Facts)
		open     []string // peer=password
		sessions []string // peer passwordSecret message
		reports  []string
		events   []string
	}{
		{
			name:     "announces to the peer with its password",
			open:     []string{"tor=pw-1"},
			sessions: []string{"tor  "},
			reports:  []string{"default/api BGP [203.0.113.5] [tor]"},
			events:   []string{"Service | default/api | Normal | Announcing | Announcing 203.0.113.5 from node n1 via BGP (peers tor)"},
		},
		{
			// Which nodes report is known once member liveness is:
			// the Event waits, the route does not.
			name:     "announces even while the member layer settles",
			facts:    func(f *Facts) { f.Members.Settled = false },
			open:     []string{"tor=pw-1"},
			sessions: []string{"tor  "},
		},
		{
			name:     "a reported address is not announced anew when the member layer unsettles",
			prev:     []func(*Facts){func(*Facts) {}},
			facts:    func(f *Facts) { f.Members.NewPeer = true },
			open:     []string{"tor=pw-1"},
			sessions: []string{"tor  "},
		},
		{
			// The route is planned (and reported) all the same; the
			// session's BGPSessionState says why it does not go out.
			name:     "a missing Secret: the session is not opened",
			facts:    func(f *Facts) { f.Secret = secrets(nil) },
			sessions: []string{"tor " + v1alpha1.PasswordSecretMissing + ` password Secret beacon/tor-pw: secrets "tor-pw" not found: session not opened`},
			reports:  []string{"default/api BGP [203.0.113.5] [tor]"},
			events:   []string{"Service | default/api | Normal | Announcing | Announcing 203.0.113.5 from node n1 via BGP (peers tor)"},
		},
		{
			name:     "a Secret that goes away: the password in use stays",
			prev:     []func(*Facts){func(*Facts) {}},
			facts:    func(f *Facts) { f.Secret = func(string) Secret { return Secret{Err: errors.New("timeout")} } },
			open:     []string{"tor=pw-1"},
			sessions: []string{"tor " + v1alpha1.PasswordSecretUnreadable + " password Secret beacon/tor-pw: timeout: keeping the password in use"},
			reports:  []string{"default/api BGP [203.0.113.5] [tor]"},
		},
		{
			name:     "the Service loses its address: withdrawn, saying why",
			prev:     []func(*Facts){func(*Facts) {}},
			facts:    func(f *Facts) { f.Services[0].Status.LoadBalancer.Ingress = nil },
			open:     []string{"tor=pw-1"},
			sessions: []string{"tor  "},
			reports:  []string{},
			events: []string{"Service | default/api | Normal | Withdrawn | Withdrawn 203.0.113.5 from node n1 via BGP: " +
				"the Service no longer has this address (or is no longer a LoadBalancer Service Beacon handles)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var st State
			for _, p := range tc.prev {
				f := bgpSite()
				p(&f)
				st = Make(f, st).State
			}
			f := bgpSite()
			if tc.facts != nil {
				tc.facts(&f)
			}
			res := Make(f, st)
			var open, sessions []string
			for _, o := range res.BGP.Open {
				open = append(open, o.Peer.Name+"="+o.Password)
			}
			for _, s := range res.BGP.Sessions {
				sessions = append(sessions, s.Peer+" "+s.PasswordSecret+" "+s.Message)
			}
			if !slices.Equal(open, tc.open) {
				t.Errorf("open %q, want %q", open, tc.open)
			}
			if !slices.Equal(sessions, tc.sessions) {
				t.Errorf("sessions %q, want %q", sessions, tc.sessions)
			}
			if got := eventStrings(res.Events); !slices.Equal(got, tc.events) {
				t.Errorf("events\n%q\nwant\n%q", got, tc.events)
			}
			if tc.reports == nil {
				if res.Reports != nil {
					t.Errorf("reports %q while L2 waits", reportStrings(res.Reports))
				}
			} else if got := reportStrings(res.Reports); !slices.Equal(got, tc.reports) {
				t.Errorf("reports %q, want %q", got, tc.reports)
			}
		})
	}
}

// TestMakeKeepsPrev: Make does not change the state it is given.
func TestMakeKeepsPrev(t *testing.T) {
	winner, _ := elected(t, lanIP, "n1", "n2", "n3")
	f := site(winner)
	st := Make(f, State{}).State
	before := len(st.L2)
	f.Services = nil
	_ = Make(f, st)
	if len(st.L2) != before || before == 0 {
		t.Errorf("the previous state changed: %d addresses, had %d", len(st.L2), before)
	}
}

func TestBoundServiceEvents(t *testing.T) {
	var evs []Event
	for i := range ServiceEventsPerSync + 5 {
		evs = append(evs, serviceEvent(fmt.Sprintf("default/s%02d", i/2), EventAnnouncing, "Announcing %d", i))
	}
	evs = append(evs, serviceEvent("default/gone", EventWithdrawn, "Withdrawn"),
		Event{Kind: "Node", Name: "n1", Type: v1.EventTypeNormal, Reason: EventDraining, Message: "draining"})
	got := eventStrings(BoundServiceEvents(evs, "n1"))
	want := eventStrings(evs[:ServiceEventsPerSync])
	want = append(want,
		"Service | default/gone | Normal | Withdrawn | Withdrawn",
		"Node | /n1 | Normal | Draining | draining",
		"Node | /n1 | Normal | Announcing | node n1: 5 more Announcing Events of 3 Services in one sync, not recorded on the Services (kubectl get serviceannouncements -A lists what each node announces)")
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := BoundServiceEvents(evs[:3], "n1"); len(got) != 3 {
		t.Errorf("a few Events: %q", eventStrings(got))
	}
}

// TestMakeL2ProbesOffer: an offered address of a Local Service without
// ready endpoints is announced by nobody; the node the election picks
// without looking at endpoints probes it on the interface it would
// announce on and reports it, and no other node does. Once the address is
// in status (no longer offered), nobody probes it.
func TestMakeL2ProbesOffer(t *testing.T) {
	prober, _ := elected(t, lanIP, "n1", "n2", "n3")
	offered := func(f *Facts) {
		f.Services = []*v1.Service{service("web", lanIP, func(s *v1.Service) {
			s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
			s.Status.LoadBalancer.Ingress = nil
			s.Annotations = map[string]string{"beaconlb.io/probing": lanIP.String()}
		})}
	}
	for _, self := range []string{"n1", "n2", "n3"} {
		f := site(self)
		offered(&f)
		res := Make(f, State{})
		if got := res.L2.Responders; len(got) != 0 {
			t.Errorf("%s announces %v", self, got)
		}
		wantChecks, wantReports := map[string][]netip.Addr{}, 0
		if self == prober {
			wantChecks, wantReports = map[string][]netip.Addr{"eth0": {lanIP}}, 1
		}
		if !maps.EqualFunc(res.L2.Checks, wantChecks, slices.Equal) {
			t.Errorf("%s checks %v, want %v", self, res.L2.Checks, wantChecks)
		}
		if len(res.Reports) != wantReports {
			t.Fatalf("%s reports %+v", self, res.Reports)
		}
		if wantReports == 1 {
			r := res.Reports[0]
			if r.Service != "web" || len(r.Addresses) != 0 || !slices.Equal(r.Probing, []netip.Addr{lanIP}) || !slices.Equal(r.Interfaces, []string{"eth0"}) {
				t.Errorf("report %+v", r)
			}
		}
		for _, e := range res.Events {
			if e.Reason == EventAnnouncing {
				t.Errorf("%s: %s", self, e.Message)
			}
		}
	}
	// In status, not offered: nobody probes it.
	f := site(prober)
	offered(&f)
	f.Services[0].Annotations = nil
	f.Services[0].Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: lanIP.String()}}
	if res := Make(f, State{}); len(res.L2.Checks) != 0 || len(res.Reports) != 0 {
		t.Errorf("address in status: checks %v reports %+v", res.L2.Checks, res.Reports)
	}
}
