package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Conn is a raw link-layer socket on one interface: whole Ethernet frames
// in and out. ReadFrame blocks until a frame arrives or Close is called.
type Conn interface {
	ReadFrame(b []byte) (int, error)
	WriteFrame(frame []byte) error
	Close() error
}

// Groups manages the interface's IPv6 multicast memberships. Joining a
// solicited-node group makes the NIC accept Neighbor Solicitations for an
// address the kernel does not own, and makes the kernel send MLD reports so
// that MLD-snooping switches forward them to this port.
type Groups interface {
	Join(group netip.Addr) error
	Leave(group netip.Addr) error
	Close() error
}

// Link is the I/O side of one interface.
type Link struct {
	// Name of the interface, for logs and metrics.
	Name string
	// Index is the interface's index when the sockets were opened: an
	// interface of the same name made later (a NIC plugged again) has
	// another, and these sockets stay bound to the old one.
	Index int
	// MAC answers and announcements carry.
	MAC net.HardwareAddr
	// ARP carries ARP frames; nil when IPv4 is not served.
	ARP Conn
	// NDP carries Neighbor Solicitations in and Advertisements out; nil when
	// IPv6 is not served. It needs Groups.
	NDP    Conn
	Groups Groups
}

// Close closes every socket of the link.
func (l *Link) Close() error {
	var errs []error
	for _, c := range []interface{ Close() error }{l.ARP, l.NDP, l.Groups} {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close %s: %w", l.Name, err)
	}
	return nil
}
