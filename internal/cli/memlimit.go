package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryMax is where cgroup v2 shows the container's memory limit.
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// memoryLimitShare is the part of the container's limit the Go heap may
// use before the collector works harder: the rest is the binary's pages,
// stacks and what the kernel charges the container besides.
const memoryLimitShare = 0.9

// SetMemoryLimit gives the Go runtime a soft memory limit of 90% of the
// container's, unless GOMEMLIMIT is set. Without one the heap may grow to
// twice what is live (GOGC=100) whatever the limit is, and the kernel
// kills the daemon where a collection would have kept it under. It returns
// the limit set, 0 when none.
func SetMemoryLimit() (int64, error) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, nil
	}
	b, err := os.ReadFile(cgroupMemoryMax)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil // not in a cgroup v2 container
	}
	if err != nil {
		return 0, fmt.Errorf("memory limit: %w", err)
	}
	limit, err := softLimit(string(b))
	if err != nil || limit == 0 {
		return 0, err
	}
	debug.SetMemoryLimit(limit)
	return limit, nil
}

// softLimit reads memory.max ("max" or bytes) and returns the soft limit
// for it, 0 for none.
func softLimit(memoryMax string) (int64, error) {
	s := strings.TrimSpace(memoryMax)
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("memory limit: %s holds %q", cgroupMemoryMax, s)
	}
	return int64(float64(n) * memoryLimitShare), nil
}
