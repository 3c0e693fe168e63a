package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// sysctls per namespace role. Set before any link is created so that new
// links inherit the "default" values.
var (
	// Every station and pod: IPv6 usable at once (no DAD) and no reverse
	// path filter (later tests use asymmetric paths on purpose).
	stationSysctls = [][2]string{
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv6.conf.all.accept_ra", "0"},
		{"net.ipv6.conf.default.accept_ra", "0"},
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
	}
	// Nodes and the router forward.
	routerSysctls = [][2]string{
		{"net.ipv4.ip_forward", "1"},
		{"net.ipv6.conf.all.forwarding", "1"},
	}
	// The router spreads flows over ECMP next hops by the 5-tuple in their
	// headers, as a hardware router does (the default hashes addresses
	// only, so every connection from client-ext to one service address
	// would take the same node). Not policy 1: it takes the hash a packet
	// already carries, and a packet from a socket in another namespace
	// carries that socket's random hash, which TCP changes when it
	// retransmits, so a connection would move between nodes mid-stream;
	// policy 3 with these fields always hashes the headers (source and
	// destination address, protocol, source and destination port).
	ecmpSysctls = [][2]string{
		{"net.ipv4.fib_multipath_hash_policy", "3"},
		{"net.ipv4.fib_multipath_hash_fields", "0x0037"},
		{"net.ipv6.fib_multipath_hash_policy", "3"},
		{"net.ipv6.fib_multipath_hash_fields", "0x0037"},
	}
	// The switch is pure layer 2: its ports must not speak IPv6 (MLD, RS).
	switchSysctls = [][2]string{
		{"net.ipv6.conf.all.disable_ipv6", "1"},
		{"net.ipv6.conf.default.disable_ipv6", "1"},
	}
)

// bridgeMAC is the switch's own (unused) address, fixed so that it never
// changes with its ports.
var bridgeMAC = net.HardwareAddr{0x02, 0xbc, 0xff, 0x00, 0x00, 0x00}

// network builds the lab's namespaces and links with netlink handles opened
// in each namespace (the calling thread never changes namespace, except for
// sysctls, which go through InNetns).
type network struct {
	topo    *Topology
	handles map[string]*netlink.Handle
	fds     map[string]netns.NsHandle
}

func (n *network) close() {
	for _, h := range n.handles {
		h.Close()
	}
	for _, fd := range n.fds {
		_ = fd.Close()
	}
}

// buildNetwork creates every namespace, link, address and route of the
// topology. On error the caller tears the lab down (DownAll).
func buildNetwork(t *Topology) error {
	n := &network{topo: t, handles: map[string]*netlink.Handle{}, fds: map[string]netns.NsHandle{}}
	defer n.close()
	for _, ns := range t.Namespaces() {
		if err := n.addNamespace(ns); err != nil {
			return err
		}
	}
	if err := n.buildSwitch(Netns(LAN)); err != nil {
		return err
	}
	for _, s := range t.Stations() {
		if err := n.plugStation(s); err != nil {
			return err
		}
	}
	if t.Heartbeat {
		if err := n.buildSwitch(Netns(HeartbeatSwitch)); err != nil {
			return err
		}
		for _, nd := range t.Nodes {
			if err := n.plugHeartbeat(nd); err != nil {
				return err
			}
		}
	}
	for _, nd := range t.Nodes {
		if err := n.setSysctls(nd.Netns, routerSysctls); err != nil {
			return err
		}
	}
	if err := n.setSysctls(t.Router.Netns, append(append([][2]string(nil), routerSysctls...), ecmpSysctls...)); err != nil {
		return err
	}
	if err := n.plugClientExt(); err != nil {
		return err
	}
	for _, p := range t.Pods {
		if err := n.plugPod(p); err != nil {
			return err
		}
	}
	for _, s := range t.Stations() {
		for _, r := range append(t.LANRoutes(s.Name), t.ExternalRoutes(s.Name)...) {
			if err := n.addRoute(s.Netns, r); err != nil {
				return err
			}
		}
	}
	for _, r := range t.ExternalRoutes(t.ClientExt.Name) {
		if err := n.addRoute(t.ClientExt.Netns, r); err != nil {
			return err
		}
	}
	return nil
}

// plugClientExt links client-ext to the router with a veth: the external
// link, whose only other station is the router.
func (n *network) plugClientExt() error {
	t := n.topo
	rh := n.handles[t.Router.Netns]
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: RouterExtInterface, HardwareAddr: t.RouterExtMAC},
		PeerName:         ClientExtInterface,
		PeerHardwareAddr: t.ClientExt.MAC,
		PeerNamespace:    netlink.NsFd(n.fds[t.ClientExt.Netns]),
	}
	if err := rh.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: veth %s/%s<->%s/%s: %w", t.Router.Netns, RouterExtInterface, t.ClientExt.Netns, ClientExtInterface, err)
	}
	for _, end := range []struct {
		ns, link     string
		addr4, addr6 netip.Addr
	}{
		{t.Router.Netns, RouterExtInterface, t.RouterExtV4, t.RouterExtV6},
		{t.ClientExt.Netns, ClientExtInterface, t.ClientExt.IPv4, t.ClientExt.IPv6},
	} {
		h := n.handles[end.ns]
		link, err := h.LinkByName(end.link)
		if err != nil {
			return fmt.Errorf("lab: %s/%s: %w", end.ns, end.link, err)
		}
		for _, a := range []netip.Prefix{
			netip.PrefixFrom(end.addr4, ExternalV4.Bits()),
			netip.PrefixFrom(end.addr6, ExternalV6.Bits()),
		} {
			if err := addAddr(h, link, a); err != nil {
				return fmt.Errorf("lab: %s: %w", end.ns, err)
			}
		}
		if err := h.LinkSetUp(link); err != nil {
			return fmt.Errorf("lab: %s/%s up: %w", end.ns, end.link, err)
		}
	}
	return nil
}

func (n *network) addNamespace(ns string) error {
	if err := createNetns(ns); err != nil {
		return err
	}
	fd, err := netns.GetFromPath(filepath.Join(NetnsDir, ns))
	if err != nil {
		return fmt.Errorf("lab: open netns %s: %w", ns, err)
	}
	n.fds[ns] = fd
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		return fmt.Errorf("lab: netlink in %s: %w", ns, err)
	}
	n.handles[ns] = h
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lab: %s: lo: %w", ns, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lab: %s: lo up: %w", ns, err)
	}
	if ns == Netns(LAN) || ns == Netns(HeartbeatSwitch) {
		return n.setSysctls(ns, switchSysctls)
	}
	return n.setSysctls(ns, stationSysctls)
}

func (n *network) setSysctls(ns string, kv [][2]string) error {
	return InNetns(ns, func() error {
		for _, s := range kv {
			if err := writeSysctl(s[0], s[1]); err != nil {
				return fmt.Errorf("%s: %w", ns, err)
			}
		}
		return nil
	})
}

func (n *network) buildSwitch(ns string) error {
	h := n.handles[ns]
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: BridgeName, HardwareAddr: bridgeMAC}, MulticastSnooping: &off}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("lab: add bridge: %w", err)
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("lab: bridge up: %w", err)
	}
	return nil
}

// plugStation links a station's eth0 to a switch port named after it.
func (n *network) plugStation(s Station) error {
	return n.plugPort(Netns(LAN), s.Name, s.Netns, LANInterface, s.MAC,
		netip.PrefixFrom(s.IPv4, LANv4.Bits()), netip.PrefixFrom(s.IPv6, LANv6.Bits()))
}

// plugHeartbeat links a node's HeartbeatInterface to a port of the
// heartbeat switch named after it.
func (n *network) plugHeartbeat(nd Node) error {
	return n.plugPort(Netns(HeartbeatSwitch), nd.Name, nd.Netns, HeartbeatInterface, nd.HeartbeatMAC,
		netip.PrefixFrom(nd.HeartbeatIPv4, HeartbeatV4.Bits()))
}

// plugPort links interface iface (with that MAC and those addresses) of
// namespace ns to a new port, named port, of the bridge in switch namespace
// sw.
func (n *network) plugPort(sw, port, ns, iface string, mac net.HardwareAddr, addrs ...netip.Prefix) error {
	swh := n.handles[sw]
	br, err := swh.LinkByName(BridgeName)
	if err != nil {
		return fmt.Errorf("lab: bridge in %s: %w", sw, err)
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: port, MasterIndex: br.Attrs().Index},
		PeerName:         iface,
		PeerHardwareAddr: mac,
		PeerNamespace:    netlink.NsFd(n.fds[ns]),
	}
	if err := swh.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: veth %s/%s<->%s/%s: %w", sw, port, ns, iface, err)
	}
	pl, err := swh.LinkByName(port)
	if err != nil {
		return err
	}
	if err := swh.LinkSetUp(pl); err != nil {
		return fmt.Errorf("lab: switch port %s/%s up: %w", sw, port, err)
	}
	h := n.handles[ns]
	link, err := h.LinkByName(iface)
	if err != nil {
		return fmt.Errorf("lab: %s/%s: %w", ns, iface, err)
	}
	for _, a := range addrs {
		if err := addAddr(h, link, a); err != nil {
			return fmt.Errorf("lab: %s: %w", ns, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("lab: %s/%s up: %w", ns, iface, err)
	}
	return nil
}

// plugPod links a pod to its node like a routed CNI: /32 and /128 on both
// sides, host routes on the node, a link-scope route plus default route in
// the pod.
func (n *network) plugPod(p Pod) error {
	var node *Node
	for i := range n.topo.Nodes {
		if n.topo.Nodes[i].Name == p.Node {
			node = &n.topo.Nodes[i]
		}
	}
	if node == nil {
		return fmt.Errorf("lab: pod %s: no node %s", p.Name, p.Node)
	}
	nh := n.handles[node.Netns]
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: p.NodeLink, HardwareAddr: p.NodeMAC},
		PeerName:         PodInterface,
		PeerHardwareAddr: p.MAC,
		PeerNamespace:    netlink.NsFd(n.fds[p.Netns]),
	}
	if err := nh.LinkAdd(veth); err != nil {
		return fmt.Errorf("lab: veth %s/%s<->%s: %w", node.Netns, p.NodeLink, p.Netns, err)
	}
	nl, err := nh.LinkByName(p.NodeLink)
	if err != nil {
		return err
	}
	for _, a := range []netip.Prefix{
		netip.PrefixFrom(node.GatewayV4, 32), netip.PrefixFrom(node.GatewayV6, 128),
	} {
		if err := addAddr(nh, nl, a); err != nil {
			return fmt.Errorf("lab: %s: %w", node.Netns, err)
		}
	}
	if err := nh.LinkSetUp(nl); err != nil {
		return err
	}
	for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
		if err := n.addRoute(node.Netns, Route{Dst: netip.PrefixFrom(a, a.BitLen()), Dev: p.NodeLink}); err != nil {
			return err
		}
	}

	ph := n.handles[p.Netns]
	pl, err := ph.LinkByName(PodInterface)
	if err != nil {
		return err
	}
	for _, a := range []netip.Prefix{netip.PrefixFrom(p.IPv4, 32), netip.PrefixFrom(p.IPv6, 128)} {
		if err := addAddr(ph, pl, a); err != nil {
			return fmt.Errorf("lab: %s: %w", p.Netns, err)
		}
	}
	if err := ph.LinkSetUp(pl); err != nil {
		return err
	}
	for _, gw := range []netip.Addr{node.GatewayV4, node.GatewayV6} {
		if err := n.addRoute(p.Netns, Route{Dst: netip.PrefixFrom(gw, gw.BitLen()), Dev: PodInterface}); err != nil {
			return err
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if gw.Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if err := n.addRoute(p.Netns, Route{Dst: def, Gateway: gw, Dev: PodInterface}); err != nil {
			return err
		}
	}
	return nil
}

func (n *network) addRoute(ns string, r Route) error {
	h := n.handles[ns]
	link, err := h.LinkByName(r.Dev)
	if err != nil {
		return fmt.Errorf("lab: %s: route %v: %w", ns, r.Dst, err)
	}
	rt := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.Dst)}
	if r.Gateway.IsValid() {
		rt.Gw = r.Gateway.AsSlice()
	} else {
		rt.Scope = netlink.SCOPE_LINK
	}
	if r.Dst.Bits() == 0 {
		rt.Dst = nil
		rt.Family = netlink.FAMILY_V4
		if r.Dst.Addr().Is6() {
			rt.Family = netlink.FAMILY_V6
		}
	}
	if err := h.RouteAdd(rt); err != nil {
		return fmt.Errorf("lab: %s: route %v via %v dev %s: %w", ns, r.Dst, r.Gateway, r.Dev, err)
	}
	return nil
}

func addAddr(h *netlink.Handle, link netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(link, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("address %v on %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
