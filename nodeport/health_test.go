package nodeport

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
)

// loopbackListen serves "port" on an ephemeral loopback port and records
// where.
type loopbackListen struct {
	mu    sync.Mutex
	addrs map[string]string
}

func (l *loopbackListen) listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.addrs[addr] = ln.Addr().String()
	return ln, nil
}

func (l *loopbackListen) url(port string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "http://" + l.addrs[":"+port] + "/healthz"
}

type healthReply struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func getHealth(t *testing.T, url string) (int, healthReply, http.Header) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	var r healthReply
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return resp.StatusCode, r, resp.Header
}

func TestHealthServer(t *testing.T) {
	l := &loopbackListen{addrs: map[string]string{}}
	var proxyHealthy atomic.Bool
	proxyHealthy.Store(true)
	h := NewHealthServer(HealthConfig{Log: testr.New(t), Listen: l.listen, Healthy: proxyHealthy.Load})
	t.Cleanup(func() { _ = h.Close() })

	if err := h.Sync([]HealthCheck{
		{Namespace: "ns", Name: "up", Port: 32000, LocalEndpoints: 2},
		{Namespace: "ns", Name: "down", Port: 32001},
	}); err != nil {
		t.Fatal(err)
	}
	code, r, hdr := getHealth(t, l.url("32000"))
	if code != http.StatusOK || r.Service.Namespace != "ns" || r.Service.Name != "up" || r.LocalEndpoints != 2 || !r.ServiceProxyHealthy {
		t.Errorf("up: %d %+v", code, r)
	}
	if hdr.Get("Content-Type") != "application/json" || hdr.Get("X-Load-Balancing-Endpoint-Weight") != "2" {
		t.Errorf("headers %v", hdr)
	}
	if code, r, _ := getHealth(t, l.url("32001")); code != http.StatusServiceUnavailable || r.LocalEndpoints != 0 {
		t.Errorf("down: %d %+v", code, r)
	}

	// Counts follow Sync without reopening the port.
	upURL := l.url("32000")
	if err := h.Sync([]HealthCheck{{Namespace: "ns", Name: "up", Port: 32000}}); err != nil {
		t.Fatal(err)
	}
	if l.url("32000") != upURL {
		t.Error("port reopened on a count change")
	}
	if code, _, _ := getHealth(t, upURL); code != http.StatusServiceUnavailable {
		t.Errorf("after losing endpoints: %d", code)
	}
	// A port no longer wanted is closed.
	if _, err := http.Get(strings.Replace(l.url("32001"), "/healthz", "/", 1)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("removed port: %v, want connection refused", err)
	}

	// An unhealthy proxy fails every check.
	if err := h.Sync([]HealthCheck{{Namespace: "ns", Name: "up", Port: 32000, LocalEndpoints: 1}}); err != nil {
		t.Fatal(err)
	}
	proxyHealthy.Store(false)
	if code, r, _ := getHealth(t, upURL); code != http.StatusServiceUnavailable || r.ServiceProxyHealthy {
		t.Errorf("unhealthy proxy: %d %+v", code, r)
	}
	if got := h.Ports(); len(got) != 1 || got[0] != 32000 {
		t.Errorf("ports %v", got)
	}
}

func TestHealthServerBodyMatchesKubeProxy(t *testing.T) {
	l := &loopbackListen{addrs: map[string]string{}}
	h := NewHealthServer(HealthConfig{Log: testr.New(t), Listen: l.listen})
	t.Cleanup(func() { _ = h.Close() })
	if err := h.Sync([]HealthCheck{{Namespace: "default", Name: "web", Port: 30000, LocalEndpoints: 1}}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(l.url("30000"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	want := "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n\t\"localEndpoints\": 1,\n\t\"serviceProxyHealthy\": true\n}"
	if string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
}

func TestHealthServerListenFailureRetried(t *testing.T) {
	fail := true
	l := &loopbackListen{addrs: map[string]string{}}
	h := NewHealthServer(HealthConfig{Log: testr.New(t), Listen: func(n, a string) (net.Listener, error) {
		if fail {
			return nil, syscall.EADDRINUSE
		}
		return l.listen(n, a)
	}})
	t.Cleanup(func() { _ = h.Close() })
	checks := []HealthCheck{{Namespace: "ns", Name: "s", Port: 32100, LocalEndpoints: 1}}
	if err := h.Sync(checks); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("err = %v", err)
	}
	fail = false
	if err := h.Sync(checks); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := getHealth(t, l.url("32100")); code != http.StatusOK {
		t.Errorf("code %d", code)
	}
}
