package nodeport_test

import (
	"math"
	"net/netip"
	"testing"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/nodeport/nodeporttest"
)

// These tests check what Build's rules do to packets, by tracing them.

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func approx(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

type want struct {
	verdict nodeporttest.Verdict
	to      string
	masq    bool
	p       float64
}

func TestTrace(t *testing.T) {
	const (
		client   = "192.0.2.10:40000"
		lan      = "198.51.100.100:40000"
		pod      = "198.18.1.2:40000" // a web endpoint on this node
		otherPod = "198.18.5.5:40000"
		node     = "198.51.100.11:40000"
	)
	full := nodeport.Build(nodeport.Fixture())
	in := nodeport.Fixture()
	in.Mode = nodeport.ModeExternal
	external := nodeport.Build(in)
	in.Mode = nodeport.ModeOff
	off := nodeport.Build(in)

	for _, tc := range []struct {
		name string
		rs   *nodeport.Ruleset
		pkt  nodeporttest.Packet
		want []want
	}{
		{"clusterIP spreads evenly, no masquerade", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.10:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.2:8080", false, .5}, {nodeporttest.VerdictDNAT, "198.18.2.2:8080", false, .5}}},
		{"clusterIP hairpin is masqueraded", full, nodeporttest.Packet{Src: ap(pod), Dst: ap("198.19.0.10:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.2:8080", true, .5}, {nodeporttest.VerdictDNAT, "198.18.2.2:8080", false, .5}}},
		{"clusterIP wrong port passes", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.10:81"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictAccept, "", false, 1}}},
		{"clusterIP wrong protocol passes", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.10:80"), Proto: nodeport.UDP},
			[]want{{nodeporttest.VerdictAccept, "", false, 1}}},
		{"clusterIP from the node", full, nodeporttest.Packet{Src: ap(node), Dst: ap("198.19.0.10:80"), Proto: nodeport.TCP, FromNode: true},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.2:8080", false, .5}, {nodeporttest.VerdictDNAT, "198.18.2.2:8080", false, .5}}},
		{"clusterIP v6", full, nodeporttest.Packet{Src: ap("[2001:db8:18:5::5]:4000"), Dst: ap("[2001:db8:19::10]:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "[2001:db8:18:1::2]:8080", false, 1}}},
		{"LB IP cluster policy masquerades", full, nodeporttest.Packet{Src: ap(client), Dst: ap("198.51.100.200:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.2:8080", true, .5}, {nodeporttest.VerdictDNAT, "198.18.2.2:8080", true, .5}}},
		{"LB IP v6", full, nodeporttest.Packet{Src: ap("[2001:db8:100::100]:4000"), Dst: ap("[2001:db8:100::200]:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "[2001:db8:18:1::2]:8080", true, 1}}},
		{"nodePort", full, nodeporttest.Packet{Src: ap(lan), Dst: ap("198.51.100.11:30080"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.2:8080", true, .5}, {nodeporttest.VerdictDNAT, "198.18.2.2:8080", true, .5}}},
		{"nodePort v6", full, nodeporttest.Packet{Src: ap("[2001:db8:100::100]:4000"), Dst: ap("[2001:db8:100::11]:30080"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "[2001:db8:18:1::2]:8080", true, 1}}},
		{"nodePort on a non-node address passes", full, nodeporttest.Packet{Src: ap(lan), Dst: ap("198.51.100.12:30080"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictAccept, "", false, 1}}},
		{"local policy: external client only to local, source kept", full, nodeporttest.Packet{Src: ap(client), Dst: ap("203.0.113.5:53"), Proto: nodeport.UDP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.4:5353", false, 1}}},
		{"local policy nodePort", full, nodeporttest.Packet{Src: ap(lan), Dst: ap("198.51.100.11:30053"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.4:5353", false, 1}}},
		{"local policy: pods use any endpoint", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("203.0.113.5:53"), Proto: nodeport.UDP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.4:5353", false, .5}, {nodeporttest.VerdictDNAT, "198.18.2.4:5353", false, .5}}},
		{"local policy: the node uses any endpoint, masqueraded", full, nodeporttest.Packet{Src: ap(node), Dst: ap("203.0.113.5:53"), Proto: nodeport.UDP, FromNode: true},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.4:5353", true, .5}, {nodeporttest.VerdictDNAT, "198.18.2.4:5353", true, .5}}},
		{"local policy clusterIP uses any endpoint", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.53:53"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.4:5353", false, .5}, {nodeporttest.VerdictDNAT, "198.18.2.4:5353", false, .5}}},
		{"local policy, no local endpoint: drop", full, nodeporttest.Packet{Src: ap(client), Dst: ap("203.0.113.20:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDrop, "", false, 1}}},
		{"local policy, no local endpoint: clusterIP still works", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.20:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.2.20:8080", false, 1}}},
		{"no endpoints: reject tcp", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.30:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictReject, "", false, 1}}},
		{"no endpoints: reject udp", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.30:9"), Proto: nodeport.UDP},
			[]want{{nodeporttest.VerdictReject, "", false, 1}}},
		{"source range allows", full, nodeporttest.Packet{Src: ap(client), Dst: ap("198.51.100.201:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.50:8080", true, 1}}},
		{"source range drops others", full, nodeporttest.Packet{Src: ap(lan), Dst: ap("198.51.100.201:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDrop, "", false, 1}}},
		{"source range does not apply to the clusterIP", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.50:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.50:8080", false, 1}}},
		{"externalIP sctp", full, nodeporttest.Packet{Src: ap(client), Dst: ap("203.0.113.77:3868"), Proto: nodeport.SCTP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.60:3868", true, 1}}},
		{"internal local", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.70:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.70:8080", false, 1}}},
		{"terminating endpoint used when none ready", full, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.80:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.9:8080", false, 1}}},
		{"external mode ignores clusterIPs", external, nodeporttest.Packet{Src: ap(otherPod), Dst: ap("198.19.0.10:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictAccept, "", false, 1}}},
		{"external mode ignores nodePorts", external, nodeporttest.Packet{Src: ap(lan), Dst: ap("198.51.100.11:30080"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictAccept, "", false, 1}}},
		{"external mode forwards LB IPs", external, nodeporttest.Packet{Src: ap(client), Dst: ap("198.51.100.200:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictDNAT, "198.18.1.2:8080", true, .5}, {nodeporttest.VerdictDNAT, "198.18.2.2:8080", true, .5}}},
		{"off", off, nodeporttest.Packet{Src: ap(client), Dst: ap("198.51.100.200:80"), Proto: nodeport.TCP},
			[]want{{nodeporttest.VerdictAccept, "", false, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkOutcomes(t, nodeporttest.Trace(tc.rs, tc.pkt), tc.want)
		})
	}
}

func checkOutcomes(t *testing.T, got []nodeporttest.Outcome, want []want) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		var to netip.AddrPort
		if want[i].to != "" {
			to = ap(want[i].to)
		}
		ok = got[i].Verdict == want[i].verdict && got[i].To == to && got[i].Masquerade == want[i].masq && approx(got[i].Probability, want[i].p)
	}
	if !ok {
		t.Errorf("outcomes = %v, want %v", got, want)
	}
}

func TestTraceEvenSpread(t *testing.T) {
	for n := 1; n <= 7; n++ {
		in := nodeport.Input{NodeName: "node1", Services: []nodeport.Service{{
			Namespace: "ns", Name: "s", ClusterIPs: []netip.Addr{netip.MustParseAddr("198.19.1.1")},
			Ports: []nodeport.Port{{Protocol: nodeport.TCP, Port: 80}},
		}}}
		for i := range n {
			in.Services[0].Endpoints = append(in.Services[0].Endpoints,
				nodeport.Endpoint{Addr: netip.AddrFrom4([4]byte{198, 18, 3, byte(i + 1)}), Ready: true, Ports: []nodeport.EndpointPort{{Protocol: nodeport.TCP, Port: 80}}})
		}
		out := nodeporttest.Trace(nodeport.Build(in), nodeporttest.Packet{Src: ap("198.18.9.9:1"), Dst: ap("198.19.1.1:80"), Proto: nodeport.TCP})
		if len(out) != n {
			t.Fatalf("n=%d: %d outcomes", n, len(out))
		}
		for _, o := range out {
			if !approx(o.Probability, 1/float64(n)) {
				t.Errorf("n=%d: %v, want p=1/%d", n, o, n)
			}
		}
	}
}

func TestTraceAffinity(t *testing.T) {
	rs := nodeport.Build(nodeport.Fixture())
	tr := nodeporttest.NewTracer(rs)
	pkt := nodeporttest.Packet{Src: ap("198.18.5.5:1000"), Dst: ap("198.19.0.40:80"), Proto: nodeport.TCP}
	first := tr.Trace(pkt)
	checkOutcomes(t, first, []want{{nodeporttest.VerdictDNAT, "198.18.1.40:8080", false, .5}, {nodeporttest.VerdictDNAT, "198.18.2.40:8080", false, .5}})
	tr.Commit(pkt, first[1])
	pkt.Src = ap("198.18.5.5:1001") // a new connection from the same client
	checkOutcomes(t, tr.Trace(pkt), []want{{nodeporttest.VerdictDNAT, "198.18.2.40:8080", false, 1}})
	// Another client is free to go anywhere.
	pkt.Src = ap("198.18.5.6:1001")
	checkOutcomes(t, tr.Trace(pkt), []want{{nodeporttest.VerdictDNAT, "198.18.1.40:8080", false, .5}, {nodeporttest.VerdictDNAT, "198.18.2.40:8080", false, .5}})
}

func TestTraceConflictFirstWins(t *testing.T) {
	in := nodeport.Fixture()
	dup := in.Services[0]
	dup.Name = "web2"
	dup.ClusterIPs = nil
	in.Services = append(in.Services, dup)
	// The first Service keeps the LoadBalancer IP.
	out := nodeporttest.Trace(nodeport.Build(in), nodeporttest.Packet{Src: ap("192.0.2.10:1000"), Dst: ap("198.51.100.200:80"), Proto: nodeport.TCP})
	if len(out) != 2 || out[0].To != ap("198.18.1.2:8080") {
		t.Fatalf("outcomes = %v", out)
	}
}

func TestTraceServicesFromKube(t *testing.T) {
	svc, _, slice := nodeport.KubeWeb()
	got := nodeport.ServicesFromKube([]*v1.Service{svc}, []*discoveryv1.EndpointSlice{slice}, nil)
	// The named target port resolves per endpoint, per protocol.
	rs := nodeport.Build(nodeport.Input{NodeName: "node1", NodeAddresses: []netip.Addr{netip.MustParseAddr("198.51.100.11")}, Services: got})
	checkOutcomes(t, nodeporttest.Trace(rs, nodeporttest.Packet{Src: ap("192.0.2.10:1"), Dst: ap("198.51.100.200:53"), Proto: nodeport.UDP}),
		[]want{{nodeporttest.VerdictDNAT, "198.18.1.2:5353", false, 1}})
	checkOutcomes(t, nodeporttest.Trace(rs, nodeporttest.Packet{Src: ap("198.51.100.100:1"), Dst: ap("198.51.100.200:80"), Proto: nodeport.TCP}),
		[]want{{nodeporttest.VerdictDrop, "", false, 1}}) // outside loadBalancerSourceRanges
}
