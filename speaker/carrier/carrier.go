// Package carrier watches the node's interfaces for lost carrier (a pulled
// cable, a switch port gone down) and reports them, with their connected
// prefixes, so that the member layer tells every speaker and the election
// moves addresses away from a node that can no longer reach the LAN through
// that interface, although its heartbeats still flow on another one.
package carrier

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/beaconlb/beacon/internal/nldump"
	"github.com/beaconlb/beacon/speaker/member"
)

// Iface is what Down needs to know about an interface.
type Iface struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
	// Up is the administrative state (IFF_UP), LowerUp the carrier
	// (IFF_LOWER_UP), OperDown the operational state "down".
	Up, LowerUp, OperDown, Loopback bool
	Prefixes                        []netip.Prefix
}

// Down returns the interfaces without carrier, sorted by name: those with
// connected prefixes first, as they matter to on-link announcements, and at
// most member.MaxLinks of them (a heartbeat carries no more). Administrative
// down counts too: such an interface answers nothing either.
func Down(ifaces []Iface) []member.Link {
	var out []member.Link
	for _, i := range ifaces {
		if i.Loopback || (i.Up && i.LowerUp) {
			continue
		}
		ps := slices.Clone(i.Prefixes)
		slices.SortFunc(ps, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
		if len(ps) > member.MaxPrefixes {
			ps = ps[:member.MaxPrefixes]
		}
		out = append(out, member.Link{Name: i.Name, Prefixes: ps})
	}
	slices.SortFunc(out, func(a, b member.Link) int {
		if (len(a.Prefixes) == 0) != (len(b.Prefixes) == 0) {
			if len(a.Prefixes) > 0 {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) > member.MaxLinks {
		out = out[:member.MaxLinks]
	}
	slices.SortFunc(out, func(a, b member.Link) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// PollInterval bounds how late a lost carrier is seen. The kernel sends
// the link notification through its linkwatch queue, which holds
// carrier-down events of most devices for up to a second after any other
// link event on the machine, while a link dump shows the carrier at once.
const PollInterval = 100 * time.Millisecond

// Watcher reports the interfaces without carrier to Set whenever they
// change. Create it with New; Run owns its goroutine.
type Watcher struct {
	log logr.Logger
	set func([]member.Link)
}

// New returns a Watcher that calls set (member.Member.SetNoCarrier); it
// starts nothing.
func New(log logr.Logger, set func([]member.Link)) *Watcher {
	return &Watcher{log: log, set: set}
}

// Run subscribes to link changes and also reads the links every
// PollInterval; each time it reads the whole state (level triggered: a
// missed event cannot leave a stale view) and calls set when it changed,
// until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	subErr := make(chan error, 1)
	if err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case subErr <- err:
			default:
			}
		},
	}); err != nil {
		return fmt.Errorf("carrier: subscribe to link changes: %w", err)
	}
	var last []member.Link
	refresh := func() {
		ifaces, err := List()
		if err != nil {
			w.log.Error(err, "cannot list interfaces")
			return
		}
		down := Down(ifaces)
		if last != nil && slices.EqualFunc(last, down, func(a, b member.Link) bool {
			return a.Name == b.Name && slices.Equal(a.Prefixes, b.Prefixes)
		}) {
			return
		}
		if len(down) > 0 || last != nil {
			w.log.Info("interfaces without carrier", "interfaces", names(down))
		}
		last = down
		if last == nil {
			last = []member.Link{}
		}
		w.set(down)
	}
	refresh()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			refresh()
		case err := <-subErr:
			return fmt.Errorf("carrier: link subscription: %w", err)
		case _, ok := <-updates:
			if !ok {
				return fmt.Errorf("carrier: link subscription closed")
			}
			// Coalesce a burst into one read.
			for drained := false; !drained; {
				select {
				case <-updates:
				default:
					drained = true
				}
			}
			refresh()
		}
	}
}

func names(ls []member.Link) string {
	var s []string
	for _, l := range ls {
		s = append(s, l.Name)
	}
	return strings.Join(s, ",")
}

// List reads every interface and its connected prefixes (link-local ones
// left out: no pool address is on them) through netlink.
func List() ([]Iface, error) { return nldump.Retry(list) }

func list() ([]Iface, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	byIndex := map[int][]netip.Prefix{}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || ip.Unmap().IsLinkLocalUnicast() {
			continue
		}
		bits, _ := a.Mask.Size()
		byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], netip.PrefixFrom(ip.Unmap(), bits))
	}
	out := make([]Iface, 0, len(links))
	for _, l := range links {
		at := l.Attrs()
		out = append(out, Iface{
			Name:     at.Name,
			Index:    at.Index,
			MAC:      at.HardwareAddr,
			Up:       at.Flags&net.FlagUp != 0,
			LowerUp:  at.RawFlags&unix.IFF_LOWER_UP != 0,
			OperDown: at.OperState == netlink.OperDown,
			Loopback: at.Flags&net.FlagLoopback != 0,
			Prefixes: byIndex[at.Index],
		})
	}
	return out, nil
}
