package handoff

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/beaconlb/beacon/internal/nldump"
	"github.com/beaconlb/beacon/nodeport"
)

// Names and numbers in the kernel. The mark bit must not collide with other
// users of the packet mark on the node (kube-proxy uses 0x4000 and 0x8000,
// Beacon's dataplane 0x4000).
const (
	Table          = "beacon-handoff"
	ChainRestore   = "restore-mark"
	ChainSteer     = "steer"
	SetV4          = "handoff-v4"
	SetV6          = "handoff-v6"
	DefaultMark    = uint32(0x00200000)
	DefaultRouting = 48812 // routing table id ("be ac")
	// RulePriority puts the policy rule before the main table, which
	// routes the address on-link (back to this node).
	RulePriority = 1000
	// priorities of the base chains: after conntrack (-200), before the
	// dstnat chains (-100) of every dataplane.
	priorityRestore = -150
	prioritySteer   = -110
)

// Route sends an address's handed-off flows to a next hop.
type Route struct {
	IP  netip.Addr
	Via netip.Addr
}

// Kernel programs hand-offs into this network namespace. It is also a
// Prometheus collector of what it programmed and what the kernel counted.
type Kernel struct {
	mark  uint32
	table int
	log   logr.Logger

	// nft is opened by the first Apply or Remove, in the network
	// namespace of the calling thread.
	nft     *nodeport.KernelApplier
	ct      *netlink.Handle // conntrack, opened by the first sweep
	last    []Route         // what was applied
	applied bool            // last is in the kernel (false after an error)
	// forgetAfter is how long the marked entries of an address stay
	// after its hand-off ends (Linger): segments already under way, or
	// sent before a router or the clients follow the move, still match
	// them and go on to the previous announcer's route or none.
	forgetAfter time.Duration
	ended       map[netip.Addr]time.Time // hand-off ended at
	born        time.Time                // made
	swept       bool                     // a crashed speaker's marks are gone

	addresses atomic.Int64
}

var (
	descFlows = prometheus.NewDesc("beacon_handoff_flows_total",
		"TCP flows this node sent on to the previous announcer of an address it took over.", nil, nil)
	descAddresses = prometheus.NewDesc("beacon_handoff_addresses",
		"Addresses whose unknown mid-stream flows go to their previous announcer.", nil, nil)
)

// NewKernel returns a Kernel using mark bit mark and routing table id
// table (zero: the defaults). It touches nothing until Apply or Remove.
func NewKernel(mark uint32, table int, log logr.Logger) *Kernel {
	if mark == 0 {
		mark = DefaultMark
	}
	if table == 0 {
		table = DefaultRouting
	}
	return &Kernel{mark: mark, table: table, log: log, forgetAfter: Linger, ended: map[netip.Addr]time.Time{}, born: time.Now()}
}

// Apply makes the kernel hand off exactly routes: the nftables table is
// built once and afterwards only its sets change, in one transaction; then
// the policy rules and the routes are brought in line. Nothing is written
// when routes equal the last applied.
func (k *Kernel) Apply(routes []Route) error {
	now := time.Now()
	if k.applied && slices.Equal(routes, k.last) {
		k.forget(routes, now)
		return nil
	}
	k.applied = false
	nft, err := k.applier()
	if err != nil {
		return err
	}
	if _, err := nft.Apply(Ruleset(k.mark, routes)); err != nil {
		return fmt.Errorf("table %s: %w", Table, err)
	}
	if err := k.applyRouting(routes); err != nil {
		return err
	}
	k.forget(routes, now)
	// Hand-offs change only when addresses move between live nodes: worth
	// a line each, to match a client's broken connection with them.
	k.log.Info("hand-off applied", "routes", String(routes))
	k.last, k.applied = slices.Clone(routes), true
	k.addresses.Store(int64(len(routes)))
	return nil
}

// Describe implements prometheus.Collector.
func (k *Kernel) Describe(ch chan<- *prometheus.Desc) {
	ch <- descFlows
	ch <- descAddresses
}

// Collect implements prometheus.Collector: the flows are the steer rules'
// counters, read from the kernel (they restart with the table, that is
// with the speaker).
func (k *Kernel) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descAddresses, prometheus.GaugeValue, float64(k.addresses.Load()))
	n, err := nodeport.ChainPackets(nodeport.Inet, Table, ChainSteer)
	if err != nil {
		// No table yet: nothing handed off.
		n = 0
	}
	ch <- prometheus.MustNewConstMetric(descFlows, prometheus.CounterValue, float64(n))
}

// Remove deletes everything Apply created, the conntrack entries the steer
// chain marked included (for --handoff-window=0).
func (k *Kernel) Remove() error {
	k.swept = k.sweep("marked flows", func(f nodeport.Flow) bool { return f.Mark&k.mark != 0 })
	clear(k.ended)
	k.last, k.applied = nil, false
	k.addresses.Store(0)
	var errs []error
	if nft, err := k.applier(); err != nil {
		errs = append(errs, err)
	} else if _, err := nft.Apply(&nodeport.Ruleset{}); err != nil {
		errs = append(errs, fmt.Errorf("delete table %s: %w", Table, err))
	}
	errs = append(errs, k.applyRouting(nil), k.syncPolicyRules(false))
	return errors.Join(errs...)
}

// forget deletes the conntrack entries that would misdirect a client
// reusing a connection's ports:
//   - of an address handed off anew, the entries of finished TCP
//     connections (TIME_WAIT, CLOSE) left from an earlier time this node
//     announced it: a handed-off flow matching one would miss the steer
//     chain and, not fitting the old connection, be dropped as invalid;
//   - of an address whose hand-off ended forgetAfter ago, and once,
//     forgetAfter after the Kernel was made, of any address not handed
//     off (a crashed speaker's), the entries the steer chain marked. They
//     saw one direction only (the replies go from the previous announcer straight
//     to the client), so conntrack keeps them for minutes (CLOSE_WAIT:
//     kube-proxy's hour), and a new connection from the same ports would
//     carry their mark and identity DNAT and be routed nowhere.
//
// It dumps conntrack only when there is something to delete.
func (k *Kernel) forget(routes []Route, now time.Time) {
	previous := make(map[netip.Addr]bool, len(k.last))
	for _, o := range k.last {
		previous[o.IP] = true
	}
	current, fresh := make(map[netip.Addr]bool, len(routes)), map[netip.Addr]bool{}
	for _, r := range routes {
		current[r.IP] = true
		delete(k.ended, r.IP)
		if !previous[r.IP] {
			fresh[r.IP] = true
		}
	}
	for ip := range previous {
		if _, ok := k.ended[ip]; !ok && !current[ip] {
			k.ended[ip] = now
		}
	}
	due := map[netip.Addr]bool{}
	for ip, at := range k.ended {
		if now.Sub(at) >= k.forgetAfter {
			due[ip] = true
		}
	}
	leftovers := !k.swept && now.Sub(k.born) >= k.forgetAfter
	if len(fresh) == 0 && len(due) == 0 && !leftovers {
		return
	}
	closed := closedFlows(fresh)
	ok := k.sweep("flows of addresses whose hand-off starts or ends", func(f nodeport.Flow) bool {
		if closed(f) {
			return true
		}
		ip := f.OrigDst.Addr()
		return f.Mark&k.mark != 0 && !current[ip] && (leftovers || due[ip])
	})
	if ok {
		for ip := range due {
			delete(k.ended, ip)
		}
		k.swept = k.swept || leftovers
	}
}

// sweep deletes the conntrack entries match selects, of both families,
// and says whether it could.
func (k *Kernel) sweep(what string, match func(nodeport.Flow) bool) bool {
	if k.ct == nil {
		h, err := netlink.NewHandle(unix.NETLINK_NETFILTER)
		if err != nil {
			k.log.Error(err, "cannot open conntrack to delete "+what)
			return false
		}
		k.ct = h
	}
	ct := nodeport.KernelConntrack{H: k.ct}
	ok := true
	for _, fam := range []nodeport.Family{nodeport.IPv4, nodeport.IPv6} {
		n, err := ct.DeleteFlows(fam, match)
		if err != nil {
			k.log.Error(err, "deleting "+what, "family", fam.String())
			ok = false
			continue
		}
		if n > 0 {
			k.log.Info("deleted "+what, "family", fam.String(), "flows", n)
		}
	}
	return ok
}

// closedFlows matches conntrack entries of finished TCP connections
// (TIME_WAIT, CLOSE) to one of ips, young TIME_WAIT entries included: a
// handed-off flow whose client reused the ports of a connection this node
// closed seconds ago must not meet its entry.
func closedFlows(ips map[netip.Addr]bool) func(nodeport.Flow) bool {
	return func(f nodeport.Flow) bool {
		return f.Proto == nodeport.TCP && ips[f.OrigDst.Addr()] &&
			(f.TCPState == nodeport.TCPTimeWait || f.TCPState == nodeport.TCPClose)
	}
}

// Close releases the netlink sockets; the kernel state stays.
func (k *Kernel) Close() error {
	if k.ct != nil {
		k.ct.Close()
		k.ct = nil
	}
	if k.nft == nil {
		return nil
	}
	err := k.nft.Close()
	k.nft, k.applied = nil, false
	return err
}

// scope makes the applier own the hand-off table only: the dataplane's
// tables are another applier's.
var scope = nodeport.Scope{
	Families: []nodeport.Family{nodeport.Inet},
	Base:     Table,
	Owns:     func(name string) bool { return name == Table },
}

// socketBuffer is ample for a table of a few rules and addresses.
const socketBuffer = 1 << 20

func (k *Kernel) applier() (*nodeport.KernelApplier, error) {
	if k.nft == nil {
		nft, err := nodeport.NewKernelApplier(nodeport.KernelConfig{SocketBuffer: socketBuffer, NoConntrack: true, Scope: scope}, k.log)
		if err != nil {
			return nil, err
		}
		k.nft = nft
	}
	return k.nft, nil
}

// families are the two sets and the family of their addresses.
var families = []struct {
	set string
	fam nodeport.Family
}{
	{SetV4, nodeport.IPv4},
	{SetV6, nodeport.IPv6},
}

// Ruleset is the hand-off table with mark bit mark, handing off the
// addresses of routes.
func Ruleset(mark uint32, routes []Route) *nodeport.Ruleset {
	t := &nodeport.Table{Family: nodeport.Inet, Name: Table}
	// Segments after the first of a handed-off flow: the conntrack entry
	// carries the mark, the routing decision needs it on the packet.
	restore := &nodeport.Chain{
		Name:  ChainRestore,
		Base:  &nodeport.BaseChain{Type: nodeport.ChainFilter, Hook: nodeport.HookPrerouting, Priority: priorityRestore},
		Rules: []nodeport.Rule{{nodeport.MatchCtMark{Mark: mark}, nodeport.SetMark{Mark: mark}}},
	}
	steer := &nodeport.Chain{
		Name: ChainSteer,
		Base: &nodeport.BaseChain{Type: nodeport.ChainNAT, Hook: nodeport.HookPrerouting, Priority: prioritySteer},
	}
	for _, f := range families {
		set := &nodeport.Set{Name: f.set, Fields: []nodeport.Field{nodeport.FieldAddr}, Family: f.fam}
		for _, r := range routes {
			if (f.fam == nodeport.IPv4) == r.IP.Is4() {
				set.Elements = append(set.Elements, nodeport.Element{Key: nodeport.Key{Addr: r.IP}})
			}
		}
		slices.SortFunc(set.Elements, func(a, b nodeport.Element) int { return a.Key.Addr.Compare(b.Key.Addr) })
		set.Elements = slices.Compact(set.Elements)
		t.Sets = append(t.Sets, set)
		// A TCP segment without SYN that conntrack has not seen (nat
		// chains only see a flow's first packet) is mid-stream: count it,
		// mark it and its flow, and DNAT it to its own address so no later
		// dstnat chain sends it to an endpoint here.
		steer.Rules = append(steer.Rules, nodeport.Rule{
			nodeport.MatchDaddrInSet{Family: f.fam, Set: f.set},
			nodeport.MatchTCPNoSYN{},
			nodeport.Counter{},
			nodeport.SetCtMark{Mark: mark},
			nodeport.SetMark{Mark: mark},
			nodeport.DNATToDaddr{Family: f.fam},
		})
	}
	t.Chains = []*nodeport.Chain{restore, steer}
	return &nodeport.Ruleset{Tables: []*nodeport.Table{t}}
}

func (k *Kernel) applyRouting(routes []Route) error {
	if err := k.syncPolicyRules(true); err != nil {
		return err
	}
	want := map[string]Route{}
	for _, r := range routes {
		want[netip.PrefixFrom(r.IP, r.IP.BitLen()).String()] = r
	}
	var errs []error
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		have, err := nldump.Retry(func() ([]netlink.Route, error) {
			return netlink.RouteListFiltered(family, &netlink.Route{Table: k.table}, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return fmt.Errorf("list routes of table %d: %w", k.table, err)
		}
		for _, h := range have {
			if h.Dst == nil {
				continue
			}
			if r, ok := want[h.Dst.String()]; ok && h.Gw.Equal(net.IP(r.Via.AsSlice())) {
				delete(want, h.Dst.String())
				continue
			}
			if err := netlink.RouteDel(&h); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route %s: %w", h.Dst, err))
			}
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		r := want[key]
		via := net.IP(r.Via.AsSlice())
		// The next hop's interface, found the way the packet would be.
		got, err := netlink.RouteGet(via)
		if err != nil || len(got) == 0 {
			errs = append(errs, fmt.Errorf("no route to %s for %s: %w", r.Via, r.IP, err))
			continue
		}
		_, dst, _ := net.ParseCIDR(key)
		route := &netlink.Route{Dst: dst, Gw: via, LinkIndex: got[0].LinkIndex, Table: k.table}
		if err := netlink.RouteReplace(route); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", r.IP, r.Via, err))
		}
	}
	return errors.Join(errs...)
}

// syncPolicyRules adds (present) or deletes the "fwmark → table" rules of
// both families.
func (k *Kernel) syncPolicyRules(present bool) error {
	var errs []error
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		rules, err := nldump.Retry(func() ([]netlink.Rule, error) { return netlink.RuleList(family) })
		if err != nil {
			return fmt.Errorf("list rules: %w", err)
		}
		found := false
		for _, r := range rules {
			if r.Table == k.table && r.Priority == RulePriority {
				if present && r.Mark == k.mark && r.Mask != nil && *r.Mask == k.mark {
					found = true
					continue
				}
				if err := netlink.RuleDel(&r); err != nil {
					errs = append(errs, fmt.Errorf("delete rule: %w", err))
				}
			}
		}
		if present && !found {
			r := netlink.NewRule()
			r.Family, r.Table, r.Priority, r.Mark = family, k.table, RulePriority, k.mark
			mask := k.mark
			r.Mask = &mask
			if err := netlink.RuleAdd(r); err != nil {
				errs = append(errs, fmt.Errorf("add rule fwmark %#x table %d: %w", k.mark, k.table, err))
			}
		}
	}
	return errors.Join(errs...)
}

// String renders routes for logs.
func String(routes []Route) string {
	parts := make([]string, len(routes))
	for i, r := range routes {
		parts[i] = r.IP.String() + "→" + r.Via.String()
	}
	return strings.Join(parts, ", ")
}
