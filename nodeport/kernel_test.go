package nodeport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const askTimeout = 2 * time.Second

// podEndpoints returns both families' endpoints of the pods, serving
// echoPort under the given port names.
func podEndpoints(pods []*pod, nodes []string, names ...string) []Endpoint {
	var out []Endpoint
	for i, p := range pods {
		var ports []EndpointPort
		for _, n := range names {
			proto := TCP
			if strings.HasPrefix(n, "udp") {
				proto = UDP
			}
			ports = append(ports, EndpointPort{Name: n, Protocol: proto, Port: echoPort})
		}
		for _, a := range []netip.Addr{p.v4, p.v6} {
			out = append(out, Endpoint{Addr: a, NodeName: nodes[i], Ready: true, Serving: true, Ports: ports})
		}
	}
	return out
}

func kernelInput(l *lab) Input {
	p1, p2, p3 := l.pods[0], l.pods[1], l.pods[2]
	return Input{
		NodeName:      "node1",
		NodeAddresses: []netip.Addr{nodeV4, nodeV6},
		Services: []Service{
			{
				Namespace: "t", Name: "web",
				ClusterIPs:      addrs("198.19.0.10", "2001:db8:19::10"),
				LoadBalancerIPs: addrs("198.51.100.200", "2001:db8:100::200"),
				Ports: []Port{
					{Name: "http", Protocol: TCP, Port: 80, NodePort: 30080},
					{Name: "udp-echo", Protocol: UDP, Port: 7, NodePort: 30007},
				},
				Endpoints: podEndpoints([]*pod{p1, p2}, []string{"node1", "node1"}, "http", "udp-echo"),
			},
			{
				Namespace: "t", Name: "local",
				ClusterIPs:      addrs("198.19.0.11", "2001:db8:19::11"),
				LoadBalancerIPs: addrs("198.51.100.201", "2001:db8:100::201"),
				ExternalLocal:   true,
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80, NodePort: 30081}},
				// pod3 pretends to live on another node.
				Endpoints: podEndpoints([]*pod{p1, p3}, []string{"node1", "node2"}, "http"),
			},
			{
				Namespace: "t", Name: "extip",
				ClusterIPs:  addrs("198.19.0.12"),
				ExternalIPs: addrs("203.0.113.77"),
				Ports:       []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:   podEndpoints([]*pod{p2}, []string{"node1"}, "http"),
			},
			{
				Namespace: "t", Name: "empty",
				ClusterIPs:      addrs("198.19.0.30", "2001:db8:19::30"),
				LoadBalancerIPs: addrs("198.51.100.202"),
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80}, {Name: "udp", Protocol: UDP, Port: 9}},
			},
			{
				Namespace: "t", Name: "fw",
				LoadBalancerIPs: addrs("198.51.100.203"),
				SourceRanges:    []netip.Prefix{netip.MustParsePrefix("198.18.200.0/24")},
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:       podEndpoints([]*pod{p1}, []string{"node1"}, "http"),
			},
			{
				Namespace: "t", Name: "sticky",
				LoadBalancerIPs: addrs("198.51.100.204"),
				AffinityTimeout: time.Hour,
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:       podEndpoints([]*pod{p1, p2, p3}, []string{"node1", "node1", "node1"}, "http"),
			},
			{
				Namespace: "t", Name: "hairpin",
				ClusterIPs: addrs("198.19.0.50"),
				Ports:      []Port{{Name: "http", Protocol: TCP, Port: 80}},
				Endpoints:  podEndpoints([]*pod{p1}, []string{"node1"}, "http"),
			},
			{
				Namespace: "t", Name: "udp",
				LoadBalancerIPs: addrs("198.51.100.205"),
				Ports:           []Port{{Name: "udp-echo", Protocol: UDP, Port: 7}},
				Endpoints:       podEndpoints([]*pod{p1}, []string{"node1"}, "udp-echo"),
			},
		},
	}
}

func service(in *Input, name string) *Service {
	for i := range in.Services {
		if in.Services[i].Name == name {
			return &in.Services[i]
		}
	}
	panic("no service " + name)
}

func TestKernelDataplane(t *testing.T) {
	l := newLab(t, 3)
	p1, p2, p3 := l.pods[0], l.pods[1], l.pods[2]
	ka, err := NewKernelApplier(KernelConfig{NetNS: int(l.node.h)}, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ka.Close() })

	in := kernelInput(l)
	apply := func(t *testing.T, in Input) ApplyStats {
		t.Helper()
		st, err := ka.Apply(Build(in))
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		return st
	}
	if st := apply(t, in); !st.Full {
		t.Fatalf("first apply not full: %+v", st)
	}

	// ask makes n TCP connections and returns the replies.
	ask := func(t *testing.T, ns *netNS, src netip.Addr, dst string, n int) []reply {
		t.Helper()
		var out []reply
		for range n {
			r, err := tcpAsk(ns, src, netip.MustParseAddrPort(dst), askTimeout)
			if err != nil {
				t.Fatalf("tcp %s: %v", dst, err)
			}
			out = append(out, r)
		}
		return out
	}
	// expect checks that replies came from the given pods (all of them
	// when more than one) and that each saw the given client address.
	expect := func(t *testing.T, rs []reply, client netip.Addr, pods ...*pod) {
		t.Helper()
		seen := map[string]bool{}
		for _, r := range rs {
			seen[r.pod] = true
			if r.client.Addr() != client {
				t.Errorf("%s saw client %s, want %s", r.pod, r.client.Addr(), client)
			}
		}
		want := map[string]bool{}
		for _, p := range pods {
			want[p.name] = true
		}
		for p := range seen {
			if !want[p] {
				t.Errorf("reply from %s, want only %v", p, want)
			}
		}
		for p := range want {
			if !seen[p] {
				t.Errorf("no reply from %s in %d tries", p, len(rs))
			}
		}
	}

	t.Run("listing is readable", func(t *testing.T) {
		out := listFamily(t, l.node, IPv4)
		for _, want := range []string{
			"type ipv4_addr . inet_proto . inet_service : verdict",
			"198.19.0.10 . tcp . 80 : goto svc-t/web/tcp/80",
			"198.51.100.200 . tcp . 80 : goto svc-t/web/tcp/80",
			"198.51.100.201 . tcp . 80 : goto ext-t/local/tcp/80",
			"ip daddr . meta l4proto . th dport @masquerade-ips meta mark set meta mark | 0x00004000",
			"ip daddr . meta l4proto . th dport vmap @service-ips",
			"ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
			"tcp . 30080 : goto svc-t/web/tcp/80",
			"type nat hook prerouting priority dstnat; policy accept;",
			"type nat hook postrouting priority srcnat; policy accept;",
			"numgen random mod 2 0 meta l4proto tcp dnat to 198.18.1.11:8080",
			"meta l4proto tcp dnat to 198.18.1.12:8080",
			"ct status dnat ip saddr . ip daddr @hairpin masquerade fully-random",
			"fib saddr type local meta mark set meta mark | 0x00004000 goto svc-t/local/tcp/80",
			"ip saddr 198.18.200.0/24 goto svc-t/fw/tcp/80",
			"reject with tcp reset",
			"update @aff-t/sticky/tcp/80__198.18.1.11/8080 { ip saddr }",
			"198.18.1.11 . 198.18.1.11",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("nft list of ip tables lacks %q:\n%s", want, out)
			}
		}
		out6 := listFamily(t, l.node, IPv6)
		for _, want := range []string{
			"type ipv6_addr . inet_proto . inet_service : verdict",
			"2001:db8:19::10 . tcp . 80 : goto svc-t/web/tcp/80",
			"dnat to [2001:db8:18:1::11]:8080",
		} {
			if !strings.Contains(out6, want) {
				t.Errorf("nft list of ip6 tables lacks %q:\n%s", want, out6)
			}
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("%s\n%s", out, out6)
		}
		// What nft prints, nft reads back (admins save and restore).
		f := filepath.Join(t.TempDir(), "ruleset.nft")
		if err := os.WriteFile(f, []byte(out+out6), 0o600); err != nil {
			t.Fatal(err)
		}
		newNS(t, "beacon-np-"+l.id+"-check").exec(t, "nft", "-c", "-f", f)
	})

	t.Run("clusterIP", func(t *testing.T) {
		expect(t, ask(t, p3.netNS, netip.Addr{}, "198.19.0.10:80", 20), p3.v4, p1, p2)
		expect(t, ask(t, p3.netNS, netip.Addr{}, "[2001:db8:19::10]:80", 20), p3.v6, p1, p2)
		// From the node itself (output hook): the source is the node's.
		expect(t, ask(t, l.node, netip.Addr{}, "198.19.0.10:80", 20), nodeV4, p1, p2)
	})
	t.Run("nodePort cluster policy masquerades", func(t *testing.T) {
		expect(t, ask(t, l.client, netip.Addr{}, "198.51.100.11:30080", 20), podGW4, p1, p2)
		expect(t, ask(t, l.client, netip.Addr{}, "[2001:db8:100::11]:30080", 20), podGW6, p1, p2)
	})
	t.Run("loadBalancer cluster policy masquerades", func(t *testing.T) {
		expect(t, ask(t, l.client, netip.Addr{}, "198.51.100.200:80", 20), podGW4, p1, p2)
		expect(t, ask(t, l.client, netip.Addr{}, "[2001:db8:100::200]:80", 20), podGW6, p1, p2)
	})
	t.Run("local policy keeps the client address and stays local", func(t *testing.T) {
		expect(t, ask(t, l.client, netip.Addr{}, "198.51.100.201:80", 10), clientV4, p1)
		expect(t, ask(t, l.client, netip.Addr{}, "[2001:db8:100::201]:80", 10), clientV6, p1)
		expect(t, ask(t, l.client, netip.Addr{}, "198.51.100.11:30081", 10), clientV4, p1)
		// The clusterIP of the same Service uses every endpoint.
		expect(t, ask(t, p2.netNS, netip.Addr{}, "198.19.0.11:80", 20), p2.v4, p1, p3)
	})
	t.Run("externalIP", func(t *testing.T) {
		expect(t, ask(t, l.client, netip.Addr{}, "203.0.113.77:80", 3), podGW4, p2)
	})
	t.Run("udp", func(t *testing.T) {
		seen := map[string]bool{}
		for i := range 20 {
			u, err := dialUDP(l.client, netip.AddrPortFrom(clientV4, uint16(41000+i)), netip.MustParseAddrPort("198.51.100.200:7"))
			if err != nil {
				t.Fatal(err)
			}
			r, err := u.ask(askTimeout)
			_ = u.Close()
			if err != nil {
				t.Fatalf("udp: %v", err)
			}
			seen[r.pod] = true
			if r.client.Addr() != podGW4 {
				t.Errorf("udp client seen as %s, want %s", r.client, podGW4)
			}
		}
		if !seen[p1.name] || !seen[p2.name] || len(seen) != 2 {
			t.Errorf("udp replies from %v, want pod1 and pod2", seen)
		}
		u, err := dialUDP(p3.netNS, netip.AddrPort{}, netip.MustParseAddrPort("[2001:db8:19::10]:7"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = u.Close() }()
		if r, err := u.ask(askTimeout); err != nil || r.client.Addr() != p3.v6 || (r.pod != p1.name && r.pod != p2.name) {
			t.Errorf("udp v6 clusterIP: %+v %v", r, err)
		}
	})
	t.Run("no endpoints rejects fast", func(t *testing.T) {
		for _, c := range []struct {
			ns  *netNS
			dst string
		}{{p3.netNS, "198.19.0.30:80"}, {p3.netNS, "[2001:db8:19::30]:80"}, {l.client, "198.51.100.202:80"}} {
			start := time.Now()
			_, err := tcpAsk(c.ns, netip.Addr{}, netip.MustParseAddrPort(c.dst), askTimeout)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("tcp %s: %v, want connection refused", c.dst, err)
			} else if d := time.Since(start); d > time.Second {
				t.Errorf("tcp %s: refused after %s, want fast", c.dst, d)
			}
		}
		u, err := dialUDP(l.client, netip.AddrPort{}, netip.MustParseAddrPort("198.51.100.202:9"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = u.Close() }()
		if _, err := u.ask(askTimeout); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("udp: %v, want connection refused (ICMP port unreachable)", err)
		}
	})
	t.Run("loadBalancerSourceRanges", func(t *testing.T) {
		expect(t, ask(t, l.client, extV4, "198.51.100.203:80", 3), podGW4, p1)
		_, err := tcpAsk(l.client, clientV4, netip.MustParseAddrPort("198.51.100.203:80"), 300*time.Millisecond)
		if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("from outside the ranges: %v, want a timeout (dropped)", err)
		}
	})
	t.Run("session affinity", func(t *testing.T) {
		rs := ask(t, l.client, netip.Addr{}, "198.51.100.204:80", 10)
		for _, r := range rs[1:] {
			if r.pod != rs[0].pod {
				t.Fatalf("affinity broken: %v", rs)
			}
		}
		// Another client address is placed independently; it may land
		// anywhere, but sticks too.
		rs = ask(t, l.client, extV4, "198.51.100.204:80", 10)
		for _, r := range rs[1:] {
			if r.pod != rs[0].pod {
				t.Fatalf("affinity broken for the second client: %v", rs)
			}
		}
	})
	t.Run("hairpin", func(t *testing.T) {
		expect(t, ask(t, p1.netNS, netip.Addr{}, "198.19.0.50:80", 3), podGW4, p1)
		expect(t, ask(t, p1.netNS, netip.Addr{}, "198.51.100.200:80", 20), podGW4, p1, p2)
	})
	t.Run("endpoint removal", func(t *testing.T) {
		web := service(&in, "web")
		web.Endpoints = podEndpoints([]*pod{p1}, []string{"node1"}, "http", "udp-echo")
		if st := apply(t, in); st.Full || st.Chains == 0 || st.Chains > 12 {
			t.Errorf("stats %+v, want a small incremental change", st)
		}
		expect(t, ask(t, l.client, netip.Addr{}, "198.51.100.200:80", 20), podGW4, p1)
		expect(t, ask(t, p3.netNS, netip.Addr{}, "[2001:db8:19::10]:80", 20), p3.v6, p1)
	})
	t.Run("stale udp flow is deleted", func(t *testing.T) {
		u, err := dialUDP(l.client, netip.AddrPortFrom(clientV4, 42000), netip.MustParseAddrPort("198.51.100.205:7"))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = u.Close() }()
		for range 3 {
			if r, err := u.ask(askTimeout); err != nil || r.pod != p1.name {
				t.Fatalf("before: %v %v", r, err)
			}
		}
		if n := countFlows(t, l, "198.51.100.205", p1.v4); n != 1 {
			t.Fatalf("%d conntrack entries to pod1, want 1", n)
		}
		service(&in, "udp").Endpoints = podEndpoints([]*pod{p2}, []string{"node1"}, "udp-echo")
		st := apply(t, in)
		if st.ConntrackDeleted < 1 {
			t.Errorf("stats %+v: no conntrack entry deleted", st)
		}
		if n := countFlows(t, l, "198.51.100.205", p1.v4); n != 0 {
			t.Errorf("%d conntrack entries to pod1 left", n)
		}
		// The same client socket (same 5-tuple) now reaches pod2.
		if r, err := u.ask(askTimeout); err != nil || r.pod != p2.name {
			t.Fatalf("after: %v %v, want pod2", r, err)
		}
	})
	t.Run("full resync after the table is deleted behind our back", func(t *testing.T) {
		l.node.exec(t, "nft", "delete", "table", "ip", ShardTableName(ShardOf("t", "web", DefaultShards)))
		if _, err := tcpAsk(l.client, netip.Addr{}, netip.MustParseAddrPort("198.51.100.200:80"), 300*time.Millisecond); err == nil {
			t.Fatal("service still answers without the table")
		}
		st := apply(t, in)
		if !st.Full {
			t.Errorf("stats %+v, want a full resync", st)
		}
		expect(t, ask(t, l.client, netip.Addr{}, "198.51.100.200:80", 5), podGW4, p1)
		// And the next one is incremental again.
		if st := apply(t, in); st.Full || st.Rules+st.Elements+st.Chains != 0 {
			t.Errorf("no-op apply wrote %+v", st)
		}
	})
	t.Run("syncer with health checks", func(t *testing.T) {
		var mu sync.Mutex
		cur := in
		local := service(&cur, "local")
		local.HealthCheckNodePort = 32000
		var s *Syncer
		health := NewHealthServer(HealthConfig{
			Log:     testr.New(t),
			Healthy: func() bool { return s.Healthy() },
			Listen: func(network, addr string) (ln net.Listener, err error) {
				err = l.node.do(func() (err error) { ln, err = net.Listen(network, addr); return err })
				return ln, err
			},
		})
		s, err := NewSyncer(SyncerConfig{
			Input: func() (Input, error) {
				mu.Lock()
				defer mu.Unlock()
				c := cur
				c.Services = slices.Clone(cur.Services)
				return c, nil
			},
			Applier: ka, Health: health, MinInterval: 10 * time.Millisecond, Log: testr.New(t),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		client := &http.Client{Timeout: askTimeout, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
				err = l.client.do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
				return c, err
			},
		}}
		status := func() (int, string, error) {
			resp, err := client.Get("http://198.51.100.11:32000/")
			if err != nil {
				return 0, "", err
			}
			defer func() { _ = resp.Body.Close() }()
			b, err := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b), err
		}
		eventually(t, 5*time.Second, "health check answers 200", func() error {
			code, body, err := status()
			if err == nil && (code != http.StatusOK || !strings.Contains(body, `"localEndpoints": 1`)) {
				err = fmt.Errorf("%d %s", code, body)
			}
			return err
		})
		// The local endpoint goes: 503, and the LB IP now drops traffic.
		mu.Lock()
		local.Endpoints = podEndpoints([]*pod{p3}, []string{"node2"}, "http")
		mu.Unlock()
		s.MarkDirty()
		eventually(t, 5*time.Second, "health check answers 503", func() error {
			code, body, err := status()
			if err == nil && (code != http.StatusServiceUnavailable || !strings.Contains(body, `"localEndpoints": 0`)) {
				err = fmt.Errorf("%d %s", code, body)
			}
			return err
		})
		if _, err := tcpAsk(l.client, netip.Addr{}, netip.MustParseAddrPort("198.51.100.201:80"), 300*time.Millisecond); err == nil {
			t.Error("local-policy LB IP still answers without local endpoints")
		}
	})
	t.Run("mode off removes the tables", func(t *testing.T) {
		off := in
		off.Mode = ModeOff
		apply(t, off)
		out := l.node.exec(t, "nft", "list", "tables")
		if strings.Contains(out, TableName) {
			t.Errorf("tables left in mode off:\n%s", out)
		}
	})
}

func countFlows(t *testing.T, l *lab, dst string, replySrc netip.Addr) int {
	t.Helper()
	h, err := netlink.NewHandleAt(l.node.h, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	flows, err := h.ConntrackTableList(netlink.ConntrackTable, netlink.InetFamily(unix.AF_INET))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range flows {
		if f.Forward.DstIP.String() == dst && f.Reverse.SrcIP.Equal(replySrc.AsSlice()) {
			n++
		}
	}
	return n
}

// listFamily lists Beacon's tables of the family.
func listFamily(t *testing.T, ns *netNS, fam Family) string {
	var out strings.Builder
	for _, name := range strings.Fields(ns.exec(t, "nft", "list", "tables", fam.String())) {
		if IsBeaconTable(name) {
			out.WriteString(ns.exec(t, "nft", "list", "table", fam.String(), name))
		}
	}
	return out.String()
}

func TestKernelBatchErrors(t *testing.T) {
	requireRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := newNS(t, "beacon-np-"+hex.EncodeToString(b)+"-batch")
	ka, err := NewKernelApplier(KernelConfig{NetNS: int(ns.h)}, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ka.Close() })
	kb := ka.b.(*kernelBatch)

	// Every message of a bad batch fails; nothing is committed.
	kb.AddTable(IPv4, "beacon-test")
	for i := range 2000 {
		kb.DelChain(IPv4, "beacon-missing", fmt.Sprintf("c%d", i))
	}
	err = kb.Commit()
	if !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("commit: %v, want ENOENT", err)
	}
	if !strings.Contains(err.Error(), "2000 errors") {
		t.Errorf("error %q should count every failure", err)
	}
	if ts, err := kb.Tables(IPv4); err != nil {
		t.Fatal(err)
	} else if _, ok := ts["beacon-test"]; ok {
		t.Error("a failed batch left its table behind")
	}
	// The socket is clean for the next batch.
	kb.AddTable(IPv4, "beacon-test")
	kb.AddChain(IPv4, "beacon-test", &Chain{Name: "c"})
	if err := kb.AddRule(IPv4, "beacon-test", "c", Rule{MatchProto{Proto: TCP}, Drop{}}); err != nil {
		t.Fatal(err)
	}
	if err := kb.Commit(); err != nil {
		t.Fatal(err)
	}
	if ts, err := kb.Tables(IPv4); err != nil || ts["beacon-test"] != 1 {
		t.Errorf("tables %v %v, want beacon-test with 1 chain", ts, err)
	}
	if out := ns.exec(t, "nft", "list", "chain", "ip", "beacon-test", "c"); !strings.Contains(out, "meta l4proto tcp drop") {
		t.Errorf("rule not listed:\n%s", out)
	}
}

// With a receive buffer too small for the errors of a bad batch, reading
// stops at ENOBUFS; the next batch must not read the leftovers as its own.
func TestKernelBatchErrorOverflow(t *testing.T) {
	requireRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := newNS(t, "beacon-np-"+hex.EncodeToString(b)+"-overflow")
	ka, err := NewKernelApplier(KernelConfig{NetNS: int(ns.h), SocketBuffer: 1 << 19}, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ka.Close() })
	kb := ka.b.(*kernelBatch)
	for i := range 5000 {
		kb.DelChain(IPv4, "beacon-missing", fmt.Sprintf("c%d", i))
	}
	err = kb.Commit()
	if err == nil {
		t.Fatal("bad batch accepted")
	}
	t.Logf("bad batch: %v (stale replies: %v)", err, kb.send.stale)
	kb.AddTable(IPv4, "beacon-test")
	if err := kb.Commit(); err != nil {
		t.Fatalf("good batch after a bad one: %v", err)
	}
}

// TestKernelServedAddrs: the addresses read back from the kernel are those
// the applied Ruleset forwards: ClusterIPs only in full mode, never node
// addresses; nothing once the tables are gone.
func TestKernelServedAddrs(t *testing.T) {
	requireRoot(t)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	ns := newNS(t, "beacon-np-"+hex.EncodeToString(b)+"-served")
	ka, err := NewKernelApplier(KernelConfig{NetNS: int(ns.h), NoConntrack: true}, testr.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ka.Close() })
	in := Input{
		NodeName:      "node1",
		NodeAddresses: addrs("198.51.100.11", "2001:db8:100::11"),
		Services: []Service{
			{
				Namespace: "t", Name: "web",
				ClusterIPs:      addrs("198.19.0.10", "2001:db8:19::10"),
				LoadBalancerIPs: addrs("198.51.100.200", "2001:db8:100::200"),
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80, NodePort: 30080}, {Name: "dns", Protocol: UDP, Port: 53, NodePort: 30053}},
			},
			{
				Namespace: "t", Name: "local",
				ClusterIPs:      addrs("198.19.0.11"),
				LoadBalancerIPs: addrs("198.51.100.201"),
				SourceRanges:    []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
				ExternalLocal:   true,
				Ports:           []Port{{Name: "http", Protocol: TCP, Port: 80}},
			},
			{
				Namespace: "u", Name: "extip",
				ClusterIPs:  addrs("198.19.0.12"),
				ExternalIPs: addrs("203.0.113.77"),
				Ports:       []Port{{Name: "http", Protocol: TCP, Port: 8080}},
			},
		},
	}
	external := addrs("198.51.100.200", "198.51.100.201", "203.0.113.77", "2001:db8:100::200")
	for _, tc := range []struct {
		mode Mode
		want []netip.Addr
	}{
		{ModeFull, append(addrs("198.19.0.10", "198.19.0.11", "198.19.0.12", "2001:db8:19::10"), external...)},
		{ModeExternal, external},
		{ModeOff, nil},
	} {
		in.Mode = tc.mode
		if _, err := ka.Apply(Build(in)); err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		got, err := ka.ServedAddrs()
		if err != nil {
			t.Fatalf("%s: %v", tc.mode, err)
		}
		want := slices.Clone(tc.want)
		slices.SortFunc(want, netip.Addr.Compare)
		if !slices.Equal(got, want) {
			t.Errorf("%s: served %v, want %v", tc.mode, got, want)
		}
	}
}
