package version

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/metricstest"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		info Info
		want string
	}{
		{Info{"v0.1.0", "abc123", "go1.26.8"}, "beacon-speaker v0.1.0 (commit abc123, go1.26.8)"},
		{Info{"dev", "", "go1.26.8"}, "beacon-speaker dev (commit unknown, go1.26.8)"},
	} {
		if got := tc.info.String("beacon-speaker"); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(Info{"v0.1.0", "abc123", "go1.26.8"}.Collector()); err != nil {
		t.Fatal(err)
	}
	m := metricstest.Find(t, reg, "beacon_build_info", map[string]string{"version": "v0.1.0", "commit": "abc123", "goversion": "go1.26.8"})
	if m == nil || metricstest.Value(m) != 1 {
		t.Fatalf("beacon_build_info{version=v0.1.0,commit=abc123,goversion=go1.26.8} = %v, want a series of value 1", m)
	}
}

func TestGetUsesLinkTimeValues(t *testing.T) {
	defer func(v, c string) { Version, Commit = v, c }(Version, Commit)
	Version, Commit = "v9.9.9", "feed"
	if got := Get(); got.Version != "v9.9.9" || got.Commit != "feed" {
		t.Errorf("Get() = %+v, want the link-time Version and Commit", got)
	}
}
