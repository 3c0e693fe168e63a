package lab

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
)

// Prefix starts the name of every network namespace the lab creates; the
// exact names the lab owns are those IsLabName accepts, so DownAll can find
// leftovers without touching other beacon- names.
const Prefix = "beacon-"

// Names of the lab's stations (short names; the network namespace is
// Prefix+name, see Netns).
const (
	Host      = "host"       // etcd, kube-apiserver, later the controller
	LAN       = "lan"        // the switch: a bridge and nothing else
	Router    = "router"     // FRR: BGP with every node (see router.go)
	ClientLAN = "client-lan" // a client on the node LAN
	ClientExt = "client-ext" // a client behind the router (reaches the site only through it)
	// HeartbeatSwitch is the nodes' second switch (Config.HeartbeatNetwork).
	HeartbeatSwitch = "lab-hb"
)

// Interface names inside the lab namespaces.
const (
	// LANInterface is every station's link to the LAN switch.
	LANInterface = "eth0"
	// PodInterface is a pod's link to its node.
	PodInterface = "eth0"
	// BridgeName is the switch in the lan namespace.
	BridgeName = "br0"
	// ClientExtInterface is client-ext's link to the router.
	ClientExtInterface = "eth0"
	// RouterExtInterface is the router's link to client-ext (named after
	// the station at its other end, like the switch ports).
	RouterExtInterface = ClientExt
	// HeartbeatInterface is a node's link to the heartbeat switch.
	HeartbeatInterface = "eth1"
)

// EchoPort is the TCP (HTTP) and UDP port of every pod's echo server.
const EchoPort = 5000

// Address plan: documentation and benchmarking ranges
// only; nothing in the lab routes anywhere else.
var (
	LANv4      = netip.MustParsePrefix("198.51.100.0/24")
	LANv6      = netip.MustParsePrefix("2001:db8:100::/64")
	L2PoolV4   = "198.51.100.200-198.51.100.250"
	L2PoolV6   = "2001:db8:100::200-2001:db8:100::250"
	BGPPoolV4  = netip.MustParsePrefix("203.0.113.0/24")
	BGPPoolV6  = netip.MustParsePrefix("2001:db8:203::/120")
	PodsV4     = netip.MustParsePrefix("198.18.0.0/16")
	PodsV6     = netip.MustParsePrefix("2001:db8:18::/48")
	ServicesV4 = netip.MustParsePrefix("198.19.0.0/16")
	ServicesV6 = netip.MustParsePrefix("2001:db8:19::/112")
	ExternalV4 = netip.MustParsePrefix(ExternalV4CIDR)
	ExternalV6 = netip.MustParsePrefix("2001:db8:192::/64")
	// HeartbeatV4 is the heartbeat network (Config.HeartbeatNetwork); node N
	// is .1N, like on the LAN. Inside the pods' 198.18.0.0/16 summary, but
	// no node gets 198.18.253.0/24 (see ExternalV4CIDR).
	HeartbeatV4  = netip.MustParsePrefix("198.18.253.0/24")
	ServiceCIDRs = ServicesV4.String() + "," + ServicesV6.String()
)

// ExternalV4CIDR is the router <-> client-ext link. It is not 192.0.2.0/24
// because hosts running the lab may use that documentation range for their
// own uplink, and a lab address an admin could mistake for it is a trap.
// 198.18.254.0/24 lies inside the pods' 198.18.0.0/16 summary, but no node
// ever gets it (node N has 198.18.N.0/24 and N <= MaxNodes < 254), and
// nothing routes the /16 as a whole.
const ExternalV4CIDR = "198.18.254.0/24"

// Limits of the plan: node N is .1N on the LAN up to .99 (client-lan is .100),
// pods of a node are .2 up to .254 of its /24.
const (
	MaxNodes       = 89
	MaxPodsPerNode = 253
)

// labName matches the names the lab owns: its stations, nodes and pods, and
// anything under Prefix+"lab-" (reserved for later lab parts). Other
// beacon- names (e.g. the speaker tests' beacon-t-*) are not the lab's and
// DownAll leaves them alone.
var labName = regexp.MustCompile(`^` + Prefix + `(lan|host|router|client-lan|client-ext|node[0-9]+|n[0-9]+-p[0-9]+|lab-[a-z0-9.-]+)$`)

// IsLabName reports whether a namespace or link name belongs to the lab.
func IsLabName(name string) bool { return labName.MatchString(name) }

// Netns returns the network namespace of a lab station, node or pod:
// Netns("node1") is "beacon-node1". Full names pass through unchanged.
func Netns(name string) string {
	if strings.HasPrefix(name, Prefix) {
		return name
	}
	return Prefix + name
}

// Station is a machine on the node LAN.
type Station struct {
	// Name is the short name ("host", "node1", ...).
	Name string
	// Netns is the network namespace (Prefix+Name).
	Netns string
	// IPv4 and IPv6 are the station's addresses on the LAN (LANInterface).
	IPv4, IPv6 netip.Addr
	// MAC is the LAN interface's stable, locally administered address.
	MAC net.HardwareAddr
}

// Node is a Kubernetes node: a LAN station that routes to its pods.
type Node struct {
	Station
	// Index is N in nodeN (1-based).
	Index int
	// PodCIDRv4 (198.18.N.0/24) and PodCIDRv6 (2001:db8:18:N::/64).
	PodCIDRv4, PodCIDRv6 netip.Prefix
	// GatewayV4 and GatewayV6 are the node's addresses on every pod link
	// (.1 and ::1 of the pod CIDRs): the pods' default gateway.
	GatewayV4, GatewayV6 netip.Addr
	// HeartbeatIPv4 is the node's address on HeartbeatInterface; invalid
	// without Config.HeartbeatNetwork.
	HeartbeatIPv4 netip.Addr
	// HeartbeatMAC is HeartbeatInterface's address: 02:bc:00:00:fd:<host>.
	HeartbeatMAC net.HardwareAddr
}

// Pod is an echo-server pod: a namespace behind a veth to its node.
type Pod struct {
	// Name is the Pod object's name and the echo server's pod= field
	// ("n1-p1"); Netns is Prefix+Name.
	Name, Netns string
	// Node is the node's name ("node1"); NodeIndex its index.
	Node      string
	NodeIndex int
	// Index is p in nN-pP (1-based).
	Index int
	// IPv4 and IPv6 are the pod's addresses (on PodInterface).
	IPv4, IPv6 netip.Addr
	// MAC is the pod's interface address; NodeMAC the node side's.
	MAC, NodeMAC net.HardwareAddr
	// NodeLink is the name of the node side of the pod's veth (= Name).
	NodeLink string
}

// Topology is the whole planned lab: a pure function of the Config.
type Topology struct {
	Host, Router, ClientLAN Station
	// ClientExt sits behind the router: its IPv4, IPv6 and MAC are those of
	// its ClientExtInterface on the external link (ExternalV4/ExternalV6),
	// not LAN addresses; it is not one of Stations.
	ClientExt Station
	// RouterExtV4 and RouterExtV6 are the router's addresses on the
	// external link (client-ext's gateway); RouterExtMAC its interface's.
	RouterExtV4, RouterExtV6 netip.Addr
	RouterExtMAC             net.HardwareAddr
	Nodes                    []Node
	Pods                     []Pod
	// Heartbeat is true with Config.HeartbeatNetwork: the nodes have a
	// second switch (HeartbeatSwitch).
	Heartbeat bool
}

// Stations returns every station on the LAN: host, router, client-lan, nodes.
func (t Topology) Stations() []Station {
	s := []Station{t.Host, t.Router, t.ClientLAN}
	for _, n := range t.Nodes {
		s = append(s, n.Station)
	}
	return s
}

// Namespaces returns every network namespace of the lab in creation order.
func (t Topology) Namespaces() []string {
	ns := []string{Netns(LAN)}
	if t.Heartbeat {
		ns = append(ns, Netns(HeartbeatSwitch))
	}
	for _, s := range t.Stations() {
		ns = append(ns, s.Netns)
	}
	ns = append(ns, t.ClientExt.Netns)
	for _, p := range t.Pods {
		ns = append(ns, p.Netns)
	}
	return ns
}

// Route is one route a namespace gets: Dst via Gateway (on the LAN), or Dst
// directly on Dev when Gateway is invalid.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr
	Dev     string
}

// LANRoutes returns the routes a LAN station gets to the pod CIDRs of every
// other node (a flat routed "CNI").
func (t Topology) LANRoutes(station string) []Route {
	var r []Route
	for _, n := range t.Nodes {
		if n.Name == station {
			continue
		}
		r = append(r,
			Route{Dst: n.PodCIDRv4, Gateway: n.IPv4, Dev: LANInterface},
			Route{Dst: n.PodCIDRv6, Gateway: n.IPv6, Dev: LANInterface})
	}
	return r
}

// ExternalRoutes returns the routes a namespace gets to or from the
// external link: LAN stations other than the router reach ExternalV4/V6
// via the router's LAN address (so replies to client-ext, e.g. from
// externalTrafficPolicy: Local endpoints, go back through the router);
// client-ext has its default routes via the router. The router itself has
// only its connected routes: the BGP pool reaches it only through BGP.
func (t Topology) ExternalRoutes(name string) []Route {
	switch name {
	case t.Router.Name:
		return nil
	case t.ClientExt.Name:
		return []Route{
			{Dst: netip.PrefixFrom(netip.IPv4Unspecified(), 0), Gateway: t.RouterExtV4, Dev: ClientExtInterface},
			{Dst: netip.PrefixFrom(netip.IPv6Unspecified(), 0), Gateway: t.RouterExtV6, Dev: ClientExtInterface},
		}
	}
	for _, s := range t.Stations() {
		if s.Name == name {
			return []Route{
				{Dst: ExternalV4, Gateway: t.Router.IPv4, Dev: LANInterface},
				{Dst: ExternalV6, Gateway: t.Router.IPv6, Dev: LANInterface},
			}
		}
	}
	return nil
}

// lanAddr returns the LAN address with the given host number (the decimal
// number's text is used for IPv6 too: .11 is ::11).
func lanAddr(host int) (netip.Addr, netip.Addr) {
	v4 := netip.AddrFrom4([4]byte{198, 51, 100, byte(host)})
	v6 := netip.MustParseAddr("2001:db8:100::" + strconv.Itoa(host))
	return v4, v6
}

// extAddr returns host number n (< 256) of an external link prefix.
func extAddr(p netip.Prefix, n byte) netip.Addr {
	b := p.Addr().AsSlice()
	b[len(b)-1] = n
	a, _ := netip.AddrFromSlice(b)
	return a
}

// stationMAC is 02:bc:00:00:00:<LAN host number>.
func stationMAC(host int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xbc, 0x00, 0x00, 0x00, byte(host)}
}

func station(name string, host int) Station {
	v4, v6 := lanAddr(host)
	return Station{Name: name, Netns: Netns(name), IPv4: v4, IPv6: v6, MAC: stationMAC(host)}
}

// NodeName returns the name of node i (1-based).
func NodeName(i int) string { return "node" + strconv.Itoa(i) }

// PodName returns the name of pod p (1-based) on node n.
func PodName(n, p int) string { return fmt.Sprintf("n%d-p%d", n, p) }

// Plan computes the topology of a lab. It does no IO.
func Plan(cfg Config) (Topology, error) {
	cfg = cfg.withDefaults()
	if cfg.Nodes < 1 || cfg.Nodes > MaxNodes {
		return Topology{}, fmt.Errorf("lab: Nodes must be 1..%d, got %d", MaxNodes, cfg.Nodes)
	}
	if cfg.PodsPerNode < 0 || cfg.PodsPerNode > MaxPodsPerNode {
		return Topology{}, fmt.Errorf("lab: PodsPerNode must be 0..%d, got %d", MaxPodsPerNode, cfg.PodsPerNode)
	}
	t := Topology{
		Router:    station(Router, 1),
		Host:      station(Host, 2),
		ClientLAN: station(ClientLAN, 100),
		ClientExt: Station{
			Name: ClientExt, Netns: Netns(ClientExt),
			IPv4: extAddr(ExternalV4, 2), IPv6: extAddr(ExternalV6, 2),
			MAC: net.HardwareAddr{0x02, 0xbc, 0x00, 0x00, 0xfe, 0x02},
		},
		RouterExtV4:  extAddr(ExternalV4, 1),
		RouterExtV6:  extAddr(ExternalV6, 1),
		RouterExtMAC: net.HardwareAddr{0x02, 0xbc, 0x00, 0x00, 0xfe, 0x01},
		Heartbeat:    cfg.HeartbeatNetwork,
	}
	for i := 1; i <= cfg.Nodes; i++ {
		n := Node{Station: station(NodeName(i), 10+i), Index: i}
		n.PodCIDRv4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)
		n.PodCIDRv6 = netip.MustParsePrefix(fmt.Sprintf("2001:db8:18:%d::/64", i))
		n.GatewayV4 = netip.AddrFrom4([4]byte{198, 18, byte(i), 1})
		n.GatewayV6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:18:%d::1", i))
		if cfg.HeartbeatNetwork {
			n.HeartbeatIPv4 = extAddr(HeartbeatV4, byte(10+i))
			n.HeartbeatMAC = net.HardwareAddr{0x02, 0xbc, 0x00, 0x00, 0xfd, byte(10 + i)}
		}
		t.Nodes = append(t.Nodes, n)
		for p := 1; p <= cfg.PodsPerNode; p++ {
			name := PodName(i, p)
			t.Pods = append(t.Pods, Pod{
				Name: name, Netns: Netns(name), Node: n.Name, NodeIndex: i, Index: p,
				IPv4:     netip.AddrFrom4([4]byte{198, 18, byte(i), byte(1 + p)}),
				IPv6:     netip.MustParseAddr(fmt.Sprintf("2001:db8:18:%d::%d", i, 1+p)),
				MAC:      net.HardwareAddr{0x02, 0xbc, 0x18, byte(i), 0x00, byte(p)},
				NodeMAC:  net.HardwareAddr{0x02, 0xbc, 0x18, byte(i), 0x01, byte(p)},
				NodeLink: name,
			})
		}
	}
	return t, nil
}
