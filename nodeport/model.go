package nodeport

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Family is an nftables table family.
type Family uint8

// The dataplane programs IPv4 and IPv6, each in its own table; an Inet
// table holds both, so its address statements and sets name their family.
const (
	IPv4 Family = 4
	IPv6 Family = 6
	Inet Family = 1
)

// String is the nft family name.
func (f Family) String() string {
	switch f {
	case IPv6:
		return "ip6"
	case Inet:
		return "inet"
	}
	return "ip"
}

// or is f, or the table's family fam when f is unset.
func (f Family) or(fam Family) Family {
	if f == 0 {
		return fam
	}
	return f
}

func (f Family) has(a netip.Addr) bool { return (f == IPv4) == a.Is4() }

// ip is the payload keyword of the family ("ip saddr", "ip6 saddr").
func (f Family) ip() string { return f.String() }

// Ruleset is the whole desired dataplane state of a node.
type Ruleset struct {
	// Tables holds the ip tables then the ip6 tables, each family's base
	// table first, then its shard tables in shard order; none in ModeOff.
	Tables []*Table
	// UDP lists every UDP service port, for conntrack cleanup.
	UDP []UDPPort
	// Health lists the health-check node ports to serve.
	Health []HealthCheck
	// Warnings reports dispatch keys claimed by more than one Service; the
	// first in namespace/name order wins.
	Warnings []string
}

// Table is one nftables table.
type Table struct {
	Family Family
	Name   string
	// Sets come in a fixed order: the static ones, then the per-endpoint
	// affinity sets sorted by name.
	Sets []*Set
	// Chains come in a fixed order: base chains, the static dispatch chain,
	// then service chains sorted by name.
	Chains []*Chain

	// Indexes by name, built by index.
	chainIdx map[string]*Chain
	setIdx   map[string]*Set
}

// Chain is one chain; Base is nil for regular chains.
type Chain struct {
	Name  string
	Base  *BaseChain
	Rules []Rule
}

// BaseChain is the hook of a base chain, with policy accept.
type BaseChain struct {
	Type     ChainType
	Hook     Hook
	Priority int32
}

// ChainType is the type of a base chain.
type ChainType uint8

// Chain types; the zero value is nat.
const (
	ChainNAT ChainType = iota
	ChainFilter
)

// String is the nft chain type name.
func (t ChainType) String() string {
	if t == ChainFilter {
		return "filter"
	}
	return "nat"
}

// Hook is a netfilter hook.
type Hook string

// Hooks Beacon uses.
const (
	HookPrerouting  Hook = "prerouting"
	HookOutput      Hook = "output"
	HookPostrouting Hook = "postrouting"
)

// Rule is a sequence of statements evaluated left to right, like an nft rule.
type Rule []Stmt

// Field is one component of a set key.
type Field uint8

// Key fields, in the order they appear in a key.
const (
	FieldAddr  Field = iota + 1 // an address of the table's family
	FieldAddr2                  // a second address (pairs)
	FieldProto                  // inet_proto
	FieldPort                   // inet_service
)

// Set is a named set, or a verdict map when Map is true.
type Set struct {
	Name   string
	Fields []Field
	Map    bool
	// Dynamic sets are updated from the packet path (session affinity).
	Dynamic bool
	Timeout time.Duration
	Size    uint32
	// Family is the family of FieldAddr in an Inet table; elsewhere it
	// is unset (the table's).
	Family Family
	// Elements are sorted by key.
	Elements []Element
}

// Key is an element key; the set's Fields say which parts are used.
type Key struct {
	Addr  netip.Addr
	Addr2 netip.Addr
	Proto Protocol
	Port  uint16
}

// Element is one set element; Goto is the verdict of a map element.
type Element struct {
	Key  Key
	Goto string
}

// Stmt is one nft statement (a match, an action or a verdict).
type Stmt interface {
	render(f Family) string
}

// Matches.
type (
	// MatchProto is "meta l4proto P".
	MatchProto struct{ Proto Protocol }
	// MatchNumgen is "numgen random mod M 0": true with probability 1/M.
	MatchNumgen struct{ Mod uint32 }
	// MatchSaddr is "ip saddr PREFIX".
	MatchSaddr struct{ Prefix netip.Prefix }
	// MatchSaddrInSet is "ip saddr @SET".
	MatchSaddrInSet struct{ Set string }
	// MatchDaddrInSet is "ip daddr @SET". Family is unset (the table's)
	// except in an Inet table, where the match implies "meta nfproto".
	MatchDaddrInSet struct {
		Family Family
		Set    string
	}
	// MatchDestInSet is "ip daddr . meta l4proto . th dport @SET".
	MatchDestInSet struct{ Set string }
	// MatchProtoPortInSet is "meta l4proto . th dport @SET".
	MatchProtoPortInSet struct{ Set string }
	// MatchAddrPairInSet is "ip saddr . ip daddr @SET".
	MatchAddrPairInSet struct{ Set string }
	// MatchFibSaddrLocal is "fib saddr type local": the packet comes from
	// the node itself.
	MatchFibSaddrLocal struct{}
	// MatchMark is "meta mark & M == M".
	MatchMark struct{ Mark uint32 }
	// MatchCtDNAT is "ct status dnat".
	MatchCtDNAT struct{}
	// MatchCtMark is "ct mark & M != 0": the connection carries a bit of M.
	MatchCtMark struct{ Mark uint32 }
	// MatchTCPNoSYN is "tcp flags ! syn": a TCP segment without SYN.
	MatchTCPNoSYN struct{}
)

// Actions.
type (
	// SetMark is "meta mark set meta mark | M".
	SetMark struct{ Mark uint32 }
	// ToggleMark is "meta mark set meta mark ^ M".
	ToggleMark struct{ Mark uint32 }
	// SetCtMark is "ct mark set ct mark | M".
	SetCtMark struct{ Mark uint32 }
	// Counter is "counter": the kernel counts packets and bytes.
	Counter struct{}
	// UpdateSaddr is "update @SET { ip saddr }": add the source address to
	// a dynamic set or refresh its timeout.
	UpdateSaddr struct{ Set string }
)

// Terminal statements and verdicts.
type (
	// DispatchVmap is "ip daddr . meta l4proto . th dport vmap @MAP".
	DispatchVmap struct{ Map string }
	// NodePortVmap is "meta l4proto . th dport vmap @MAP".
	NodePortVmap struct{ Map string }
	// DNAT is "dnat to ADDR:PORT".
	DNAT struct{ To netip.AddrPort }
	// DNATToDaddr is "dnat to ip daddr": the packet keeps its destination,
	// and later dstnat chains leave it alone. Family is as in
	// MatchDaddrInSet.
	DNATToDaddr struct{ Family Family }
	// Masquerade is "masquerade fully-random".
	Masquerade struct{}
	// Reject is "reject with tcp reset" or "reject" (ICMP port unreachable).
	Reject struct{ TCPReset bool }
	// Goto and Jump are the chain verdicts.
	Goto struct{ Chain string }
	Jump struct{ Chain string }
	// Drop is the drop verdict.
	Drop struct{}
)

func (s MatchProto) render(Family) string  { return "meta l4proto " + s.Proto.String() }
func (s MatchNumgen) render(Family) string { return fmt.Sprintf("numgen random mod %d 0", s.Mod) }
func (s MatchSaddr) render(f Family) string {
	if s.Prefix.Bits() == s.Prefix.Addr().BitLen() {
		return f.ip() + " saddr " + s.Prefix.Addr().String()
	}
	return f.ip() + " saddr " + s.Prefix.String()
}
func (s MatchSaddrInSet) render(f Family) string { return f.ip() + " saddr @" + s.Set }
func (s MatchDaddrInSet) render(f Family) string { return s.Family.or(f).ip() + " daddr @" + s.Set }
func (s MatchDestInSet) render(f Family) string {
	return f.ip() + " daddr . meta l4proto . th dport @" + s.Set
}
func (s MatchProtoPortInSet) render(Family) string { return "meta l4proto . th dport @" + s.Set }
func (s MatchAddrPairInSet) render(f Family) string {
	return f.ip() + " saddr . " + f.ip() + " daddr @" + s.Set
}
func (MatchFibSaddrLocal) render(Family) string { return "fib saddr type local" }
func (s MatchMark) render(Family) string {
	return fmt.Sprintf("meta mark & 0x%08x == 0x%08x", s.Mark, s.Mark)
}
func (MatchCtDNAT) render(Family) string { return "ct status dnat" }
func (s MatchCtMark) render(Family) string {
	return fmt.Sprintf("ct mark & 0x%08x != 0x00000000", s.Mark)
}
func (MatchTCPNoSYN) render(Family) string { return "tcp flags ! syn" }
func (s SetCtMark) render(Family) string {
	return fmt.Sprintf("ct mark set ct mark | 0x%08x", s.Mark)
}
func (Counter) render(Family) string { return "counter" }
func (s SetMark) render(Family) string {
	return fmt.Sprintf("meta mark set meta mark | 0x%08x", s.Mark)
}
func (s ToggleMark) render(Family) string {
	return fmt.Sprintf("meta mark set meta mark ^ 0x%08x", s.Mark)
}
func (s UpdateSaddr) render(f Family) string { return "update @" + s.Set + " { " + f.ip() + " saddr }" }
func (s DispatchVmap) render(f Family) string {
	return f.ip() + " daddr . meta l4proto . th dport vmap @" + s.Map
}
func (s NodePortVmap) render(Family) string { return "meta l4proto . th dport vmap @" + s.Map }
func (s DNAT) render(Family) string {
	if s.To.Addr().Is6() {
		return fmt.Sprintf("dnat to [%s]:%d", s.To.Addr(), s.To.Port())
	}
	return "dnat to " + s.To.String()
}
func (s DNATToDaddr) render(f Family) string {
	ip := s.Family.or(f).ip()
	if f == Inet {
		return "dnat " + ip + " to " + ip + " daddr"
	}
	return "dnat to " + ip + " daddr"
}
func (Masquerade) render(Family) string { return "masquerade fully-random" }
func (s Reject) render(Family) string {
	if s.TCPReset {
		return "reject with tcp reset"
	}
	return "reject"
}
func (s Goto) render(Family) string { return "goto " + s.Chain }
func (s Jump) render(Family) string { return "jump " + s.Chain }
func (Drop) render(Family) string   { return "drop" }

// Render formats a rule as nft-like text.
func (r Rule) Render(f Family) string {
	parts := make([]string, 0, len(r))
	for _, s := range r {
		parts = append(parts, s.render(f))
	}
	return strings.Join(parts, " ")
}

func (f Field) typeName(fam Family) string {
	switch f {
	case FieldAddr, FieldAddr2:
		if fam == IPv6 {
			return "ipv6_addr"
		}
		return "ipv4_addr"
	case FieldProto:
		return "inet_proto"
	case FieldPort:
		return "inet_service"
	}
	return "invalid"
}

func (s *Set) keyString(k Key) string {
	parts := make([]string, 0, len(s.Fields))
	for _, f := range s.Fields {
		switch f {
		case FieldAddr:
			parts = append(parts, k.Addr.String())
		case FieldAddr2:
			parts = append(parts, k.Addr2.String())
		case FieldProto:
			parts = append(parts, k.Proto.String())
		case FieldPort:
			parts = append(parts, fmt.Sprint(k.Port))
		}
	}
	return strings.Join(parts, " . ")
}

func (s *Set) typeString(fam Family) string {
	parts := make([]string, 0, len(s.Fields))
	for _, f := range s.Fields {
		parts = append(parts, f.typeName(fam))
	}
	t := strings.Join(parts, " . ")
	if s.Map {
		t += " : verdict"
	}
	return t
}

// String renders the ruleset as nft-like text, one element per line, for
// golden tests and debugging.
func (rs *Ruleset) String() string {
	var b strings.Builder
	for i, t := range rs.Tables {
		if i > 0 {
			b.WriteString("\n")
		}
		t.write(&b)
	}
	return b.String()
}

// String renders one table.
func (t *Table) String() string {
	var b strings.Builder
	t.write(&b)
	return b.String()
}

func (t *Table) write(b *strings.Builder) {
	fmt.Fprintf(b, "table %s %s {\n", t.Family, t.Name)
	for _, s := range t.Sets {
		kind := "set"
		if s.Map {
			kind = "map"
		}
		fmt.Fprintf(b, "\t%s %s {\n\t\ttype %s\n", kind, s.Name, s.typeString(s.Family.or(t.Family)))
		if s.Size > 0 {
			fmt.Fprintf(b, "\t\tsize %d\n", s.Size)
		}
		if s.Dynamic {
			b.WriteString("\t\tflags dynamic,timeout\n")
		}
		if s.Timeout > 0 {
			fmt.Fprintf(b, "\t\ttimeout %s\n", nftDuration(s.Timeout))
		}
		if len(s.Elements) > 0 {
			b.WriteString("\t\telements = {\n")
			for i, e := range s.Elements {
				sep := ","
				if i == len(s.Elements)-1 {
					sep = ""
				}
				if s.Map {
					fmt.Fprintf(b, "\t\t\t%s : goto %s%s\n", s.keyString(e.Key), e.Goto, sep)
				} else {
					fmt.Fprintf(b, "\t\t\t%s%s\n", s.keyString(e.Key), sep)
				}
			}
			b.WriteString("\t\t}\n")
		}
		b.WriteString("\t}\n\n")
	}
	for i, c := range t.Chains {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(b, "\tchain %s {\n", c.Name)
		if c.Base != nil {
			fmt.Fprintf(b, "\t\ttype %s hook %s priority %d; policy accept;\n", c.Base.Type, c.Base.Hook, c.Base.Priority)
		}
		for _, r := range c.Rules {
			fmt.Fprintf(b, "\t\t%s\n", r.Render(t.Family))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
}

// nftDuration formats like nft: 3h, 10800s as "3h", 90s as "1m30s".
func nftDuration(d time.Duration) string {
	d = d.Round(time.Second)
	var b strings.Builder
	for _, u := range []struct {
		d time.Duration
		s string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%s", n, u.s)
			d -= n * u.d
		}
	}
	if b.Len() == 0 {
		return "0s"
	}
	return b.String()
}

// Table returns the named table of the family, or nil.
func (rs *Ruleset) Table(f Family, name string) *Table {
	for _, t := range rs.Tables {
		if t.Family == f && t.Name == name {
			return t
		}
	}
	return nil
}

// TablesOf returns the tables of the family: the base table, then the
// shard tables in shard order.
func (rs *Ruleset) TablesOf(f Family) []*Table {
	var out []*Table
	for _, t := range rs.Tables {
		if t.Family == f {
			out = append(out, t)
		}
	}
	return out
}

// index builds the name indexes; Build calls it once the table is final.
func (t *Table) index() {
	t.chainIdx = make(map[string]*Chain, len(t.Chains))
	for _, c := range t.Chains {
		t.chainIdx[c.Name] = c
	}
	t.setIdx = make(map[string]*Set, len(t.Sets))
	for _, s := range t.Sets {
		t.setIdx[s.Name] = s
	}
}

// Chain returns the named chain, or nil.
func (t *Table) Chain(name string) *Chain {
	if t.chainIdx == nil {
		t.index()
	}
	return t.chainIdx[name]
}

// Set returns the named set, or nil.
func (t *Table) Set(name string) *Set {
	if t.setIdx == nil {
		t.index()
	}
	return t.setIdx[name]
}

// Lookup returns the element with key k.
func (s *Set) Lookup(k Key) (Element, bool) {
	i, ok := slices.BinarySearchFunc(s.Elements, k, func(e Element, k Key) int { return compareKey(e.Key, k) })
	if !ok {
		return Element{}, false
	}
	return s.Elements[i], true
}

// Counts returns the number of rules and set elements in the ruleset.
func (rs *Ruleset) Counts() (rules, elements int) {
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			rules += len(c.Rules)
		}
		for _, s := range t.Sets {
			elements += len(s.Elements)
		}
	}
	return rules, elements
}
