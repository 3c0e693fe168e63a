package scale

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// counts is what one client (one User-Agent) sent through the proxy.
type counts struct {
	Requests   int            // every request, watches included
	ByVerb     map[string]int // "watch", "list", "get", "create", "update", "patch", "delete"
	OpenWatch  int            // watches open now
	WatchBytes int64          // bytes streamed to the client by watches
}

// countingProxy forwards plain HTTP to the API server with the lab's
// credentials and counts each client's requests by verb.
type countingProxy struct {
	srv *http.Server
	url string

	mu  sync.Mutex
	per map[string]*counts
}

// startProxy serves on ln (a listener the speakers can reach).
func startProxy(ln net.Listener, cfg *rest.Config) (*countingProxy, error) {
	target, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("api server url: %w", err)
	}
	tr, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr
	rp.FlushInterval = -1 // watches stream
	p := &countingProxy{url: "http://" + ln.Addr().String(), per: map[string]*counts{}}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent := r.UserAgent()
		verb := requestVerb(r)
		p.mu.Lock()
		c := p.per[agent]
		if c == nil {
			c = &counts{ByVerb: map[string]int{}}
			p.per[agent] = c
		}
		c.Requests++
		c.ByVerb[verb]++
		if verb == "watch" {
			c.OpenWatch++
		}
		p.mu.Unlock()
		if verb != "watch" {
			rp.ServeHTTP(w, r)
			return
		}
		rp.ServeHTTP(&countingWriter{ResponseWriter: w, add: func(n int) {
			p.mu.Lock()
			c.WatchBytes += int64(n)
			p.mu.Unlock()
		}}, r)
		p.mu.Lock()
		c.OpenWatch--
		p.mu.Unlock()
	})}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// snapshot copies the counts of agents starting with prefix.
func (p *countingProxy) snapshot(prefix string) map[string]counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]counts{}
	for a, c := range p.per {
		if !strings.HasPrefix(a, prefix) {
			continue
		}
		cp := *c
		cp.ByVerb = map[string]int{}
		for k, v := range c.ByVerb {
			cp.ByVerb[k] = v
		}
		out[a] = cp
	}
	return out
}

// kubeconfig writes a kubeconfig that points at the proxy, with no
// credentials (the proxy adds them).
func (p *countingProxy) kubeconfig(dir string) (string, error) {
	path := filepath.Join(dir, "kubeconfig-counted")
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: counted, cluster: {server: %q}}]
users: [{name: counted, user: {}}]
contexts: [{name: counted, context: {cluster: counted, user: counted}}]
current-context: counted
`, p.url)
	return path, os.WriteFile(path, []byte(text), 0o600)
}

func (p *countingProxy) close() { _ = p.srv.Close() }

// requestVerb names a request as the API server's audit log would.
func requestVerb(r *http.Request) string {
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		if q.Get("watch") == "true" || q.Get("watch") == "1" {
			return "watch"
		}
		// A collection path has an even number of segments after the
		// group version (…/namespaces/ns/services) or ends in the
		// resource; a named object has one more.
		if isCollection(r.URL.Path) {
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(r.Method)
}

// isCollection reports whether an API path names a collection.
func isCollection(path string) bool {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	// /api/v1/... or /apis/group/version/...
	rest := segs
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		rest = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		rest = segs[3:]
	default:
		return false
	}
	if len(rest) >= 2 && rest[0] == "namespaces" && len(rest) != 2 {
		rest = rest[2:] // namespaced resource (a bare namespace is a get)
	}
	return len(rest) == 1
}

// countingWriter reports every write of a watch as it streams.
type countingWriter struct {
	http.ResponseWriter
	add func(int)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.add(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
