package cli

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// counting counts the attempts that reach the network.
type counting struct {
	n    atomic.Int32
	next http.RoundTripper
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freePort returns an address nothing listens on (connections are refused).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func serve(t *testing.T, addr string, h http.HandlerFunc) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

func newWait() (*counting, *http.Client) {
	c := &counting{next: &http.Transport{DisableKeepAlives: true}}
	return c, &http.Client{Transport: &waitTransport{next: c, every: 10 * time.Millisecond}}
}

// A GET (an informer's list or watch) waits while the server is down and
// gets its answer once the server is back.
func TestWaitTransportWaitsOutAnOutage(t *testing.T) {
	addr := freePort(t)
	c, hc := newWait()
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := hc.Get("http://" + addr + "/api/v1/services?watch=true")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		done <- result{body: string(b), err: err}
	}()
	waitFor(t, "a few refused attempts", func() bool { return c.n.Load() >= 3 })
	select {
	case r := <-done:
		t.Fatalf("the request returned while the server was down: %+v", r)
	default:
	}
	serve(t, addr, func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "back") })
	select {
	case r := <-done:
		if r.err != nil || r.body != "back" {
			t.Fatalf("got %q, %v; want the answer of the returned server", r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not complete after the server returned")
	}
}

func TestWaitTransportRetriesUnavailable(t *testing.T) {
	addr := freePort(t)
	var calls atomic.Int32
	serve(t, addr, func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready")
	})
	_, hc := newWait()
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || calls.Load() != 3 {
		t.Fatalf("status %d after %d calls, want 200 after 3", resp.StatusCode, calls.Load())
	}
}

// Writes, and answers about the request itself, are never retried.
func TestWaitTransportPassesOtherOutcomes(t *testing.T) {
	addr := freePort(t)
	c, hc := newWait()
	_, err := hc.Post("http://"+addr+"/", "text/plain", strings.NewReader("x"))
	if err == nil || c.n.Load() != 1 {
		t.Fatalf("POST to a down server: err %v after %d attempts, want an error after 1", err, c.n.Load())
	}
	serve(t, addr, func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })
	c.n.Store(0)
	resp, err := hc.Get("http://" + addr + "/missing")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || c.n.Load() != 1 {
		t.Fatalf("404: status %d after %d attempts, want 404 after 1", resp.StatusCode, c.n.Load())
	}
}

// A waiting request ends with its context (an informer that stops).
func TestWaitTransportStopsWithContext(t *testing.T) {
	addr := freePort(t)
	c, hc := newWait()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "a few refused attempts", func() bool { return c.n.Load() >= 2 })
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled request succeeded")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want the refusal or the cancellation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a cancelled request kept waiting")
	}
}

func TestUnreachable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: errors.New("i/o timeout")}, true},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, true},
		{io.ErrUnexpectedEOF, true},
		{errors.New("x509: certificate signed by unknown authority"), false},
		{context.DeadlineExceeded, false},
	} {
		if got := unreachable(tc.err); got != tc.want {
			t.Errorf("unreachable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
