package config

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// Pool is a validated IPPool.
type Pool struct {
	Name string
	// Labels are the IPPool's labels, for selectors that pick pools.
	Labels labels.Set
	// Declared holds the blocks as written, in order.
	Declared []Range
	// Ranges holds the addresses the pool may hand out: Declared, sorted and
	// merged, minus the parts that older pools already declare.
	Ranges []Range
	// Conflicts names the older pools this one overlaps, sorted.
	Conflicts []string

	AutoAssign       bool
	AvoidBuggyIPs    bool
	AllowExternalIPs bool
	Priority         int32
	// Namespaces, when not empty, is the set of namespaces the pool serves.
	Namespaces []string
	// NamespaceSelector and ServiceSelector are nil when unset (match all).
	NamespaceSelector labels.Selector
	ServiceSelector   labels.Selector

	Generation int64
}

// Families returns the families the pool can hand out, IPv4 first.
func (p *Pool) Families() []Family {
	var out []Family
	for _, f := range []Family{IPv4, IPv6} {
		for _, r := range p.Ranges {
			if r.Family() == f {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// Serves reports whether the pool's serviceAllocation admits a Service in the
// namespace with the given labels.
func (p *Pool) Serves(namespace string, nsLabels, svcLabels labels.Set) bool {
	if len(p.Namespaces) > 0 && !slices.Contains(p.Namespaces, namespace) {
		return false
	}
	if p.NamespaceSelector != nil && !p.NamespaceSelector.Matches(nsLabels) {
		return false
	}
	if p.ServiceSelector != nil && !p.ServiceSelector.Matches(svcLabels) {
		return false
	}
	return true
}

// Before orders pools for allocation: lower priority numbers first, pools
// without priority last, then by name.
func (p *Pool) Before(o *Pool) bool {
	pp, op := p.Priority, o.Priority
	switch {
	case pp == op:
		return p.Name < o.Name
	case pp == 0:
		return false
	case op == 0:
		return true
	}
	return pp < op
}

// Pools is the validated set of pools.
type Pools struct {
	// ByName holds every valid pool.
	ByName map[string]*Pool
	// Invalid maps each rejected pool's name to why.
	Invalid map[string]error
}

// Sorted returns the valid pools in allocation order.
func (ps *Pools) Sorted() []*Pool {
	out := make([]*Pool, 0, len(ps.ByName))
	for _, p := range ps.ByName {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// ParsePools validates every pool and resolves overlaps. A pool that
// overlaps older ones (by creation time, then name) keeps only the addresses
// no older pool declares, and lists those pools in Conflicts; so adding a
// pool can never take an address away from an existing one.
func ParsePools(in []v1alpha1.IPPool) *Pools {
	items := slices.Clone(in)
	sort.SliceStable(items, func(i, j int) bool {
		ti, tj := items[i].CreationTimestamp, items[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return items[i].Name < items[j].Name
	})
	out := &Pools{ByName: map[string]*Pool{}, Invalid: map[string]error{}}
	type claim struct {
		r    Range
		pool string
	}
	var claimed []claim
	for i := range items {
		p, err := parsePool(&items[i])
		if err != nil {
			out.Invalid[items[i].Name] = err
			continue
		}
		conflicts := map[string]bool{}
		var cut []Range
		for _, c := range claimed {
			for _, r := range p.Ranges {
				if r.Overlaps(c.r) {
					conflicts[c.pool] = true
					cut = append(cut, c.r)
				}
			}
		}
		for _, r := range p.Ranges {
			claimed = append(claimed, claim{r, p.Name})
		}
		if len(cut) > 0 {
			var rest []Range
			for _, r := range p.Ranges {
				rest = append(rest, Subtract(r, cut)...)
			}
			p.Ranges = Merge(rest)
			for name := range conflicts {
				p.Conflicts = append(p.Conflicts, name)
			}
			sort.Strings(p.Conflicts)
		}
		out.ByName[p.Name] = p
	}
	return out
}

func parsePool(in *v1alpha1.IPPool) (*Pool, error) {
	p := &Pool{
		Name:             in.Name,
		Labels:           labels.Set(maps.Clone(in.Labels)),
		AutoAssign:       in.Spec.AutoAssign == nil || *in.Spec.AutoAssign,
		AvoidBuggyIPs:    in.Spec.AvoidBuggyIPs,
		AllowExternalIPs: in.Spec.AllowExternalIPs,
		Generation:       in.Generation,
	}
	if len(in.Spec.Addresses) == 0 {
		return nil, errors.New("spec.addresses is empty")
	}
	var errs []string
	for _, b := range in.Spec.Addresses {
		r, err := ParseBlock(string(b))
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		p.Declared = append(p.Declared, r)
	}
	if sa := in.Spec.ServiceAllocation; sa != nil {
		if sa.Priority < 0 {
			errs = append(errs, "serviceAllocation.priority must not be negative")
		}
		p.Priority = sa.Priority
		p.Namespaces = slices.Clone(sa.Namespaces)
		sort.Strings(p.Namespaces)
		p.Namespaces = slices.Compact(p.Namespaces)
		var err error
		if p.NamespaceSelector, err = selector(sa.NamespaceSelector); err != nil {
			errs = append(errs, "serviceAllocation.namespaceSelector: "+err.Error())
		}
		if p.ServiceSelector, err = selector(sa.ServiceSelector); err != nil {
			errs = append(errs, "serviceAllocation.serviceSelector: "+err.Error())
		}
	}
	if err := invalid(errs); err != nil {
		return nil, err
	}
	// Blocks of one pool may overlap each other harmlessly; merge them.
	p.Ranges = Merge(p.Declared)
	return p, nil
}

func selector(s *metav1.LabelSelector) (labels.Selector, error) {
	if s == nil {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return sel, nil
}

// Merge sorts ranges and joins those that overlap or touch.
func Merge(in []Range) []Range {
	rs := slices.Clone(in)
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].First.BitLen() != rs[j].First.BitLen() {
			return rs[i].First.BitLen() < rs[j].First.BitLen()
		}
		return rs[i].First.Compare(rs[j].First) < 0
	})
	var out []Range
	for _, r := range rs {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.Last.BitLen() == r.First.BitLen() && (last.Overlaps(r) || last.Last.Next() == r.First) {
				if r.Last.Compare(last.Last) > 0 {
					last.Last = r.Last
				}
				continue
			}
		}
		out = append(out, r)
	}
	return out
}

// PoolOf returns the valid pool whose effective ranges hold ip, or "".
// Ranges of valid pools never overlap (see ParsePools), so at most one does.
func (ps *Pools) PoolOf(ip netip.Addr) string {
	for name, p := range ps.ByName {
		for _, r := range p.Ranges {
			if r.Contains(ip) {
				return name
			}
		}
	}
	return ""
}
