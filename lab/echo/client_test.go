package echo

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFetch(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(`{"major":"1"}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := Fetch(context.Background(), &out, srv.URL+"/version"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.HasPrefix(got, "200 OK\n") || !strings.Contains(got, `"major":"1"`) {
		t.Errorf("output %q", got)
	}
	out.Reset()
	if err := Fetch(context.Background(), &out, srv.URL+"/nothing"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a 404: error %v, want one naming the status", err)
	}
}

func TestResolve(t *testing.T) {
	var out bytes.Buffer
	if err := Resolve(context.Background(), &out, "localhost"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "127.0.0.1") && !strings.Contains(out.String(), "::1") {
		t.Errorf("localhost resolved to %q", out.String())
	}
}
