package config

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// L2Advertisement is a validated L2Advertisement.
type L2Advertisement struct {
	Name string
	// Pools holds the pool names listed in ipPools, sorted.
	Pools []string
	// PoolSelector is nil when ipPoolSelector is unset.
	PoolSelector labels.Selector
	// NodeSelector is nil when unset (every node).
	NodeSelector labels.Selector
	// Interfaces holds the allowed interface names, sorted; empty allows
	// every LAN-facing interface.
	Interfaces []string
	// Sticky is true for failback: Never.
	Sticky bool

	Generation int64
}

// AllPools reports whether the advertisement selects every pool: neither
// ipPools nor ipPoolSelector is set.
func (a *L2Advertisement) AllPools() bool {
	return len(a.Pools) == 0 && a.PoolSelector == nil
}

// SelectsPool reports whether the advertisement selects the pool: by name,
// by its labels, or because it selects all pools.
func (a *L2Advertisement) SelectsPool(name string, poolLabels labels.Set) bool {
	if a.AllPools() {
		return true
	}
	if _, ok := slices.BinarySearch(a.Pools, name); ok {
		return true
	}
	return a.PoolSelector != nil && a.PoolSelector.Matches(poolLabels)
}

// SelectsNode reports whether a node with these labels may announce.
func (a *L2Advertisement) SelectsNode(nodeLabels labels.Set) bool {
	return a.NodeSelector == nil || a.NodeSelector.Matches(nodeLabels)
}

// Interfaces is a set of interface names that may announce an address. The
// zero value allows none.
type Interfaces struct {
	// All allows every LAN-facing interface; Names is then empty.
	All bool
	// Names lists the allowed interfaces, sorted, when All is false.
	Names []string
}

// Any reports whether some interface is allowed, that is whether the node
// may announce at all.
func (s Interfaces) Any() bool { return s.All || len(s.Names) > 0 }

// Allows reports whether the named interface may announce.
func (s Interfaces) Allows(name string) bool {
	if s.All {
		return true
	}
	_, ok := slices.BinarySearch(s.Names, name)
	return ok
}

func (s Interfaces) String() string {
	if s.All {
		return "*"
	}
	return strings.Join(s.Names, ",")
}

// L2Advertisements is the validated set of L2Advertisements, resolved
// against a set of pools.
type L2Advertisements struct {
	// ByName holds every valid advertisement.
	ByName map[string]*L2Advertisement
	// Invalid maps each rejected advertisement's name to why.
	Invalid map[string]error
	// Unresolved maps a valid advertisement's name to the pools it names
	// that are missing or invalid; it selects them once they are valid.
	Unresolved map[string][]string

	pools  *Pools
	byPool map[string][]*L2Advertisement
}

// ParseL2Advertisements validates every advertisement and resolves which
// pools each selects. An invalid advertisement is reported in Invalid and
// selects nothing; the others are unaffected. pools may be nil (no pools).
func ParseL2Advertisements(ads []v1alpha1.L2Advertisement, pools *Pools) *L2Advertisements {
	out := &L2Advertisements{
		ByName:     map[string]*L2Advertisement{},
		Invalid:    map[string]error{},
		Unresolved: map[string][]string{},
		pools:      pools,
		byPool:     map[string][]*L2Advertisement{},
	}
	for i := range ads {
		a, err := parseL2Advertisement(&ads[i])
		if err != nil {
			out.Invalid[ads[i].Name] = err
			continue
		}
		out.ByName[a.Name] = a
		if missing := missingPools(a.Pools, pools); len(missing) > 0 {
			out.Unresolved[a.Name] = missing
		}
	}
	if pools != nil {
		for name, p := range pools.ByName {
			out.byPool[name] = out.selecting(name, p.Labels)
		}
	}
	return out
}

// selecting returns the advertisements that select a pool, by name.
func (l *L2Advertisements) selecting(pool string, poolLabels labels.Set) []*L2Advertisement {
	var sel []*L2Advertisement
	for _, a := range l.ByName {
		if a.SelectsPool(pool, poolLabels) {
			sel = append(sel, a)
		}
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].Name < sel[j].Name })
	return sel
}

// ForPool returns the advertisements that select the pool, sorted by name.
// A pool unknown to the parsed Pools (invalid or not yet seen) is matched by
// name and by all-pools advertisements only, since its labels are unknown.
func (l *L2Advertisements) ForPool(pool string) []*L2Advertisement {
	if sel, ok := l.byPool[pool]; ok {
		return sel
	}
	return l.selecting(pool, nil)
}

// Announced reports whether any advertisement selects the pool.
func (l *L2Advertisements) Announced(pool string) bool {
	return len(l.ForPool(pool)) > 0
}

// Sticky reports whether the pool's addresses stay with the node that took
// them over (failback: Never on some advertisement selecting the pool). It
// depends on the pool only, so every speaker answers alike.
func (l *L2Advertisements) Sticky(pool string) bool {
	for _, a := range l.ForPool(pool) {
		if a.Sticky {
			return true
		}
	}
	return false
}

// Interfaces returns the interfaces through which a node with these labels
// may announce the pool's addresses: the union over the advertisements that
// select both the pool and the node. The result allows nothing (Any is
// false) when no advertisement selects both.
func (l *L2Advertisements) Interfaces(pool string, nodeLabels labels.Set) Interfaces {
	var out Interfaces
	for _, a := range l.ForPool(pool) {
		if !a.SelectsNode(nodeLabels) {
			continue
		}
		if len(a.Interfaces) == 0 {
			return Interfaces{All: true}
		}
		out.Names = append(out.Names, a.Interfaces...)
	}
	sort.Strings(out.Names)
	out.Names = slices.Compact(out.Names)
	return out
}

func parseL2Advertisement(in *v1alpha1.L2Advertisement) (*L2Advertisement, error) {
	a := &L2Advertisement{Name: in.Name, Generation: in.Generation}
	var errs []string
	for _, p := range in.Spec.IPPools {
		if p == "" {
			errs = append(errs, "ipPools: empty pool name")
			continue
		}
		a.Pools = append(a.Pools, p)
	}
	sort.Strings(a.Pools)
	a.Pools = slices.Compact(a.Pools)
	var err error
	if a.PoolSelector, err = selector(in.Spec.IPPoolSelector); err != nil {
		errs = append(errs, "ipPoolSelector: "+err.Error())
	}
	if a.NodeSelector, err = selector(in.Spec.NodeSelector); err != nil {
		errs = append(errs, "nodeSelector: "+err.Error())
	}
	for _, name := range in.Spec.Interfaces {
		if err := ValidInterfaceName(string(name)); err != nil {
			errs = append(errs, "interfaces: "+err.Error())
			continue
		}
		a.Interfaces = append(a.Interfaces, string(name))
	}
	sort.Strings(a.Interfaces)
	a.Interfaces = slices.Compact(a.Interfaces)
	switch in.Spec.Failback {
	case "", v1alpha1.FailbackImmediate:
	case v1alpha1.FailbackNever:
		a.Sticky = true
	default:
		errs = append(errs, fmt.Sprintf("failback: %q is neither Immediate nor Never", in.Spec.Failback))
	}
	if err := invalid(errs); err != nil {
		return nil, err
	}
	return a, nil
}

// ValidInterfaceName checks a name the way Linux does (dev_valid_name): 1 to
// 15 bytes, not "." or "..", no '/', ':' or whitespace. The CRD's CEL rule
// says the same; this check covers objects that bypassed it.
func ValidInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty interface name")
	case len(name) > 15:
		return fmt.Errorf("interface name %q is longer than 15 bytes", name)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r"): // as the CEL class [/:[:space:]]
		return fmt.Errorf("interface name %q contains '/', ':' or whitespace", name)
	}
	return nil
}
