// Package version says which build of Beacon is running: the --version flag
// of the daemons and their beacon_build_info metric both read it.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Version and Commit are set at link time, for example
//
//	go build -ldflags "-X github.com/beaconlb/beacon/internal/version.Version=v0.1.0
//	                   -X github.com/beaconlb/beacon/internal/version.Commit=$(git rev-parse HEAD)"
//
// An unset Commit falls back to the VCS revision the Go toolchain stamped,
// if any.
var (
	Version = "dev"
	Commit  = ""
)

// Info is one build's identity.
type Info struct {
	Version, Commit, GoVersion string
}

// Get returns the running build's identity.
func Get() Info {
	i := Info{Version: Version, Commit: Commit, GoVersion: runtime.Version()}
	if i.Commit == "" {
		i.Commit = vcsRevision()
	}
	return i
}

func vcsRevision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}

// String is the --version line of the daemon called name.
func (i Info) String(name string) string {
	c := i.Commit
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("%s %s (commit %s, %s)", name, i.Version, c, i.GoVersion)
}

// Collector is the beacon_build_info gauge: always 1, with the build's
// identity as labels (join on it to tell builds apart during a rollout).
func (i Info) Collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "beacon_build_info",
		Help:        "Always 1; labels say which build of Beacon is running.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion},
	}, func() float64 { return 1 })
}
