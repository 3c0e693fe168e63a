package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config"
)

// Request describes what one Service wants. Key is "namespace/name".
type Request struct {
	Key             string
	Namespace       string
	NamespaceLabels labels.Set
	ServiceLabels   labels.Set
	// Families lists the wanted families in the Service's ipFamilies order:
	// one or two distinct entries.
	Families []config.Family
	// RequireAll is true for SingleStack and RequireDualStack: every family
	// or fail. False for PreferDualStack: at least one.
	RequireAll bool
	// Pool (beaconlb.io/pool) restricts the Service to that pool, which need
	// not have autoAssign.
	Pool string
	// IPs are requested addresses (beaconlb.io/ips or spec.loadBalancerIP),
	// at most one per family.
	IPs []netip.Addr
	// SharingKey (beaconlb.io/allow-shared-ip) lets Services with the same
	// key and disjoint ports hold one address; "" means no sharing.
	SharingKey string
	Ports      []Port
	// Local is externalTrafficPolicy: Local; Selector is the canonical pod
	// selector, compared between sharing Services when any is Local.
	Local    bool
	Selector string
}

// Result is what a Service holds after Allocate.
type Result struct {
	// IPs holds one address per obtained family, in the order of
	// Request.Families.
	IPs []netip.Addr
	// Pools names the pool of each address ("" if it lies in no pool).
	Pools []string
	// Changed reports whether IPs differ from what the key held before.
	Changed bool
	// Stale lists addresses of IPs that are no longer valid for the
	// request but were kept because no valid replacement was available.
	Stale []netip.Addr
	// Warnings explains, in the order of Request.Families, each stale
	// address and each family that PreferDualStack could not obtain.
	// IsRetryable tells whether freed capacity may resolve one.
	Warnings []*Error
	// Conflicting lists addresses of IPs that this call knew other hosts
	// use (SetConflicts) and kept anyway: requested, or with no
	// replacement free. A caller that learns of a conflict from elsewhere
	// judges an address by this, not by what it learnt: a conflict this
	// call did not know of makes the address move on the next call.
	Conflicting []netip.Addr
}

// request is a checked Request.
type request struct {
	*Request
	share share
	pool  *poolState   // named pool, or nil
	scope []*poolState // the pools automatic choice looks at, in order
	want  [2]netip.Addr
}

func (a *Allocator) check(req *Request) (request, *Error) {
	r := request{Request: req, share: shareOf(req), scope: a.pools}
	if req.Key == "" {
		return r, errorf(ReasonBadRequest, "request has no Service key")
	}
	if len(req.Families) == 0 || len(req.Families) > 2 {
		return r, errorf(ReasonBadRequest, "Service %s must want one or two IP families, not %d", req.Key, len(req.Families))
	}
	for i, f := range req.Families {
		if f != config.IPv4 && f != config.IPv6 {
			return r, errorf(ReasonBadRequest, "Service %s wants unknown IP family %s", req.Key, f)
		}
		if i == 1 && f == req.Families[0] {
			return r, errorf(ReasonBadRequest, "Service %s lists IP family %s twice", req.Key, f)
		}
	}
	for _, ip := range req.IPs {
		if err := plain(ip); err != nil {
			return r, err
		}
		f := config.FamilyOf(ip)
		if !slices.Contains(req.Families, f) {
			return r, errorf(ReasonBadRequest, "requested address %s is %s, but Service %s uses only %s", ip, f, req.Key, families(req.Families))
		}
		if w := r.want[famIndex(f)]; w.IsValid() {
			return r, errorf(ReasonBadRequest, "Service %s requests two %s addresses (%s and %s); request at most one per family", req.Key, f, w, ip)
		}
		r.want[famIndex(f)] = ip
	}
	if req.Pool != "" {
		if r.pool = a.byName[req.Pool]; r.pool == nil {
			if err := a.invalid[req.Pool]; err != nil {
				return r, errorf(ReasonUnknownPool, "pool %q named by beaconlb.io/pool is invalid: %v", req.Pool, err)
			}
			return r, errorf(ReasonUnknownPool, "pool %q named by beaconlb.io/pool does not exist", req.Pool)
		}
		r.scope = []*poolState{r.pool}
	}
	return r, nil
}

func families(fs []config.Family) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = f.String()
	}
	return strings.Join(s, " and ")
}

func (r *request) serves(p *poolState) bool {
	return p.Serves(r.Namespace, r.NamespaceLabels, r.ServiceLabels)
}

// valid explains why the Service may not hold ip (requested or held), or
// returns nil. autoAssign does not matter here: it only governs which pools
// automatic choice draws from.
func (a *Allocator) valid(r *request, ip netip.Addr) *Error {
	p := a.lookup(ip)
	switch {
	case p == nil && r.pool != nil:
		return errorf(ReasonIPNotInPool, "%s is not in pool %q named by beaconlb.io/pool (it lies in no pool)", ip, r.pool.Name)
	case p == nil:
		return errorf(ReasonIPNotInPool, "%s lies in no IP pool", ip)
	case r.pool != nil && p != r.pool:
		return errorf(ReasonIPNotInPool, "%s belongs to pool %q, not to pool %q named by beaconlb.io/pool", ip, p.Name, r.pool.Name)
	case avoided(p, ip):
		return errorf(ReasonIPNotInPool, "%s is never handed out: pool %q sets avoidBuggyIPs, which skips addresses ending in .0 and .255", ip, p.Name)
	case !r.serves(p):
		return errorf(ReasonIPNotAllowed, "%s belongs to pool %q, which does not serve Service %s (its serviceAllocation does not admit namespace %q or the Service's labels)", ip, p.Name, r.Key, r.Namespace)
	}
	return a.shareable(ip, r.Key, r.share)
}

// eligible reports whether automatic choice may draw family fi from p for
// r. r.scope holds the candidates.
func (r *request) eligible(p *poolState, fi int) bool {
	return p.fams[fi] != nil && (p.AutoAssign || r.pool != nil) && r.serves(p)
}

// pick chooses an address of family f automatically: with a sharing key, the
// lowest compatible address already shared under it; else the lowest free
// address of the first eligible pool that has one.
func (a *Allocator) pick(r *request, f config.Family) (netip.Addr, *Error) {
	fi := famIndex(f)
	if r.share.key != "" {
		var best netip.Addr
		own := a.keys[r.Key]
		for ip := range a.shared[r.share.key] {
			if config.FamilyOf(ip) != f || (best.IsValid() && best.Less(ip)) || slices.Contains(own, ip) || a.conflicting(ip) {
				continue
			}
			p := a.lookup(ip)
			if p != nil && slices.Contains(r.scope, p) && r.eligible(p, fi) && !avoided(p, ip) && a.shareable(ip, r.Key, r.share) == nil {
				best = ip
			}
		}
		if best.IsValid() {
			return best, nil
		}
	}
	var full []string
	for _, p := range r.scope {
		if !r.eligible(p, fi) {
			continue
		}
		if ip, ok := p.fams[fi].free.lowest(); ok {
			return ip, nil
		}
		full = append(full, strconv.Quote(p.Name))
	}
	if len(full) == 0 {
		return netip.Addr{}, a.noPool(r, f)
	}
	return netip.Addr{}, errorf(ReasonPoolExhausted, "no free %s address for Service %s in pool %s", f, r.Key, strings.Join(full, ", "))
}

func (a *Allocator) noPool(r *request, f config.Family) *Error {
	switch {
	case r.pool != nil && !r.serves(r.pool):
		return errorf(ReasonNoPool, "pool %q named by beaconlb.io/pool does not serve Service %s (its serviceAllocation does not admit namespace %q or the Service's labels)", r.pool.Name, r.Key, r.Namespace)
	case r.pool != nil:
		return errorf(ReasonNoPool, "pool %q named by beaconlb.io/pool has no %s addresses", r.pool.Name, f)
	}
	return errorf(ReasonNoPool, "no IP pool with autoAssign serves %s addresses to Service %s in namespace %q", f, r.Key, r.Namespace)
}

// choice is the outcome for one wanted family.
type choice struct {
	ip    netip.Addr // invalid when the family gets nothing
	stale bool       // kept although no longer valid
	warn  *Error     // why stale, or why a soft failure
	err   *Error     // why the family got nothing
	hard  bool       // err is about the request itself: fail the whole call
}

func (a *Allocator) decide(r *request, f config.Family, held netip.Addr) choice {
	if want := r.want[famIndex(f)]; want.IsValid() {
		if err := a.valid(r, want); err != nil {
			if held == want {
				return choice{ip: held, stale: true, warn: err}
			}
			return choice{err: err, hard: true}
		}
		return choice{ip: want}
	}
	if !held.IsValid() {
		ip, err := a.pick(r, f)
		return choice{ip: ip, err: err, warn: err}
	}
	why := a.valid(r, held)
	if why == nil && a.conflicting(held) {
		why = errorf(ReasonIPConflict, "%s is in use by another host on the network", held)
	}
	if why == nil {
		return choice{ip: held}
	}
	ip, err := a.pick(r, f)
	if err != nil {
		return choice{ip: held, stale: true, warn: &Error{
			Reason: err.Reason,
			Msg:    fmt.Sprintf("keeping %s although %s: no replacement: %s", held, why.Msg, err.Msg),
		}}
	}
	return choice{ip: ip}
}

// Allocate gives req.Key one address per wanted family, or confirms what it
// holds. On error nothing changes. See the package documentation for the
// rules.
func (a *Allocator) Allocate(req Request) (Result, error) {
	r, err := a.check(&req)
	if err != nil {
		return Result{}, err
	}
	old := a.keys[req.Key]
	var buf [2]choice
	choices := buf[:len(req.Families)]
	var first *Error
	obtained := 0
	for i, f := range req.Families {
		c := a.decide(&r, f, heldOf(old, f))
		if c.hard {
			return Result{}, c.err
		}
		if c.err != nil && first == nil {
			first = c.err
		}
		if c.ip.IsValid() {
			obtained++
		}
		choices[i] = c
	}
	if first != nil && (req.RequireAll || obtained == 0) {
		return Result{}, first
	}

	var res Result
	h := holder{req.Key, r.share}
	for _, c := range choices {
		if c.warn != nil {
			res.Warnings = append(res.Warnings, c.warn)
		}
		if !c.ip.IsValid() {
			continue
		}
		if c.stale {
			// Keep the sharing attributes the address was valid with.
			res.Stale = append(res.Stale, c.ip)
		} else {
			a.hold(c.ip, h)
		}
		res.IPs = append(res.IPs, c.ip)
		res.Pools = append(res.Pools, a.PoolOf(c.ip))
		if a.conflicting(c.ip) {
			res.Conflicting = append(res.Conflicting, c.ip)
		}
	}
	// Make before break: replacements are held before the old go.
	for _, ip := range old {
		if !slices.Contains(res.IPs, ip) {
			a.unhold(ip, req.Key)
		}
	}
	res.Changed = !slices.Equal(old, res.IPs)
	a.setKey(req.Key, res.IPs)
	return res, nil
}

func heldOf(ips []netip.Addr, f config.Family) netip.Addr {
	for _, ip := range ips {
		if config.FamilyOf(ip) == f {
			return ip
		}
	}
	return netip.Addr{}
}
