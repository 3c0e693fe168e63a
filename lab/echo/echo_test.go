package echo

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReplyRoundTrip(t *testing.T) {
	for _, r := range []Reply{
		{Pod: "n1-p1", Node: "node1", Client: netip.MustParseAddrPort("198.51.100.100:40000")},
		{Pod: "n2-p2", Node: "node2", Client: netip.MustParseAddrPort("[2001:db8:100::100]:1")},
	} {
		got, err := ParseReply(r.String())
		if err != nil || got != r {
			t.Errorf("ParseReply(%q) = %+v, %v", r.String(), got, err)
		}
	}
	if got := (Reply{Pod: "p", Node: "n", Client: netip.MustParseAddrPort("1.2.3.4:5")}).String(); got != "pod=p node=n client=1.2.3.4:5\n" {
		t.Errorf("format %q", got)
	}
	for _, bad := range []string{"", "pod=x", "pod=x client=nope", "garbage"} {
		if _, err := ParseReply(bad); err == nil {
			t.Errorf("ParseReply(%q) accepted", bad)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	f.Add("pod=n1-p1 node=node1 client=198.51.100.100:40000\n")
	f.Add("pod=x client=[::1]:2 extra=1")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReply(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(r.Pod, " \t\n") || !r.Client.IsValid() {
			t.Errorf("bad parse of %q: %+v", s, r)
		}
	})
}

// The server on loopback, with the listen seam mapping its wildcard
// addresses to loopback ones on free ports.
func TestServer(t *testing.T) {
	var mu sync.Mutex
	addrs := map[string]net.Addr{}
	loop := func(network string) string {
		if strings.HasSuffix(network, "6") {
			return "[::1]:0"
		}
		return "127.0.0.1:0"
	}
	s := &Server{Pod: "n1-p1", Node: "node1", Port: 5000,
		Listen: func(network, _ string) (net.Listener, error) {
			l, err := net.Listen(network, loop(network))
			if err == nil {
				mu.Lock()
				addrs[network] = l.Addr()
				mu.Unlock()
			}
			return l, err
		},
		ListenPacket: func(network, _ string) (net.PacketConn, error) {
			c, err := net.ListenPacket(network, loop(network))
			if err == nil {
				mu.Lock()
				addrs[network] = c.LocalAddr()
				mu.Unlock()
			}
			return c, err
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(addrs)
		mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Skipf("loopback sockets unavailable (%d bound)", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	for _, network := range []string{"tcp4", "tcp6"} {
		resp, err := hc.Get("http://" + addrs[network].String() + "/any/path")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		r, err := ParseReply(string(b))
		if err != nil || r.Pod != "n1-p1" || r.Node != "node1" || !r.Client.Addr().IsLoopback() {
			t.Errorf("%s: %q %v", network, b, err)
		}
		resp, err = hc.Get("http://" + addrs[network].String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if string(b) != "ok\n" {
			t.Errorf("healthz %q", b)
		}
	}
	for _, network := range []string{"udp4", "udp6"} {
		c, err := net.Dial(network, addrs[network].String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		_ = c.Close()
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseReply(line)
		if err != nil || r.Pod != "n1-p1" || r.Client.String() != c.LocalAddr().String() {
			t.Errorf("%s: %q %v (local %v)", network, line, err, c.LocalAddr())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}
