// Package echo is the lab pods' server: on one port it answers HTTP (any
// path, TCP) and UDP datagrams, over IPv4 and IPv6, with one line naming the
// pod, its node and the client address it saw, so tests can check which
// backend answered and whether the client's source IP was preserved:
//
//	pod=n1-p1 node=node1 client=198.51.100.100:41234
//
// GET /healthz answers "ok". The server binds every socket before serving,
// so one accepted connection means all four are ready.
package echo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Reply is one parsed answer line.
type Reply struct {
	Pod, Node string
	Client    netip.AddrPort
}

// String formats the answer line, with a trailing newline.
func (r Reply) String() string {
	return fmt.Sprintf("pod=%s node=%s client=%s\n", r.Pod, r.Node, r.Client)
}

// ParseReply parses an answer line (surrounding space ignored; unknown
// fields are skipped so the format can grow).
func ParseReply(s string) (Reply, error) {
	var r Reply
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Reply{}, fmt.Errorf("echo: malformed field %q in %q", f, s)
		}
		switch k {
		case "pod":
			r.Pod = v
		case "node":
			r.Node = v
		case "client":
			ap, err := netip.ParseAddrPort(v)
			if err != nil {
				return Reply{}, fmt.Errorf("echo: client in %q: %w", s, err)
			}
			r.Client = ap
		}
	}
	if r.Pod == "" || !r.Client.IsValid() {
		return Reply{}, fmt.Errorf("echo: incomplete reply %q", s)
	}
	return r, nil
}

// Server answers on Port (TCP and UDP, IPv4 and IPv6).
type Server struct {
	Pod, Node string
	Port      int
	// Listen and ListenPacket open sockets; nil means net.Listen and
	// net.ListenPacket (a seam for tests).
	Listen       func(network, addr string) (net.Listener, error)
	ListenPacket func(network, addr string) (net.PacketConn, error)
}

func (s *Server) reply(client netip.AddrPort) Reply {
	return Reply{Pod: s.Pod, Node: s.Node, Client: netip.AddrPortFrom(client.Addr().Unmap(), client.Port())}
}

// Handler is the HTTP side: /healthz answers "ok", every other path the
// reply line.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(s.reply(ap).String()))
	})
	return mux
}

// Run binds tcp4, tcp6, udp4 and udp6 on the port and serves until ctx
// ends. A bind failure is returned at once.
func (s *Server) Run(ctx context.Context) error {
	listen, listenPacket := s.Listen, s.ListenPacket
	if listen == nil {
		listen = net.Listen
	}
	if listenPacket == nil {
		listenPacket = net.ListenPacket
	}
	port := strconv.Itoa(s.Port)
	var lns []net.Listener
	var pcs []net.PacketConn
	closeAll := func() {
		for _, l := range lns {
			_ = l.Close()
		}
		for _, c := range pcs {
			_ = c.Close()
		}
	}
	for _, a := range [][2]string{{"tcp4", "0.0.0.0"}, {"tcp6", "::"}} {
		l, err := listen(a[0], net.JoinHostPort(a[1], port))
		if err != nil {
			closeAll()
			return fmt.Errorf("echo: listen %s: %w", a[0], err)
		}
		lns = append(lns, l)
	}
	for _, a := range [][2]string{{"udp4", "0.0.0.0"}, {"udp6", "::"}} {
		c, err := listenPacket(a[0], net.JoinHostPort(a[1], port))
		if err != nil {
			closeAll()
			return fmt.Errorf("echo: listen %s: %w", a[0], err)
		}
		pcs = append(pcs, c)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	errc := make(chan error, len(lns)+len(pcs))
	for _, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	for _, c := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveUDP(c); err != nil && ctx.Err() == nil {
				errc <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	closeAll()
	wg.Wait()
	return err
}

func (s *Server) serveUDP(c net.PacketConn) error {
	buf := make([]byte, 65535)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		_, _ = c.WriteTo([]byte(s.reply(ua.AddrPort()).String()), from)
	}
}
