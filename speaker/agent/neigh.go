package agent

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// ForgetOwnNeighbours deletes the node's neighbour entries that resolve to
// one of its own interfaces' MACs. The kernel learns such entries when the
// node itself talks to an address its responder answered for; once Beacon
// is gone they are stale leftovers, while no other entry ever holds the
// node's own MAC. Static entries an administrator made are kept.
func ForgetOwnNeighbours() (int, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list links: %w", err)
	}
	n := 0
	var errs []error
	for _, l := range links {
		mac := l.Attrs().HardwareAddr
		if len(mac) == 0 {
			continue
		}
		neighs, err := netlink.NeighList(l.Attrs().Index, 0)
		if err != nil {
			errs = append(errs, fmt.Errorf("neighbours of %s: %w", l.Attrs().Name, err))
			continue
		}
		for _, e := range neighs {
			if !bytes.Equal(e.HardwareAddr, mac) || e.State&netlink.NUD_PERMANENT != 0 {
				continue
			}
			if err := netlink.NeighDel(&e); err != nil {
				errs = append(errs, fmt.Errorf("delete neighbour %s on %s: %w", e.IP, l.Attrs().Name, err))
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}
