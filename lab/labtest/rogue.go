package labtest

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"

	"github.com/beaconlb/beacon/lab"
)

// Rogue is a host on the lab's LAN switch that is not part of the
// cluster: a network namespace with one interface (lab.LANInterface) on
// the bridge. Address-conflict tests make it hold addresses of Beacon's
// pools. Its name is a lab name, so `beacon-lab down` removes leftovers.
type Rogue struct {
	// Netns is its network namespace.
	Netns string
	MAC   net.HardwareAddr
	port  string
}

// StartRogue plugs a rogue host named lab-<name> into the LAN switch with
// the given MAC, holding addrs, and removes it when the test ends. The
// kernel answers ARP and Neighbor Solicitations for its addresses, like
// any host's; DAD is off so its IPv6 addresses work at once.
func StartRogue(t testing.TB, name string, mac net.HardwareAddr, addrs ...netip.Addr) *Rogue {
	t.Helper()
	r := &Rogue{Netns: lab.Netns("lab-" + name), MAC: mac, port: "lab-" + name}
	if len(r.port) > 15 {
		t.Fatalf("rogue name %q too long for an interface name", name)
	}
	sw := lab.Netns(lab.LAN)
	t.Cleanup(func() {
		_ = exec.Command("ip", "-n", sw, "link", "del", r.port).Run()
		_ = exec.Command("ip", "netns", "del", r.Netns).Run()
	})
	steps := [][]string{
		{"netns", "add", r.Netns},
		{"-n", sw, "link", "add", r.port, "type", "veth", "peer", "name", lab.LANInterface, "netns", r.Netns},
		{"-n", r.Netns, "link", "set", lab.LANInterface, "address", mac.String()},
		{"-n", sw, "link", "set", r.port, "master", lab.BridgeName, "up"},
		{"-n", r.Netns, "link", "set", "lo", "up"},
		{"-n", r.Netns, "link", "set", lab.LANInterface, "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("rogue %s: ip %s: %v: %s", name, strings.Join(s, " "), err, out)
		}
	}
	for _, ip := range addrs {
		r.AddAddr(t, ip)
	}
	return r
}

// AddAddr gives the rogue another address on the LAN.
func (r *Rogue) AddAddr(t testing.TB, ip netip.Addr) {
	t.Helper()
	bits := lab.LANv4.Bits()
	args := []string{"-n", r.Netns, "addr", "add", netip.PrefixFrom(ip, bits).String(), "dev", lab.LANInterface}
	if ip.Is6() {
		args[4] = netip.PrefixFrom(ip, lab.LANv6.Bits()).String()
		args = append(args, "nodad")
	}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("rogue %s: add %s: %v: %s", r.Netns, ip, err, out)
	}
}

// GratuitousARP makes the rogue announce ip as its own, as a host taking
// an address over does (see GratuitousARP).
func (r *Rogue) GratuitousARP(ctx context.Context, ip netip.Addr, count int) error {
	return GratuitousARP(ctx, filepath.Join(lab.NetnsDir, r.Netns), lab.LANInterface, r.MAC, ip, count)
}

// GratuitousARP sends, from the interface ifname in the network namespace
// at netnsPath, count broadcast ARP Announcements of ip from mac (sender =
// target = ip), 100 ms apart, in plain frames (no padding).
func GratuitousARP(ctx context.Context, netnsPath, ifname string, mac net.HardwareAddr, ip netip.Addr, count int) error {
	p, err := arp.NewPacket(arp.OperationRequest, mac, ip, net.HardwareAddr{0, 0, 0, 0, 0, 0}, ip)
	if err != nil {
		return fmt.Errorf("gratuitous ARP: %w", err)
	}
	body, err := p.MarshalBinary()
	if err != nil {
		return fmt.Errorf("gratuitous ARP: %w", err)
	}
	frame := make([]byte, 14, 14+len(body))
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], mac)
	binary.BigEndian.PutUint16(frame[12:14], 0x0806)
	frame = append(frame, body...)
	return lab.InNetnsPath(netnsPath, func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err := packet.Listen(ifi, packet.Raw, 0x0806, nil)
		if err != nil {
			return fmt.Errorf("packet socket in %s: %w", netnsPath, err)
		}
		defer func() { _ = c.Close() }()
		for i := range count {
			if i > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(100 * time.Millisecond):
				}
			}
			if _, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}); err != nil {
				return fmt.Errorf("send gratuitous ARP: %w", err)
			}
		}
		return nil
	})
}
