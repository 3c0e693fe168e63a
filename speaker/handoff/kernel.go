package handoff

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
	last  string // what was applied, "" after an error
	built bool   // the table has this process's structure; only sets change

	addresses atomic.Int64
}

var (
	descFlows = prometheus.NewDesc("beacon_handoff_flows_total",
		"TCP flows this node sent on to the previous announcer of an address it took over.", nil, nil)
	descAddresses = prometheus.NewDesc("beacon_handoff_addresses",
		"Addresses whose unknown mid-stream flows go to their previous announcer.", nil, nil)
)

// NewKernel returns a Kernel using mark bit mark and routing table id
// table (zero: the defaults). It touches nothing until Apply.
func NewKernel(mark uint32, table int) *Kernel {
	if mark == 0 {
		mark = DefaultMark
	}
	if table == 0 {
		table = DefaultRouting
	}
	return &Kernel{mark: mark, table: table}
}

// Apply makes the kernel hand off exactly routes: the nftables table is
// built once and afterwards only its sets change, in one transaction; then
// the policy rules and the routes are brought in line. Nothing is written
// when routes equal the last applied.
func (k *Kernel) Apply(routes []Route) error {
	key := fmt.Sprint(routes)
	if key == k.last && k.last != "" {
		return nil
	}
	k.last = ""
	if err := k.applyRules(routes); err != nil {
		k.built = false
		return err
	}
	if err := k.applyRouting(routes); err != nil {
		return err
	}
	k.last = key
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
	c, err := nftables.New()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descFlows, err)
		return
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}
	rules, err := c.GetRules(t, &nftables.Chain{Name: ChainSteer, Table: t})
	if err != nil {
		// No table yet: nothing handed off.
		rules = nil
	}
	var n uint64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if ctr, ok := e.(*expr.Counter); ok {
				n += ctr.Packets
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(descFlows, prometheus.CounterValue, float64(n))
}

// Remove deletes everything Apply created (for --handoff-window=0).
func (k *Kernel) Remove() error {
	k.last, k.built = "", false
	k.addresses.Store(0)
	c, _, err := deleteTable()
	if err != nil {
		return err
	}
	var errs []error
	if err := c.Flush(); err != nil {
		errs = append(errs, fmt.Errorf("delete table %s: %w", Table, err))
	}
	errs = append(errs, k.applyRouting(nil), k.syncPolicyRules(false))
	return errors.Join(errs...)
}

// deleteTable starts a batch that deletes the table whether or not it
// exists (adding an existing table is a no-op).
func deleteTable() (*nftables.Conn, *nftables.Table, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}
	c.AddTable(t)
	c.DelTable(t)
	return c, t, nil
}

func native32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// orMark loads key (ct or meta mark) and stores it back with mark set.
func orMark(load, store expr.Any, mark uint32) []expr.Any {
	return []expr.Any{load, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(^mark), Xor: native32(mark)}, store}
}

// families are the two sets and how a rule matches their addresses.
var families = []struct {
	set    string
	proto  byte
	key    nftables.SetDatatype
	offset uint32
	length uint32
	is4    bool
}{
	{SetV4, unix.NFPROTO_IPV4, nftables.TypeIPAddr, 16, 4, true},
	{SetV6, unix.NFPROTO_IPV6, nftables.TypeIP6Addr, 24, 16, false},
}

func elements(routes []Route, is4 bool) []nftables.SetElement {
	var out []nftables.SetElement
	for _, r := range routes {
		if r.IP.Is4() == is4 {
			out = append(out, nftables.SetElement{Key: r.IP.AsSlice()})
		}
	}
	return out
}

func (k *Kernel) applyRules(routes []Route) error {
	if k.built {
		// Only the sets change: the rules (and their counters) stay.
		c, err := nftables.New()
		if err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
		t := &nftables.Table{Family: nftables.TableFamilyINet, Name: Table}
		for _, fam := range families {
			set := &nftables.Set{Table: t, Name: fam.set, KeyType: fam.key}
			c.FlushSet(set)
			if err := c.SetAddElements(set, elements(routes, fam.is4)); err != nil {
				return fmt.Errorf("set %s: %w", fam.set, err)
			}
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("update sets of %s: %w", Table, err)
		}
		return nil
	}
	// Delete then add in one transaction: no segment sees a half table.
	c, t, err := deleteTable()
	if err != nil {
		return err
	}
	c.AddTable(t)

	restore := c.AddChain(&nftables.Chain{Name: ChainRestore, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(priorityRestore)})
	// Segments after the first of a handed-off flow: the conntrack entry
	// carries the mark, the routing decision needs it on the packet.
	ex := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: native32(k.mark), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: native32(0)},
	}
	ex = append(ex, orMark(&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true}, k.mark)...)
	c.AddRule(&nftables.Rule{Table: t, Chain: restore, Exprs: ex})

	steer := c.AddChain(&nftables.Chain{Name: ChainSteer, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(prioritySteer)})
	for _, fam := range families {
		set := &nftables.Set{Table: t, Name: fam.set, KeyType: fam.key}
		if err := c.AddSet(set, elements(routes, fam.is4)); err != nil {
			return fmt.Errorf("set %s: %w", fam.set, err)
		}
		daddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: fam.offset, Len: fam.length}
		// A TCP segment without SYN that conntrack has not seen (nat
		// chains only see a flow's first packet) is mid-stream: count it,
		// mark it and its flow, and DNAT it to its own address so no later
		// dstnat chain sends it to an endpoint here.
		ex := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{fam.proto}},
			daddr,
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0x02}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
			&expr.Counter{},
		}
		ex = append(ex, orMark(&expr.Ct{Register: 1, Key: expr.CtKeyMARK}, &expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true}, k.mark)...)
		ex = append(ex, orMark(&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true}, k.mark)...)
		ex = append(ex, daddr, &expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(fam.proto), RegAddrMin: 1})
		c.AddRule(&nftables.Rule{Table: t, Chain: steer, Exprs: ex})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("program table %s: %w", Table, err)
	}
	k.built = true
	return nil
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
		have, err := netlink.RouteListFiltered(family, &netlink.Route{Table: k.table}, netlink.RT_FILTER_TABLE)
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
		rules, err := netlink.RuleList(family)
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
