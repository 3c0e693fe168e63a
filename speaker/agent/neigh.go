package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/beaconlb/beacon/internal/nldump"
)

// ForgetNeighbours deletes the node's neighbour entries that Beacon leaves
// behind: those resolving to one of its own interfaces' MACs, and those of
// an address forget reports (nil: none), whatever MAC they hold. The kernel
// learns the first kind when the node itself talks to an address its
// responder answered for, and the second when the node forwards to a
// Service address packets its dataplane did not translate (a stray TCP
// segment that conntrack finds INVALID goes out untranslated, resolving the
// address by ARP or NDP to whichever node announces it). Once Beacon is
// gone both are stale; no other entry ever holds the node's own MAC. Static
// entries an administrator made are kept.
func ForgetNeighbours(forget func(netip.Addr) bool) (int, error) {
	links, err := nldump.Retry(netlink.LinkList)
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
		neighs, err := nldump.Retry(func() ([]netlink.Neigh, error) { return netlink.NeighList(l.Attrs().Index, 0) })
		if err != nil {
			errs = append(errs, fmt.Errorf("neighbours of %s: %w", l.Attrs().Name, err))
			continue
		}
		for _, e := range neighs {
			if e.State&netlink.NUD_PERMANENT != 0 {
				continue
			}
			ip, _ := netip.AddrFromSlice(e.IP)
			if !bytes.Equal(e.HardwareAddr, mac) && (forget == nil || !forget(ip.Unmap())) {
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
