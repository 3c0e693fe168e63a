package nodeport

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
)

// MaxElementsPerCall bounds each element list: google/nftables v0.3.0
// silently truncates an element list over 64 KiB (uint16 attribute length).
const MaxElementsPerCall = 500

// Applier writes Rulesets to the kernel. The first Apply, and the first
// after any error, rebuilds Beacon's tables from scratch in one transaction
// (add, delete, re-add the table, so whatever the kernel held is replaced
// atomically); the others send only the difference from the last applied
// Ruleset. A failed transaction is never retried blindly: after ENOBUFS the
// kernel may have committed it, so only a full rebuild is safe.
//
// An Applier is not safe for concurrent use; the Syncer serialises calls.
type Applier struct {
	b     Batch
	ct    Conntrack
	scope Scope
	log   logr.Logger

	applied *Ruleset  // what the kernel holds; nil: unknown, rebuild
	udpPrev []UDPPort // conntrack baseline
	udpInit bool      // udpPrev is from a successful sync
}

// ApplyStats says what one Apply wrote.
type ApplyStats struct {
	Full bool
	// Chains, Rules and Elements count objects written (added, replaced
	// or deleted) in the transaction.
	Chains, Rules, Elements int
	// ConntrackDeleted counts deleted conntrack entries.
	ConntrackDeleted int
	// Commit is the time spent sending the transaction and reading the
	// kernel's answers.
	Commit time.Duration
}

// Scope names the tables an Applier owns: a full rebuild deletes every
// one the kernel lists, so that leftovers of an earlier run go too.
type Scope struct {
	// Families are the families of the tables.
	Families []Family
	// Base is the table of each family that a ruleset holds unless it
	// holds none at all.
	Base string
	// Owns says whether a table name is one of the scope's; nil: only
	// the tables of the ruleset and Base.
	Owns func(name string) bool
}

// owns says whether the table name is one of the scope's.
func (s Scope) owns(name string) bool {
	return name == s.Base || (s.Owns != nil && s.Owns(name))
}

// dataplaneScope is the scope of the dataplane's tables: the base table
// and its shard tables, in IPv4 and IPv6.
var dataplaneScope = Scope{Families: families[:], Base: TableName, Owns: IsBeaconTable}

// NewApplier returns an Applier over b for the dataplane's tables; ct may
// be nil to skip conntrack cleanup.
func NewApplier(b Batch, ct Conntrack, log logr.Logger) *Applier {
	return NewScopedApplier(b, ct, dataplaneScope, log)
}

// NewScopedApplier returns an Applier over b for the tables of scope.
func NewScopedApplier(b Batch, ct Conntrack, scope Scope, log logr.Logger) *Applier {
	return &Applier{b: b, ct: ct, scope: scope, log: log}
}

// Invalidate forces the next Apply to rebuild the tables.
func (a *Applier) Invalidate() { a.applied = nil }

// Apply makes the kernel hold rs. On error the kernel state is unknown and
// the next Apply is a full rebuild.
func (a *Applier) Apply(rs *Ruleset) (ApplyStats, error) {
	var st ApplyStats
	full := a.applied == nil || len(rs.Tables) == 0 || !a.sameLayout(a.applied, rs)
	if !full {
		if err := a.intact(); err != nil {
			a.log.Info("nftables state differs from the last sync; rebuilding", "reason", err.Error())
			full = true
		}
	}
	var err error
	if full {
		err = a.queueFull(rs, &st)
	} else {
		err = a.queueDiff(a.applied, rs, &st)
	}
	st.Full = full
	if err != nil {
		a.b.Discard() // never commit half a change
	} else {
		start := time.Now()
		err = a.b.Commit()
		st.Commit = time.Since(start)
	}
	if err != nil {
		a.applied = nil
		return st, fmt.Errorf("nftables transaction (full=%t): %w", full, err)
	}
	a.applied = rs
	st.ConntrackDeleted = a.cleanConntrack(rs)
	return st, nil
}

// IsBeaconTable reports whether a table name is one of Beacon's: the base
// table or a shard table.
func IsBeaconTable(name string) bool {
	return name == TableName || strings.HasPrefix(name, TableName+"-svc")
}

// intact checks cheaply, with one table listing per family, that the
// tables were not changed behind our back: each must exist, with as many
// chains and sets (the kernel's table "use" count) as we wrote.
func (a *Applier) intact() error {
	for _, fam := range a.scope.Families {
		var uses map[string]uint32
		for _, t := range a.applied.Tables {
			if t.Family != fam {
				continue
			}
			if uses == nil {
				var err error
				if uses, err = a.b.Tables(fam); err != nil {
					return fmt.Errorf("list %s tables: %w", fam, err)
				}
			}
			got, ok := uses[t.Name]
			if !ok {
				return fmt.Errorf("table %s %s is gone", t.Family, t.Name)
			}
			if want := uint32(len(t.Chains) + len(t.Sets)); got != want {
				return fmt.Errorf("table %s %s holds %d chains and sets, want %d", t.Family, t.Name, got, want)
			}
		}
	}
	return nil
}

type tableID struct {
	fam  Family
	name string
}

func tableIndex(rs *Ruleset) map[tableID]*Table {
	m := make(map[tableID]*Table, len(rs.Tables))
	for _, t := range rs.Tables {
		m[tableID{t.Family, t.Name}] = t
	}
	return m
}

// sameLayout says whether y can be reached from x by a diff: the same
// base tables, and the same base chains in the tables both have. Other
// tables (shards) may come and go.
func (a *Applier) sameLayout(x, y *Ruleset) bool {
	ia, ib := tableIndex(x), tableIndex(y)
	for _, fam := range a.scope.Families {
		id := tableID{fam, a.scope.Base}
		if (ia[id] == nil) != (ib[id] == nil) {
			return false
		}
	}
	for id, ta := range ia {
		tb := ib[id]
		if tb == nil || ta == tb {
			continue
		}
		// Base chains are static; a different set means a different build.
		for _, c := range ta.Chains {
			if c.Base != nil {
				if o := tb.Chain(c.Name); o == nil || o.Base == nil || *o.Base != *c.Base {
					return false
				}
			}
		}
		for _, c := range tb.Chains {
			if c.Base != nil && ta.Chain(c.Name) == nil {
				return false
			}
		}
	}
	return true
}

// queueFull replaces all of the scope's tables, whatever the kernel
// holds: those it lists, and ours.
func (a *Applier) queueFull(rs *Ruleset, st *ApplyStats) error {
	for _, fam := range a.scope.Families {
		names := []string{a.scope.Base}
		listed, err := a.b.Tables(fam)
		if err != nil {
			return fmt.Errorf("list %s tables: %w", fam, err)
		}
		for n := range listed {
			if a.scope.Owns != nil && a.scope.Owns(n) {
				names = append(names, n)
			}
		}
		for _, t := range rs.TablesOf(fam) {
			names = append(names, t.Name)
		}
		slices.Sort(names)
		for _, n := range slices.Compact(names) {
			// Add-then-delete removes the table whether or not it
			// exists, without failing the batch.
			a.b.AddTable(fam, n)
			a.b.DelTable(fam, n)
		}
	}
	for _, t := range rs.Tables {
		if err := a.addTable(t, st); err != nil {
			return err
		}
	}
	return nil
}

func (a *Applier) addTable(t *Table, st *ApplyStats) error {
	a.b.AddTable(t.Family, t.Name)
	for _, c := range t.Chains {
		a.b.AddChain(t.Family, t.Name, c)
		st.Chains++
	}
	for _, s := range t.Sets {
		if err := a.addSet(t, s, st); err != nil {
			return err
		}
	}
	for _, c := range t.Chains {
		if err := a.addRules(t, c, st); err != nil {
			return err
		}
	}
	return nil
}

func (a *Applier) addSet(t *Table, s *Set, st *ApplyStats) error {
	if err := a.b.AddSet(t.Family, t.Name, s); err != nil {
		return err
	}
	return a.elements(a.b.AddElements, t, s, s.Elements, st)
}

func (a *Applier) elements(op func(Family, string, *Set, []Element) error, t *Table, s *Set, els []Element, st *ApplyStats) error {
	for chunk := range slices.Chunk(els, MaxElementsPerCall) {
		if err := op(t.Family, t.Name, s, chunk); err != nil {
			return fmt.Errorf("elements of %s: %w", s.Name, err)
		}
		st.Elements += len(chunk)
	}
	return nil
}

func (a *Applier) addRules(t *Table, c *Chain, st *ApplyStats) error {
	for _, r := range c.Rules {
		if err := a.b.AddRule(t.Family, t.Name, c.Name, r); err != nil {
			return err
		}
		st.Rules++
	}
	return nil
}

// queueDiff queues the changes from old to new. Tables are independent
// of each other: a table new lacks is deleted whole, a new one is added
// whole, and a table both share by pointer is unchanged.
func (a *Applier) queueDiff(old, new *Ruleset, st *ApplyStats) error {
	oi, ni := tableIndex(old), tableIndex(new)
	for _, ot := range old.Tables {
		if ni[tableID{ot.Family, ot.Name}] == nil {
			a.b.DelTable(ot.Family, ot.Name)
			st.Chains += len(ot.Chains)
		}
	}
	for _, nt := range new.Tables {
		ot := oi[tableID{nt.Family, nt.Name}]
		var err error
		switch {
		case ot == nil:
			err = a.addTable(nt, st)
		case ot != nt:
			err = a.diffTable(ot, nt, st)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// diffTable queues the changes of one table in an order the kernel
// accepts within one transaction: references are dropped (elements
// deleted, chains flushed) before what they point to is deleted, and
// targets are created before anything points to them.
func (a *Applier) diffTable(ot, nt *Table, st *ApplyStats) error {
	type elemDiff struct {
		s        *Set
		add, del []Element
	}
	var diffs []elemDiff
	var delSets, addSets []*Set
	for _, os := range ot.Sets {
		ns := nt.Set(os.Name)
		if ns == os {
			continue
		}
		if ns == nil || !sameSetDef(os, ns) {
			delSets = append(delSets, os)
			continue
		}
		if add, del := diffElements(os, ns); len(add)+len(del) > 0 {
			diffs = append(diffs, elemDiff{ns, add, del})
		}
	}
	for _, ns := range nt.Sets {
		if os := ot.Set(ns.Name); os == nil || !sameSetDef(os, ns) {
			addSets = append(addSets, ns)
		}
	}
	var delChains, addChains, changed []*Chain
	for _, oc := range ot.Chains {
		nc := nt.Chain(oc.Name)
		switch {
		case nc == nil:
			delChains = append(delChains, oc)
		case nc != oc && !sameRules(oc.Rules, nc.Rules):
			changed = append(changed, nc)
		}
	}
	for _, nc := range nt.Chains {
		if ot.Chain(nc.Name) == nil {
			addChains = append(addChains, nc)
		}
	}

	// 1. Drop references: elements, then rules.
	for _, d := range diffs {
		if err := a.elements(a.b.DelElements, nt, d.s, d.del, st); err != nil {
			return err
		}
	}
	for _, c := range slices.Concat(changed, delChains) {
		a.b.FlushChain(nt.Family, nt.Name, c.Name)
		st.Chains++
	}
	// 2. Delete what nothing points to any more.
	for _, c := range delChains {
		a.b.DelChain(nt.Family, nt.Name, c.Name)
	}
	for _, s := range delSets {
		a.b.DelSet(nt.Family, nt.Name, s.Name)
	}
	// 3. Create targets, then what points to them.
	for _, s := range addSets {
		if err := a.addSet(nt, s, st); err != nil {
			return err
		}
	}
	for _, c := range addChains {
		a.b.AddChain(nt.Family, nt.Name, c)
		st.Chains++
	}
	for _, c := range slices.Concat(addChains, changed) {
		if err := a.addRules(nt, c, st); err != nil {
			return err
		}
	}
	for _, d := range diffs {
		if err := a.elements(a.b.AddElements, nt, d.s, d.add, st); err != nil {
			return err
		}
	}
	return nil
}

func sameSetDef(a, b *Set) bool {
	return a.Name == b.Name && slices.Equal(a.Fields, b.Fields) && a.Map == b.Map && a.Family == b.Family &&
		a.Dynamic == b.Dynamic && a.Timeout == b.Timeout && a.Size == b.Size
}

// sameRules compares statement by statement; every statement type is a
// comparable struct.
func sameRules(a, b []Rule) bool {
	return slices.EqualFunc(a, b, func(x, y Rule) bool {
		return slices.EqualFunc(x, y, func(s, t Stmt) bool { return s == t })
	})
}

// diffElements returns the elements to add and to delete; an element whose
// verdict changed is deleted and added again.
func diffElements(old, new *Set) (add, del []Element) {
	i, j := 0, 0
	for i < len(old.Elements) || j < len(new.Elements) {
		switch {
		case j == len(new.Elements):
			del = append(del, old.Elements[i])
			i++
		case i == len(old.Elements):
			add = append(add, new.Elements[j])
			j++
		default:
			o, n := old.Elements[i], new.Elements[j]
			switch c := compareKey(o.Key, n.Key); {
			case c < 0:
				del = append(del, o)
				i++
			case c > 0:
				add = append(add, n)
				j++
			default:
				if o.Goto != n.Goto {
					del = append(del, o)
					add = append(add, n)
				}
				i++
				j++
			}
		}
	}
	return add, del
}
