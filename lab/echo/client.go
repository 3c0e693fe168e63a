package echo

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// The client side, for tests that need a request made from inside a pod
// of the echo image (kubectl exec): it has no shell and no other tools.

// Fetch GETs url (HTTPS without verifying the certificate: the tests ask
// whether a Service answers, not whom to trust) and writes the status line
// and the body to w. A status other than 200 is an error.
func Fetch(ctx context.Context, w io.Writer, url string) error {
	hc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // see above
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := fmt.Fprintln(w, resp.Status); err != nil {
		return err
	}
	if _, err := io.Copy(w, io.LimitReader(resp.Body, 1<<16)); err != nil {
		return fmt.Errorf("GET %s: body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	return nil
}

// Resolve looks name up with the system's resolver (a pod's: its
// Service DNS) and writes one address a line.
func Resolve(ctx context.Context, w io.Writer, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if _, err := fmt.Fprintln(w, a); err != nil {
			return err
		}
	}
	return nil
}
