package nodeport

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
)

// HealthServer answers the health checks of externalTrafficPolicy Local
// Services on their healthCheckNodePort, as kube-proxy does: 200 when the
// node has ready local endpoints, 503 otherwise, with the same JSON body
// and headers, so that cloud and bare-metal load balancers treat Beacon and
// kube-proxy alike.
//
// Sync opens and closes listeners; Close stops them all and waits for their
// goroutines.
type HealthServer struct {
	log    logr.Logger
	listen func(network, addr string) (net.Listener, error)
	// healthy reports whether the dataplane itself is working (the last
	// sync succeeded); an unhealthy proxy answers 503 everywhere.
	healthy func() bool

	mu      sync.Mutex
	servers map[uint16]*healthPort
	closed  bool
	wg      sync.WaitGroup
}

type healthPort struct {
	srv   *http.Server
	check HealthCheck
}

// HealthConfig configures NewHealthServer.
type HealthConfig struct {
	Log logr.Logger
	// Listen opens a listener; nil means net.Listen. Ports are served on
	// every address (":port").
	Listen func(network, addr string) (net.Listener, error)
	// Healthy reports whether the dataplane is healthy; nil means always.
	Healthy func() bool
}

// NewHealthServer returns a HealthServer with no ports open.
func NewHealthServer(cfg HealthConfig) *HealthServer {
	h := &HealthServer{log: cfg.Log, listen: cfg.Listen, healthy: cfg.Healthy, servers: map[uint16]*healthPort{}}
	if h.listen == nil {
		h.listen = net.Listen
	}
	if h.healthy == nil {
		h.healthy = func() bool { return true }
	}
	return h
}

// Sync makes the server answer exactly the given checks. Ports that fail to
// open are reported and retried by the next Sync.
func (h *HealthServer) Sync(checks []HealthCheck) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("health server closed")
	}
	want := map[uint16]HealthCheck{}
	for _, c := range checks {
		if c.Port == 0 {
			continue
		}
		if prev, dup := want[c.Port]; dup {
			h.log.Info("health check node port used by two Services; keeping the first", "port", c.Port,
				"service", prev.Namespace+"/"+prev.Name, "ignored", c.Namespace+"/"+c.Name)
			continue
		}
		want[c.Port] = c
	}
	for port, hp := range h.servers {
		if _, ok := want[port]; !ok {
			_ = hp.srv.Close()
			delete(h.servers, port)
		}
	}
	var errs []error
	ports := make([]uint16, 0, len(want))
	for p := range want {
		ports = append(ports, p)
	}
	slices.SortFunc(ports, cmp.Compare)
	for _, port := range ports {
		c := want[port]
		if hp, ok := h.servers[port]; ok {
			hp.check = c
			continue
		}
		l, err := h.listen("tcp", ":"+strconv.Itoa(int(port)))
		if err != nil {
			errs = append(errs, fmt.Errorf("health check port %d of %s/%s: %w", port, c.Namespace, c.Name, err))
			continue
		}
		hp := &healthPort{check: c}
		hp.srv = &http.Server{Handler: h.handler(port), ReadHeaderTimeout: 5 * time.Second}
		h.servers[port] = hp
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			if err := hp.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				h.log.Error(err, "health check server stopped", "port", port)
			}
		}()
	}
	return errors.Join(errs...)
}

// Ports returns the ports being served, sorted.
func (h *HealthServer) Ports() []uint16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]uint16, 0, len(h.servers))
	for p := range h.servers {
		out = append(out, p)
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}

// Close stops every listener and waits for the servers to end.
func (h *HealthServer) Close() error {
	h.mu.Lock()
	h.closed = true
	for port, hp := range h.servers {
		_ = hp.srv.Close()
		delete(h.servers, port)
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

func (h *HealthServer) handler(port uint16) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		hp, ok := h.servers[port]
		var c HealthCheck
		if ok {
			c = hp.check
		}
		h.mu.Unlock()
		if !ok {
			http.Error(w, "no service", http.StatusServiceUnavailable)
			return
		}
		healthy := h.healthy()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(c.LocalEndpoints))
		if c.LocalEndpoints > 0 && healthy {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		// The body kube-proxy writes, byte for byte.
		_, _ = fmt.Fprintf(w, "{\n\t\"service\": {\n\t\t\"namespace\": %q,\n\t\t\"name\": %q\n\t},\n\t\"localEndpoints\": %d,\n\t\"serviceProxyHealthy\": %v\n}",
			c.Namespace, c.Name, c.LocalEndpoints, healthy)
	})
}
