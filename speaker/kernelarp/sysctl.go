package kernelarp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// procConf is where the IPv4 interface settings of the reading thread's
// network namespace are.
const procConf = "/proc/sys/net/ipv4/conf"

// ReadARPIgnore reads the effective arp_ignore of each interface named.
// An interface whose value cannot be read (gone since it was listed) is
// left out, its error joined into the one returned.
func ReadARPIgnore(ifaces []string) (map[string]int, error) {
	all, err := readInt(filepath.Join(procConf, "all", "arp_ignore"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(ifaces))
	var errs []error
	for _, i := range ifaces {
		v, err := readInt(filepath.Join(procConf, i, "arp_ignore"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[i] = Effective(all, v)
	}
	return out, errors.Join(errs...)
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("kernelarp: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("kernelarp: parse %s: %w", path, err)
	}
	return v, nil
}
