package bgpplan

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/election"
)

func ips(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

func peer(name string, asn v1alpha1.ASN, addr string, mut ...func(*v1alpha1.BGPPeerSpec)) v1alpha1.BGPPeer {
	p := v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: asn, PeerAddress: addr}}
	for _, m := range mut {
		m(&p.Spec)
	}
	return p
}

func adv(name string, spec v1alpha1.BGPAdvertisementSpec) v1alpha1.BGPAdvertisement {
	return v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// render prints a plan compactly: one line per session, routes with
// attributes, then announcements and problems.
func render(p Plan) string {
	var b strings.Builder
	if p.RouterID.IsValid() {
		fmt.Fprintf(&b, "id %s asn %d\n", p.RouterID, p.ASN)
	}
	for _, s := range p.Sessions {
		fmt.Fprintf(&b, "%s:", s.Peer.Name)
		if s.BFD != nil {
			fmt.Fprintf(&b, " bfd=%s", s.BFD.Name)
		}
		for _, r := range s.Routes {
			fmt.Fprintf(&b, " %s", r.Prefix)
			for _, c := range r.Communities {
				fmt.Fprintf(&b, ",c=%s", c)
			}
			if r.LocalPref != nil {
				fmt.Fprintf(&b, ",lp=%d", *r.LocalPref)
			}
		}
		b.WriteString("\n")
	}
	for _, a := range p.Announcements {
		fmt.Fprintf(&b, "svc %s %v %v\n", a.Service, a.Addresses, a.Peers)
	}
	for _, pr := range p.Problems {
		fmt.Fprintf(&b, "problem %s\n", pr)
	}
	return b.String()
}

func TestMake(t *testing.T) {
	pools := config.ParsePools([]v1alpha1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Labels: map[string]string{"scope": "routed"}},
			Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressBlock{"203.0.113.0/24", "2001:db8:203::/120"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressBlock{"198.51.100.200-198.51.100.250"}}},
	})
	v4 := peer("router", 64500, "198.51.100.1")
	v6 := peer("router6", 64500, "2001:db8:100::1")
	ibgp := peer("rr", 64512, "198.51.100.2")
	node := election.Node{Name: "n1", Labels: map[string]string{"rack": "a"}}
	nodeAddrs := ips("2001:db8:100::11", "198.51.100.11")
	cluster := announce.Service{Key: "default/web", IPs: ips("203.0.113.10", "2001:db8:203::10")}
	local := func(n int) announce.Service {
		return announce.Service{Key: "default/local", IPs: ips("203.0.113.20"), Local: true, ReadyEndpoints: map[string]int{"n1": n, "n2": 1}}
	}
	bfd := v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}}

	for _, tc := range []struct {
		name     string
		node     election.Node
		peers    []v1alpha1.BGPPeer
		ads      []v1alpha1.BGPAdvertisement
		services []announce.Service
		want     string
	}{
		{"no peers: nothing", node, nil, []v1alpha1.BGPAdvertisement{adv("all", v1alpha1.BGPAdvertisementSpec{})},
			[]announce.Service{cluster}, ""},
		{"cluster policy: dual-stack service, one route per family to the peer of that family", node,
			[]v1alpha1.BGPPeer{v4, v6}, []v1alpha1.BGPAdvertisement{adv("all", v1alpha1.BGPAdvertisementSpec{})},
			[]announce.Service{cluster},
			"id 198.51.100.11 asn 64512\nrouter: 203.0.113.10/32\nrouter6: 2001:db8:203::10/128\nsvc default/web [203.0.113.10 2001:db8:203::10] [router router6]\n"},
		{"no advertisement: sessions but no routes", node, []v1alpha1.BGPPeer{v4}, nil, []announce.Service{cluster},
			"id 198.51.100.11 asn 64512\nrouter:\n"},
		{"address outside every pool or in an unadvertised pool", node, []v1alpha1.BGPPeer{v4},
			[]v1alpha1.BGPAdvertisement{adv("bgp", v1alpha1.BGPAdvertisementSpec{IPPools: []string{"bgp"}})},
			[]announce.Service{{Key: "x/lan", IPs: ips("198.51.100.201", "192.0.2.1")}},
			"id 198.51.100.11 asn 64512\nrouter:\n"},
		{"local policy with a local endpoint", node, []v1alpha1.BGPPeer{v4},
			[]v1alpha1.BGPAdvertisement{adv("all", v1alpha1.BGPAdvertisementSpec{})}, []announce.Service{local(1)},
			"id 198.51.100.11 asn 64512\nrouter: 203.0.113.20/32\nsvc default/local [203.0.113.20] [router]\n"},
		{"local policy without a local endpoint: withdrawn", node, []v1alpha1.BGPPeer{v4},
			[]v1alpha1.BGPAdvertisement{adv("all", v1alpha1.BGPAdvertisementSpec{})}, []announce.Service{local(0)},
			"id 198.51.100.11 asn 64512\nrouter:\n"},
		{"excluded node announces nothing", election.Node{Name: "n1", Labels: map[string]string{election.ExcludeLabel: ""}}, []v1alpha1.BGPPeer{v4},
			[]v1alpha1.BGPAdvertisement{adv("all", v1alpha1.BGPAdvertisementSpec{})}, []announce.Service{cluster},
			"id 198.51.100.11 asn 64512\nrouter:\n"},
		{"peer nodeSelector leaves this node out", node,
			[]v1alpha1.BGPPeer{peer("router", 64500, "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) {
				s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "b"}}
			})}, []v1alpha1.BGPAdvertisement{adv("all", v1alpha1.BGPAdvertisementSpec{})}, []announce.Service{cluster}, ""},
		{"advertisement nodeSelector leaves this node out", node, []v1alpha1.BGPPeer{v4},
			[]v1alpha1.BGPAdvertisement{adv("b", v1alpha1.BGPAdvertisementSpec{NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "b"}}})},
			[]announce.Service{cluster}, "id 198.51.100.11 asn 64512\nrouter:\n"},
		{"attributes: communities merge, localPref only to iBGP, peers restrict", node,
			[]v1alpha1.BGPPeer{v4, ibgp, peer("other", 64501, "198.51.100.3")},
			[]v1alpha1.BGPAdvertisement{
				adv("a", v1alpha1.BGPAdvertisementSpec{IPPools: []string{"bgp"}, Peers: []string{"router", "rr"}, Communities: []v1alpha1.Community{"65000:100"}, LocalPref: ptr(int64(150))}),
				adv("b", v1alpha1.BGPAdvertisementSpec{IPPoolSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"scope": "routed"}}, Peers: []string{"rr"}, Communities: []v1alpha1.Community{"1:2:3", "65000:100"}}),
			},
			[]announce.Service{cluster},
			"id 198.51.100.11 asn 64512\nother:\nrouter: 203.0.113.10/32,c=65000:100\nrr: 203.0.113.10/32,c=65000:100,c=1:2:3,lp=150\nsvc default/web [203.0.113.10] [router rr]\n"},
		{"aggregation: two addresses, one /24", node, []v1alpha1.BGPPeer{v4},
			[]v1alpha1.BGPAdvertisement{adv("agg", v1alpha1.BGPAdvertisementSpec{AggregationLength: ptr(int32(24))})},
			[]announce.Service{cluster, local(1)},
			"id 198.51.100.11 asn 64512\nrouter: 203.0.113.0/24\nsvc default/local [203.0.113.20] [router]\nsvc default/web [203.0.113.10] [router]\n"},
		{"conflicting localPref: highest wins, reported", node, []v1alpha1.BGPPeer{ibgp},
			[]v1alpha1.BGPAdvertisement{
				adv("a", v1alpha1.BGPAdvertisementSpec{LocalPref: ptr(int64(100))}),
				adv("b", v1alpha1.BGPAdvertisementSpec{LocalPref: ptr(int64(200))}),
			}, []announce.Service{{Key: "d/s", IPs: ips("203.0.113.1")}},
			"id 198.51.100.11 asn 64512\nrr: 203.0.113.1/32,lp=200\nsvc d/s [203.0.113.1] [rr]\nproblem BGPAdvertisements give 203.0.113.1/32 different localPref values towards peer rr; the highest is used\n"},
		{"explicit router ids disagree", node,
			[]v1alpha1.BGPPeer{
				peer("a", 64500, "198.51.100.1", func(s *v1alpha1.BGPPeerSpec) { s.RouterID = "10.0.0.1"; s.BFDProfile = "fast" }),
				peer("b", 64500, "198.51.100.2", func(s *v1alpha1.BGPPeerSpec) { s.RouterID = "10.0.0.2"; s.MyASN = 65000 }),
			}, nil, nil,
			"id 10.0.0.1 asn 64512\na: bfd=fast\nb:\nproblem BGPPeer b asks for routerID 10.0.0.2 but a asks for 10.0.0.1; using 10.0.0.1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := config.ParseBGP(tc.peers, tc.ads, []v1alpha1.BFDProfile{bfd}, pools)
			if len(b.Invalid) > 0 {
				t.Fatal(b.Invalid)
			}
			in := Input{Node: tc.node, NodeAddresses: nodeAddrs, Services: tc.services, Pools: pools, BGP: b}
			plan := Make(in)
			if got := render(plan); got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			// Announces agrees with Make about every Service.
			for _, svc := range tc.services {
				made := false
				for _, a := range plan.Announcements {
					made = made || a.Service == svc.Key
				}
				if got := Announces(in, svc); got != made {
					t.Errorf("Announces(%s) = %v, Make announces it: %v", svc.Key, got, made)
				}
			}
		})
	}
}

// TestMakeGracefulShutdown: a draining node sends what it would send
// without the exclusion label, marked for graceful shutdown; every other
// reason not to announce still holds.
func TestMakeGracefulShutdown(t *testing.T) {
	pools := config.ParsePools([]v1alpha1.IPPool{
		{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressBlock{"203.0.113.0/24"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressBlock{"203.0.113.128/25"}}},
	})
	peers := []v1alpha1.BGPPeer{peer("router", 64500, "198.51.100.1"), peer("rr", 64512, "198.51.100.2")}
	svcs := []announce.Service{
		{Key: "d/web", IPs: ips("203.0.113.10")},
		{Key: "d/local", IPs: ips("203.0.113.20"), Local: true, ReadyEndpoints: map[string]int{"n1": 1}},
		{Key: "d/remote", IPs: ips("203.0.113.30"), Local: true, ReadyEndpoints: map[string]int{"n2": 1}},
	}
	for _, tc := range []struct {
		name  string
		node  election.Node
		gshut bool
		want  string
	}{
		{"in service", election.Node{Name: "n1"}, false,
			"id 198.51.100.11 asn 64512\nrouter: 203.0.113.10/32,c=65000:100 203.0.113.20/32,c=65000:100\nrr: 203.0.113.10/32,c=65000:100,lp=150 203.0.113.20/32,c=65000:100,lp=150\nsvc d/local [203.0.113.20] [router rr]\nsvc d/web [203.0.113.10] [router rr]\n"},
		{"graceful shutdown: 65535:0 added, local preference 0 to iBGP", election.Node{Name: "n1", Labels: map[string]string{election.ExcludeLabel: "true"}}, true,
			"id 198.51.100.11 asn 64512\nrouter: 203.0.113.10/32,c=65000:100,c=65535:0 203.0.113.20/32,c=65000:100,c=65535:0\nrr: 203.0.113.10/32,c=65000:100,c=65535:0,lp=0 203.0.113.20/32,c=65000:100,c=65535:0,lp=0\nsvc d/local [203.0.113.20] [router rr]\nsvc d/web [203.0.113.10] [router rr]\n"},
		{"withdrawn", election.Node{Name: "n1", Labels: map[string]string{election.ExcludeLabel: "true"}}, false,
			"id 198.51.100.11 asn 64512\nrouter:\nrr:\n"},
		{"graceful shutdown keeps a nodeSelector that leaves the node out", election.Node{Name: "n1", Labels: map[string]string{election.ExcludeLabel: "true", "rack": "b"}}, true,
			"id 198.51.100.11 asn 64512\nrouter:\nrr:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := config.ParseBGP(peers, []v1alpha1.BGPAdvertisement{adv("a", v1alpha1.BGPAdvertisementSpec{
				IPPools: []string{"bgp"}, Communities: []v1alpha1.Community{"65000:100"}, LocalPref: ptr(int64(150)),
				NodeSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "rack", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"b"}}}},
			})}, nil, pools)
			if len(b.Invalid) > 0 {
				t.Fatal(b.Invalid)
			}
			got := render(Make(Input{Node: tc.node, NodeAddresses: ips("198.51.100.11"), Services: svcs, Pools: pools, BGP: b, GracefulShutdown: tc.gshut}))
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// TestMakeNoRouterID: an IPv6-only node needs an explicit routerID.
func TestMakeNoRouterID(t *testing.T) {
	b := config.ParseBGP([]v1alpha1.BGPPeer{peer("router6", 64500, "2001:db8:100::1")}, nil, nil, nil)
	p := Make(Input{Node: election.Node{Name: "n1"}, NodeAddresses: ips("2001:db8:100::11"), BGP: b})
	if p.RouterID.IsValid() || len(p.Sessions) != 0 || len(p.Problems) != 1 || !strings.Contains(p.Problems[0], "no routerID") {
		t.Fatalf("got %+v", p)
	}
}

func ptr[T any](v T) *T { return &v }
