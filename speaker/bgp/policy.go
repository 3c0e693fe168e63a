package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	api "github.com/osrg/gobgp/v4/api"
)

// group is the prefixes one peer receives with one set of attributes.
type group struct {
	peer     Peer
	key      string
	route    Route // attributes (Prefix unused)
	prefixes []netip.Prefix
}

// groups splits d into (peer, attributes) groups, in a stable order.
func groups(d Desired) []group {
	var out []group
	for _, p := range d.Peers {
		byKey := map[string]*group{}
		var keys []string
		for _, r := range p.Routes {
			k := attrKey(r)
			g := byKey[k]
			if g == nil {
				g = &group{peer: p, key: k, route: r}
				byKey[k] = g
				keys = append(keys, k)
			}
			g.prefixes = append(g.prefixes, r.Prefix)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, *byKey[k])
		}
	}
	return out
}

// exports renders, per prefix, which peers receive it with which
// attributes: a change for a prefix already announced needs a soft reset.
func exports(d Desired) map[netip.Prefix]string {
	out := map[netip.Prefix]string{}
	for _, p := range d.Peers {
		for _, r := range p.Routes {
			out[r.Prefix] += p.Address.String() + "=" + attrKey(r) + ";"
		}
	}
	return out
}

func renderPolicy(gs []group) string {
	var b strings.Builder
	for _, g := range gs {
		fmt.Fprintf(&b, "%s|%s|%v\n", g.peer.Address, g.key, g.prefixes)
	}
	return b.String()
}

// applyPolicy installs the export policy for d when it changed: a new
// generation of sets and statements, swapped in by one assignment, then
// the old generation removed. Established peers whose already-sent routes
// changed get a soft reset out.
func (s *Speaker) applyPolicy(ctx context.Context, d Desired) error {
	gs := groups(d)
	rendered := renderPolicy(gs)
	if rendered == s.policy {
		return nil
	}
	oldExports := s.lastExports
	newExports := exports(d)
	gen := s.generation + 1
	sets, stmts := policyObjects(gs, gen)
	if err := s.installPolicy(ctx, gen, sets, stmts); err != nil {
		return err
	}
	// The new generation is live; the old one goes.
	errs := s.deleteOldPolicy(ctx)
	s.generation, s.policy, s.policySets, s.policyHadStatements = gen, rendered, nil, len(stmts) > 0
	for _, ds := range sets {
		s.policySets = append(s.policySets, &api.DefinedSet{DefinedType: ds.DefinedType, Name: ds.Name})
	}
	s.lastExports = newExports

	if s.resendNeeded(oldExports, newExports) {
		if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: "all", Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
			errs = append(errs, fmt.Errorf("soft reset out: %w", err))
		}
	}
	return errors.Join(errs...)
}

// policyObjects returns generation gen's defined sets and statements for
// gs: one neighbor set per peer, and per group a prefix set and a
// statement that accepts it with the group's attributes.
func policyObjects(gs []group, gen int) ([]*api.DefinedSet, []*api.Statement) {
	name := func(kind string, i int) string { return fmt.Sprintf("%s-%d-%s%d", policyName, gen, kind, i) }
	var sets []*api.DefinedSet
	var stmts []*api.Statement
	nbr := map[netip.Addr]string{}
	for i, g := range gs {
		n, ok := nbr[g.peer.Address]
		if !ok {
			n = name("n", len(nbr))
			nbr[g.peer.Address] = n
			sets = append(sets, &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR, Name: n,
				List: []string{netip.PrefixFrom(g.peer.Address, g.peer.Address.BitLen()).String()}})
		}
		ps := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: name("p", i)}
		for _, pfx := range g.prefixes {
			ps.Prefixes = append(ps.Prefixes, &api.Prefix{IpPrefix: pfx.String(), MaskLengthMin: uint32(pfx.Bits()), MaskLengthMax: uint32(pfx.Bits())})
		}
		sets = append(sets, ps)
		stmts = append(stmts, &api.Statement{
			Name: name("s", i),
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: n},
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: ps.Name},
			},
			Actions: routeActions(g.route),
		})
	}
	return sets, stmts
}

// routeActions accepts a route and adds its communities and local
// preference.
func routeActions(r Route) *api.Actions {
	act := &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT}
	var std, large []string
	for _, c := range r.Communities {
		if c.Large {
			large = append(large, c.String())
		} else {
			std = append(std, c.String())
		}
	}
	if len(std) > 0 {
		act.Community = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: std}
	}
	if len(large) > 0 {
		act.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: large}
	}
	if r.LocalPref != nil {
		act.LocalPref = &api.LocalPrefAction{Value: *r.LocalPref}
	}
	return act
}

// installPolicy adds generation gen's sets and policy and makes it the
// export policy. With no statements the assignment alone rejects every
// route.
func (s *Speaker) installPolicy(ctx context.Context, gen int, sets []*api.DefinedSet, stmts []*api.Statement) error {
	for _, ds := range sets {
		if err := s.srv.AddDefinedSet(ctx, &api.AddDefinedSetRequest{DefinedSet: ds}); err != nil {
			return fmt.Errorf("export policy set %s: %w", ds.Name, err)
		}
	}
	assign := &api.PolicyAssignment{Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT}
	pol := fmt.Sprintf("%s-%d", policyName, gen)
	if len(stmts) > 0 {
		if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{Name: pol, Statements: stmts}}); err != nil {
			return fmt.Errorf("export policy: %w", err)
		}
		assign.Policies = []*api.Policy{{Name: pol}}
	}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: assign}); err != nil {
		return fmt.Errorf("export policy assignment: %w", err)
	}
	return nil
}

// deleteOldPolicy removes the current generation's policy and sets, once
// a newer one is assigned.
func (s *Speaker) deleteOldPolicy(ctx context.Context) []error {
	var errs []error
	if s.generation > 0 && s.policyHadStatements {
		old := fmt.Sprintf("%s-%d", policyName, s.generation)
		if err := s.srv.DeletePolicy(ctx, &api.DeletePolicyRequest{Policy: &api.Policy{Name: old}, All: true}); err != nil {
			errs = append(errs, fmt.Errorf("delete old export policy: %w", err))
		}
	}
	for _, ds := range s.policySets {
		if err := s.srv.DeleteDefinedSet(ctx, &api.DeleteDefinedSetRequest{DefinedSet: ds, All: true}); err != nil {
			errs = append(errs, fmt.Errorf("delete old export set %s: %w", ds.Name, err))
		}
	}
	return errs
}

// resendNeeded reports whether a route already in the RIB changed its
// receivers or attributes: those need re-evaluating, while new routes are
// evaluated when added.
func (s *Speaker) resendNeeded(oldExports, newExports map[netip.Prefix]string) bool {
	for pfx, was := range oldExports {
		if s.paths[pfx] && newExports[pfx] != "" && newExports[pfx] != was {
			return true
		}
	}
	return false
}
