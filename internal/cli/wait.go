package cli

import (
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// WaitInterval is how often an informer request retries an unreachable API
// server.
const WaitInterval = 250 * time.Millisecond

// WaitOutOutages returns a copy of cfg whose GET requests wait out an
// unreachable API server (see waitTransport): for informers' clients.
func WaitOutOutages(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &waitTransport{next: rt, every: WaitInterval} })
	return c
}

// waitTransport makes GET requests wait out an unreachable or restarting
// API server instead of failing. Informers need this: client-go's
// reflectors back off after each failed list or watch, doubling up to 30 s
// with as much again of jitter, so after an outage of a minute they would
// resync up to a minute late. A request that waits here instead resumes
// within WaitInterval of the API server's return, from the resource version
// it had. Only for clients that make nothing but list and watch requests:
// other reads would block for as long as their context allows.
type waitTransport struct {
	next  http.RoundTripper
	every time.Duration
}

func (t *waitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.Body != nil && req.Body != http.NoBody {
		return t.next.RoundTrip(req)
	}
	for {
		resp, err := t.next.RoundTrip(req)
		switch {
		case err != nil && !unreachable(err):
			return nil, err
		case err == nil && resp.StatusCode != http.StatusServiceUnavailable:
			return resp, nil
		case err == nil:
			// 503: an API server starting up, or one whose etcd is gone.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		}
		timer := time.NewTimer(t.every)
		select {
		case <-req.Context().Done():
			timer.Stop()
			if err == nil {
				err = req.Context().Err()
			}
			return nil, err
		case <-timer.C:
		}
	}
}

// unreachable reports errors that say the API server is not there (yet or
// any more), as opposed to errors about the request.
func unreachable(err error) bool {
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	case errors.As(err, &op) && op.Op == "dial":
		return true
	}
	return false
}
