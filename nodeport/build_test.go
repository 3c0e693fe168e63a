package nodeport

import (
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beaconlb/beacon/internal/golden"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func ep(addr, node string, ports ...EndpointPort) Endpoint {
	return Endpoint{Addr: netip.MustParseAddr(addr), NodeName: node, Ready: true, Serving: true, Ports: ports}
}

func http8080() EndpointPort { return EndpointPort{Name: "http", Protocol: TCP, Port: 8080} }

// fixture covers every feature once; node1 is "this" node.
func fixture() Input {
	notReady := ep("198.18.1.3", "node1", http8080())
	notReady.Ready, notReady.Serving = false, false
	term := ep("198.18.1.9", "node1", http8080())
	term.Ready, term.Terminating = false, true
	return Input{
		Mode:          ModeFull,
		NodeName:      "node1",
		NodeAddresses: addrs("198.51.100.11", "2001:db8:100::11"),
		PodCIDRs:      []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16"), netip.MustParsePrefix("2001:db8:18::/48")},
		Services: []Service{
			{
				Namespace: "default", Name: "web",
				ClusterIPs:      addrs("198.19.0.10", "2001:db8:19::10"),
				LoadBalancerIPs: addrs("198.51.100.200", "2001:db8:100::200"),
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80, NodePort: 30080}},
				Endpoints: []Endpoint{
					ep("198.18.1.2", "node1", http8080()),
					ep("198.18.2.2", "node2", http8080()),
					notReady,
					ep("2001:db8:18:1::2", "node1", http8080()),
				},
			},
			{
				Namespace: "default", Name: "dns-local",
				ClusterIPs:          addrs("198.19.0.53"),
				LoadBalancerIPs:     addrs("203.0.113.5"),
				ExternalLocal:       true,
				HealthCheckNodePort: 32000,
				Ports: []Port{
					{Name: "dns-udp", Protocol: UDP, Port: 53, NodePort: 30053},
					{Name: "dns-tcp", Protocol: TCP, Port: 53, NodePort: 30053},
				},
				Endpoints: []Endpoint{
					ep("198.18.1.4", "node1", EndpointPort{"dns-udp", UDP, 5353}, EndpointPort{"dns-tcp", TCP, 5353}),
					ep("198.18.2.4", "node2", EndpointPort{"dns-udp", UDP, 5353}, EndpointPort{"dns-tcp", TCP, 5353}),
				},
			},
			{
				Namespace: "default", Name: "remote-only",
				ClusterIPs:      addrs("198.19.0.20"),
				LoadBalancerIPs: addrs("203.0.113.20"),
				ExternalLocal:   true,
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:       []Endpoint{ep("198.18.2.20", "node2", http8080())},
			},
			{
				Namespace: "default", Name: "empty",
				ClusterIPs: addrs("198.19.0.30"),
				Ports:      []Port{{Protocol: TCP, Port: 80}, {Protocol: UDP, Port: 9}},
			},
			{
				Namespace: "default", Name: "sticky",
				ClusterIPs:      addrs("198.19.0.40"),
				AffinityTimeout: 3 * time.Hour,
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:       []Endpoint{ep("198.18.1.40", "node1", http8080()), ep("198.18.2.40", "node2", http8080())},
			},
			{
				Namespace: "default", Name: "firewalled",
				ClusterIPs:      addrs("198.19.0.50"),
				LoadBalancerIPs: addrs("198.51.100.201"),
				SourceRanges:    []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:       []Endpoint{ep("198.18.1.50", "node1", http8080())},
			},
			{
				Namespace: "default", Name: "external-ip",
				ClusterIPs:  addrs("198.19.0.60"),
				ExternalIPs: addrs("203.0.113.77"),
				Ports:       []Port{{Name: "sctp", Protocol: SCTP, Port: 3868}},
				Endpoints:   []Endpoint{ep("198.18.1.60", "node1", EndpointPort{"sctp", SCTP, 3868})},
			},
			{
				Namespace: "default", Name: "internal-local",
				ClusterIPs:    addrs("198.19.0.70"),
				InternalLocal: true,
				Ports:         []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:     []Endpoint{ep("198.18.1.70", "node1", http8080()), ep("198.18.2.70", "node2", http8080())},
			},
			{
				Namespace: "default", Name: "terminating",
				ClusterIPs: addrs("198.19.0.80"),
				Ports:      []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:  []Endpoint{term},
			},
		},
	}
}

func TestBuildGolden(t *testing.T) {
	for _, tc := range []struct {
		file string
		mode Mode
	}{
		{"full.golden", ModeFull},
		{"external.golden", ModeExternal},
		{"off.golden", ModeOff},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			in := fixture()
			in.Mode = tc.mode
			rs := Build(in)
			golden.Check(t, filepath.Join("testdata", tc.file), []byte(rs.String()))
			if len(rs.Warnings) != 0 {
				t.Errorf("warnings: %v", rs.Warnings)
			}
		})
	}
}

func TestBuildDeterministic(t *testing.T) {
	want := Build(fixture()).String()
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		in := fixture()
		r.Shuffle(len(in.Services), func(i, j int) { in.Services[i], in.Services[j] = in.Services[j], in.Services[i] })
		for i := range in.Services {
			s := &in.Services[i]
			r.Shuffle(len(s.Ports), func(i, j int) { s.Ports[i], s.Ports[j] = s.Ports[j], s.Ports[i] })
			r.Shuffle(len(s.Endpoints), func(i, j int) { s.Endpoints[i], s.Endpoints[j] = s.Endpoints[j], s.Endpoints[i] })
		}
		if got := Build(in).String(); got != want {
			t.Fatalf("output depends on input order:\n%s", golden.Diff(want, got))
		}
	}
}

func TestBuildConflictWarns(t *testing.T) {
	in := fixture()
	dup := in.Services[0]
	dup.Name = "web2"
	dup.ClusterIPs = nil
	in.Services = append(in.Services, dup)
	rs := Build(in)
	if len(rs.Warnings) != 2 || !strings.Contains(rs.Warnings[0], "default/web2 ignored, already used by default/web") {
		t.Fatalf("warnings = %q", rs.Warnings)
	}
}

func TestHealthAndUDP(t *testing.T) {
	rs := Build(fixture())
	want := []HealthCheck{{Namespace: "default", Name: "dns-local", Port: 32000, LocalEndpoints: 1}}
	if !slices.Equal(rs.Health, want) {
		t.Errorf("health = %+v, want %+v", rs.Health, want)
	}
	var keys []string
	for _, u := range rs.UDP {
		keys = append(keys, u.Family.String()+" "+u.Key)
	}
	if want := []string{"ip default/dns-local/udp/53", "ip default/empty/udp/9"}; !slices.Equal(keys, want) {
		t.Fatalf("udp = %q, want %q", keys, want)
	}
	u := rs.UDP[0]
	if !slices.Equal(u.Backends, []netip.AddrPort{ap("198.18.1.4:5353"), ap("198.18.2.4:5353")}) {
		t.Errorf("backends = %v", u.Backends)
	}
	if !slices.Equal(u.Frontends, []netip.AddrPort{ap("198.19.0.53:53"), ap("203.0.113.5:53"), ap("198.51.100.11:30053")}) {
		t.Errorf("frontends = %v", u.Frontends)
	}
}
