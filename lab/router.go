package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The router (namespace beacon-router: 198.51.100.1 and 2001:db8:100::1 on
// the LAN, RouterExtV4/V6 towards client-ext) runs Debian's FRR: zebra,
// bgpd and bfdd, each a tracked lab process with its own configuration
// (frrConfigs), pid file, vty socket directory, zserv socket and bfdd
// control socket under FRRDir, so that it shares nothing with a system FRR
// or with /etc/frr. FRR drops to the frr user, which owns FRRDir.
//
// zebra installs what bgpd selects (up to MaxPaths next hops) into the
// router's kernel FIB; the router has no static route into the BGP pools.

// FRRDir is the router's FRR state directory.
var FRRDir = filepath.Join(StateDir, "frr")

// FRRProcessName is the tracked process name of an FRR daemon of the
// router ("frr-bgpd"); its log is logs/frr-bgpd.log in the state directory.
func FRRProcessName(daemon string) string { return "frr-" + daemon }

// VtyshArgv returns the vtysh command line that talks to the lab router's
// daemons, with args appended (e.g. "-c", "show bgp summary"). It works
// from any namespace (the vty sockets are files); `beacon-lab exec router
// vtysh ...` uses it.
func VtyshArgv(args ...string) []string {
	return append([]string{"vtysh", "--vty_socket", filepath.Join(FRRDir, "vty"), "--config_dir", FRRDir}, args...)
}

// BGPRouter is the lab's FRR router (Lab.Router). Its methods are safe for concurrent use.
type BGPRouter struct {
	topo Topology
	cfg  RouterConfig
	dir  string
}

// Router returns the lab's router.
func (l *Lab) Router() *BGPRouter {
	return &BGPRouter{topo: l.topo, cfg: l.cfg.Router, dir: FRRDir}
}

// Config returns the router's configuration, defaults filled in.
func (r *BGPRouter) Config() RouterConfig { return r.cfg }

// writeConfig writes the daemons' configurations into a fresh FRRDir owned
// by the frr user.
func (r *BGPRouter) writeConfig() error {
	for _, d := range frrDaemons {
		if _, err := os.Stat(filepath.Join(FRRBinDir, d)); err != nil {
			return fmt.Errorf("lab: FRR %s missing (apt-get install frr): %w", d, err)
		}
	}
	if err := os.RemoveAll(r.dir); err != nil {
		return err
	}
	files := frrConfigs(r.topo, r.cfg)
	files["vtysh"] = "! vtysh reads this instead of /etc/frr/vtysh.conf\n"
	return WriteFRRDir(r.dir, files)
}

// start writes the configuration and starts zebra, then (once zebra's
// zserv socket exists, or bgpd and bfdd would wait seconds to retry) bgpd
// and bfdd. waitReady completes the start.
func (l *Lab) startRouter(ctx context.Context) error {
	r := l.Router()
	if err := r.writeConfig(); err != nil {
		return err
	}
	zebra, err := l.StartProcess(ProcessSpec{Name: FRRProcessName("zebra"), Netns: Router, Argv: FRRArgv(r.dir, "zebra")})
	if err != nil {
		return err
	}
	if err := WaitZserv(ctx, r.dir, zebra.Alive); err != nil {
		return fmt.Errorf("%w: %s", err, LogTail(zebra.Log, 2000))
	}
	for _, d := range frrDaemons[1:] {
		if _, err := l.StartProcess(ProcessSpec{Name: FRRProcessName(d), Netns: Router, Argv: FRRArgv(r.dir, d)}); err != nil {
			return err
		}
	}
	return nil
}

// waitRouter polls until bgpd has loaded its configuration (every node a
// neighbour) and bgpd and bfdd are zebra clients.
func (l *Lab) waitRouter(ctx context.Context) error {
	r := l.Router()
	var last error
	err := pollUntil(ctx, 20*time.Second, 10*time.Millisecond, func() (bool, error) {
		for _, p := range l.Processes() {
			if strings.HasPrefix(p.Name, "frr-") && !p.Alive() {
				return false, fmt.Errorf("lab: FRR %s exited: %s", p.Name, LogTail(p.Log, 2000))
			}
		}
		for _, d := range frrDaemons {
			if _, err := os.Stat(filepath.Join(r.dir, "vty", d+".vty")); err != nil {
				last = err
				return false, nil
			}
		}
		last = r.ready(ctx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("lab: FRR not ready: %w (last: %v)", err, last)
	}
	return nil
}

// ready checks that the daemons run the lab's configuration.
func (r *BGPRouter) ready(ctx context.Context) error {
	clients, err := r.Vtysh(ctx, "show zebra client summary")
	if err != nil {
		return err
	}
	for _, c := range []string{"bgp", "bfd"} {
		if !hasLinePrefix(clients, c+" ") {
			return fmt.Errorf("%s is not a zebra client yet", c)
		}
	}
	ns, err := r.Neighbors(ctx)
	if err != nil {
		return err
	}
	if len(ns) != 2*len(r.topo.Nodes) {
		return fmt.Errorf("bgpd has %d neighbours, want %d", len(ns), 2*len(r.topo.Nodes))
	}
	return nil
}

func hasLinePrefix(text, prefix string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// Vtysh runs vtysh with one -c per command (in one session, so
// "configure terminal" carries over to the next ones) and returns its
// output. vtysh fails (and so does Vtysh) when a command is rejected.
func (r *BGPRouter) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	if len(cmds) == 0 {
		return "", errors.New("lab: Vtysh: no command")
	}
	var args []string
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	out, err := Exec(ctx, r.topo.Router.Netns, VtyshArgv(args...)...)
	return string(out), err
}

// VtyshJSON runs one vtysh command (ending in "json") and decodes its
// output into v.
func (r *BGPRouter) VtyshJSON(ctx context.Context, cmd string, v any) error {
	out, err := r.Vtysh(ctx, cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("lab: vtysh %q: %w: %s", cmd, err, tail([]byte(out), 500))
	}
	return nil
}

// ConfigureBGP applies configuration lines inside `router bgp <ASN>`, e.g.
// "neighbor 198.51.100.11 password s3cret" or "address-family ipv4
// unicast", "neighbor nodes-v4 route-map X in". Lines act at once (FRR
// resets sessions where its semantics say so).
func (r *BGPRouter) ConfigureBGP(ctx context.Context, lines ...string) error {
	_, err := r.Vtysh(ctx, append([]string{"configure terminal", "router bgp " + strconv.FormatUint(uint64(r.cfg.ASN), 10)}, lines...)...)
	return err
}

// BGPNeighbor is one configured neighbour of the router.
type BGPNeighbor struct {
	Address netip.Addr
	// RemoteAS and PeerGroup as configured.
	RemoteAS  uint32
	PeerGroup string
	// State is FRR's FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established (Clearing, Deleted).
	State string
	// Established is how long the session has been up (0 unless
	// State is Established).
	Established time.Duration
	// PrefixesAccepted counts accepted prefixes over all address families.
	PrefixesAccepted int
}

// Neighbors returns the router's BGP neighbours, sorted by address.
func (r *BGPRouter) Neighbors(ctx context.Context) ([]BGPNeighbor, error) {
	var raw map[string]json.RawMessage
	if err := r.VtyshJSON(ctx, "show bgp neighbors json", &raw); err != nil {
		return nil, err
	}
	return parseNeighbors(raw)
}

func parseNeighbors(raw map[string]json.RawMessage) ([]BGPNeighbor, error) {
	var out []BGPNeighbor
	for k, v := range raw {
		a, err := netip.ParseAddr(k)
		if err != nil {
			continue // not a neighbour (e.g. VRF information)
		}
		var n struct {
			RemoteAs          uint32 `json:"remoteAs"`
			PeerGroup         string `json:"peerGroup"`
			BgpState          string `json:"bgpState"`
			BgpTimerUpMsec    int64  `json:"bgpTimerUpMsec"`
			AddressFamilyInfo map[string]struct {
				AcceptedPrefixCounter int `json:"acceptedPrefixCounter"`
			} `json:"addressFamilyInfo"`
		}
		if err := json.Unmarshal(v, &n); err != nil {
			return nil, fmt.Errorf("lab: neighbour %s: %w", k, err)
		}
		nb := BGPNeighbor{Address: a, RemoteAS: n.RemoteAs, PeerGroup: n.PeerGroup, State: n.BgpState}
		if n.BgpState == "Established" {
			nb.Established = time.Duration(n.BgpTimerUpMsec) * time.Millisecond
		}
		for _, af := range n.AddressFamilyInfo {
			nb.PrefixesAccepted += af.AcceptedPrefixCounter
		}
		out = append(out, nb)
	}
	slices.SortFunc(out, func(a, b BGPNeighbor) int { return a.Address.Compare(b.Address) })
	return out, nil
}

// BFDPeer is one BFD session of the router.
type BFDPeer struct {
	Peer, Local netip.Addr
	Interface   string
	// Status is up, down, init or shutdown.
	Status string
	// ReceiveInterval and TransmitInterval are the local ones in use;
	// DetectMultiplier the local one.
	ReceiveInterval, TransmitInterval time.Duration
	DetectMultiplier                  int
}

// BFDPeers returns the router's BFD sessions, sorted by peer address.
func (r *BGPRouter) BFDPeers(ctx context.Context) ([]BFDPeer, error) {
	var raw []json.RawMessage
	if err := r.VtyshJSON(ctx, "show bfd peers json", &raw); err != nil {
		return nil, err
	}
	return parseBFDPeers(raw)
}

func parseBFDPeers(raw []json.RawMessage) ([]BFDPeer, error) {
	var out []BFDPeer
	for _, v := range raw {
		var p struct {
			Peer       string `json:"peer"`
			Local      string `json:"local"`
			Interface  string `json:"interface"`
			Status     string `json:"status"`
			RxInterval int64  `json:"receive-interval"`
			TxInterval int64  `json:"transmit-interval"`
			Multiplier int    `json:"detect-multiplier"`
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return nil, fmt.Errorf("lab: BFD peer: %w", err)
		}
		peer, err := netip.ParseAddr(p.Peer)
		if err != nil {
			return nil, fmt.Errorf("lab: BFD peer %q: %w", p.Peer, err)
		}
		local, _ := netip.ParseAddr(p.Local) // may be empty
		out = append(out, BFDPeer{Peer: peer, Local: local, Interface: p.Interface, Status: p.Status,
			ReceiveInterval: time.Duration(p.RxInterval) * time.Millisecond, TransmitInterval: time.Duration(p.TxInterval) * time.Millisecond,
			DetectMultiplier: p.Multiplier})
	}
	slices.SortFunc(out, func(a, b BFDPeer) int { return a.Peer.Compare(b.Peer) })
	return out, nil
}

// BGPPath is one path of a prefix in the router's BGP table.
type BGPPath struct {
	// Peer is the neighbour the path came from.
	Peer netip.Addr
	// NextHops as received (for IPv6 the global one first).
	NextHops []netip.Addr
	ASPath   string
	// LocalPref is set only when the path carries one (iBGP).
	LocalPref *uint32
	// Communities and LargeCommunities as FRR prints them ("64512:100",
	// "64512:1:2"; well-known ones by name, e.g. "no-export").
	Communities, LargeCommunities []string
	// Best is FRR's best path; Multipath marks members of the ECMP set.
	Best, Multipath, Valid bool
	// Stale marks paths kept by graceful restart.
	Stale bool
}

// Paths returns the paths of exactly prefix in the router's BGP table
// (none when it is unknown), in FRR's order.
func (r *BGPRouter) Paths(ctx context.Context, prefix netip.Prefix) ([]BGPPath, error) {
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	var raw struct {
		Paths []json.RawMessage `json:"paths"`
	}
	if err := r.VtyshJSON(ctx, fmt.Sprintf("show bgp %s unicast %s json", afi, prefix.Masked()), &raw); err != nil {
		return nil, err
	}
	return ParseBGPPaths(raw.Paths)
}

// ParseBGPPaths parses the "paths" of FRR's `show bgp <afi> unicast
// <prefix> json`.
func ParseBGPPaths(raw []json.RawMessage) ([]BGPPath, error) {
	var out []BGPPath
	for _, v := range raw {
		var p struct {
			ASPath struct {
				String string `json:"string"`
			} `json:"aspath"`
			LocPrf    *uint32 `json:"locPrf"`
			Community *struct {
				String string `json:"string"`
			} `json:"community"`
			LargeCommunity *struct {
				String string `json:"string"`
			} `json:"largeCommunity"`
			Valid     bool            `json:"valid"`
			Stale     bool            `json:"stale"`
			Multipath bool            `json:"multipath"`
			Bestpath  json.RawMessage `json:"bestpath"`
			Nexthops  []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
			Peer struct {
				PeerID string `json:"peerId"`
			} `json:"peer"`
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return nil, fmt.Errorf("lab: BGP path: %w", err)
		}
		bp := BGPPath{ASPath: p.ASPath.String, LocalPref: p.LocPrf, Valid: p.Valid, Stale: p.Stale, Multipath: p.Multipath}
		bp.Peer, _ = netip.ParseAddr(p.Peer.PeerID)
		for _, nh := range p.Nexthops {
			if a, err := netip.ParseAddr(nh.IP); err == nil {
				bp.NextHops = append(bp.NextHops, a)
			}
		}
		if p.Community != nil {
			bp.Communities = strings.Fields(p.Community.String)
		}
		if p.LargeCommunity != nil {
			bp.LargeCommunities = strings.Fields(p.LargeCommunity.String)
		}
		var best struct {
			Overall bool `json:"overall"`
		}
		if len(p.Bestpath) > 0 {
			_ = json.Unmarshal(p.Bestpath, &best)
		}
		bp.Best = best.Overall
		out = append(out, bp)
	}
	return out, nil
}

// FIBNextHops returns the next hops of the route to exactly prefix in the
// router's kernel FIB (main table), sorted; none when there is no such
// route. This is what forwarding uses: zebra's ECMP set after BGP.
func (r *BGPRouter) FIBNextHops(ctx context.Context, prefix netip.Prefix) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := netns.GetFromPath(filepath.Join(NetnsDir, r.topo.Router.Netns))
	if err != nil {
		return nil, fmt.Errorf("lab: open netns %s: %w", r.topo.Router.Netns, err)
	}
	defer func() { _ = fd.Close() }()
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		return nil, fmt.Errorf("lab: netlink in %s: %w", r.topo.Router.Netns, err)
	}
	defer h.Close()
	return fibNextHops(h, prefix)
}

func fibNextHops(h *netlink.Handle, prefix netip.Prefix) ([]netip.Addr, error) {
	prefix = prefix.Masked()
	family := netlink.FAMILY_V4
	if prefix.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{Dst: ipNet(prefix), Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("lab: routes to %v: %w", prefix, err)
	}
	out := []netip.Addr{}
	add := func(gw net.IP, via netlink.Destination) {
		if a, ok := netip.AddrFromSlice(gw); ok {
			out = append(out, a.Unmap())
			return
		}
		if v, ok := via.(*netlink.Via); ok && v != nil {
			if a, ok := netip.AddrFromSlice(v.Addr); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	for _, rt := range routes {
		if rt.Dst == nil || rt.Dst.String() != ipNet(prefix).String() {
			continue
		}
		add(rt.Gw, rt.Via)
		for _, nh := range rt.MultiPath {
			add(nh.Gw, nh.Via)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// WaitFIBNextHops polls the router's FIB until the route to prefix has
// exactly the want next hops (none: no route), and returns the last next
// hops seen. It gives up when ctx ends.
func (r *BGPRouter) WaitFIBNextHops(ctx context.Context, prefix netip.Prefix, want ...netip.Addr) ([]netip.Addr, error) {
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Addr.Compare)
	want = slices.Compact(want)
	var got []netip.Addr
	err := pollUntil(ctx, 0, 5*time.Millisecond, func() (bool, error) {
		var err error
		got, err = r.FIBNextHops(ctx, prefix)
		if err != nil && ctx.Err() == nil {
			return false, err
		}
		return slices.Equal(got, want), nil
	})
	if err != nil {
		return got, fmt.Errorf("lab: FIB route %v: next hops %v, want %v: %w", prefix, got, want, err)
	}
	return got, nil
}

// pollUntil calls cond every interval until it returns true or an error,
// ctx ends, or (when limit > 0) limit has passed.
func pollUntil(ctx context.Context, limit, interval time.Duration, cond func() (bool, error)) error {
	if limit > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
