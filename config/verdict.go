package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// Check is one yes-or-no finding about a configuration object, as a
// condition shows it.
type Check struct {
	OK      bool
	Reason  string
	Message string
}

// Verdict is what the controller reports on a configuration object.
type Verdict struct {
	// Accepted says whether the speakers use the object.
	Accepted Check
	// ResolvedRefs says whether every object it names exists and is valid;
	// nil for kinds that name none (BFDProfile) and for objects too invalid
	// to tell.
	ResolvedRefs *Check
}

// Reasons of the Accepted and ResolvedRefs checks.
const (
	ReasonValid            = "Valid"
	ReasonInvalid          = "Invalid"
	ReasonMissingReference = "MissingReference"
	ReasonInvalidReference = "InvalidReference"
	ReasonResolved         = "Resolved"
)

// Reasons of a BGPPeer's ResolvedRefs when speakers cannot use its password
// Secret.
const (
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	ReasonSecretUnreadable  = "SecretUnreadable"
)

// secretProblems maps what speakers report about a password Secret to a
// reason, the most basic problem first: it gives the reason when nodes
// report different problems.
var secretProblems = []struct{ problem, reason, text string }{
	{v1alpha1.PasswordSecretMissing, ReasonSecretNotFound, "not found"},
	{v1alpha1.PasswordSecretNoKey, ReasonSecretKeyNotFound, "no key %q"},
	{v1alpha1.PasswordSecretUnreadable, ReasonSecretUnreadable, "unreadable"},
}

// maxNodesNamed bounds how many nodes a message names per problem.
const maxNodesNamed = 5

// Judge gives the verdict on every L2Advertisement and BGP object, keyed
// "Kind/name", from the same parse results the speakers act on and, for
// password Secrets, which the controller may not read, from the speakers'
// BGPSessionState reports. It ignores KeepLastGood on purpose: which
// earlier version a speaker still runs depends on that speaker's history,
// so a rejected object says so in its message instead.
func Judge(l2 *L2Advertisements, bgp *BGP, sessions []v1alpha1.BGPSessionState) map[string]Verdict {
	out := map[string]Verdict{}
	byPeer := map[string][]v1alpha1.BGPSessionState{}
	for _, s := range sessions {
		byPeer[s.Peer] = append(byPeer[s.Peer], s)
	}
	for name := range l2.ByName {
		out["L2Advertisement/"+name] = Verdict{Accepted: accepted(), ResolvedRefs: refs(l2.Unresolved[name], ReasonMissingReference, "")}
	}
	for name, err := range l2.Invalid {
		out["L2Advertisement/"+name] = Verdict{Accepted: rejected(err, "the speakers ignore it")}
	}
	for name := range bgp.Peers {
		out[peerKey(name)] = Verdict{Accepted: accepted(), ResolvedRefs: bgp.passwordCheck(name, byPeer[name])}
	}
	for name := range bgp.Advertisements {
		out[adKey(name)] = Verdict{Accepted: accepted(), ResolvedRefs: refs(bgp.Unresolved[adKey(name)], ReasonMissingReference, "")}
	}
	for name := range bgp.BFDProfiles {
		out[bfdKey(name)] = Verdict{Accepted: accepted()}
	}
	const kept = "speakers that ran an earlier valid version keep running it, others ignore it"
	for key, err := range bgp.Invalid {
		v := Verdict{Accepted: rejected(err, kept)}
		if u, ok := bgp.Unresolved[key]; ok {
			v.ResolvedRefs = refs(u, v.Accepted.Reason, "")
		}
		out[key] = v
	}
	return out
}

// passwordCheck judges a peer's password Secret by what the speakers that
// should open its session report: the controller has no right to read
// Secrets. Before any report it says who checks.
func (b *BGP) passwordCheck(peer string, reports []v1alpha1.BGPSessionState) *Check {
	p := b.Peers[peer]
	if p == nil || p.Password == nil {
		return refs(nil, "", "")
	}
	if len(reports) == 0 {
		return refs(nil, "", "; password Secret "+p.Password.Name+" is checked by the speakers (see BGPSessionState)")
	}
	nodes := map[string][]string{}
	for _, r := range reports {
		if r.PasswordSecret != "" {
			nodes[r.PasswordSecret] = append(nodes[r.PasswordSecret], r.Node)
		}
	}
	var reason string
	var found []string
	for _, sp := range secretProblems {
		ns := nodes[sp.problem]
		if len(ns) == 0 {
			continue
		}
		reason = cmp.Or(reason, sp.reason)
		text := sp.text
		if sp.problem == v1alpha1.PasswordSecretNoKey {
			text = fmt.Sprintf(text, p.Password.Key)
		}
		found = append(found, text+" on "+nodeList(ns))
	}
	if reason == "" {
		return refs(nil, "", fmt.Sprintf("; no speaker reports a problem with password Secret %s (%d reports)", p.Password.Name, len(reports)))
	}
	return &Check{Reason: reason, Message: "password Secret " + p.Password.Name + ": " + strings.Join(found, "; ") + " (see BGPSessionState)"}
}

// nodeList names nodes, sorted, up to maxNodesNamed of them.
func nodeList(nodes []string) string {
	slices.Sort(nodes)
	word := "node "
	if len(nodes) > 1 {
		word = "nodes "
	}
	if len(nodes) > maxNodesNamed {
		return word + strings.Join(nodes[:maxNodesNamed], ", ") + fmt.Sprintf(" and %d more", len(nodes)-maxNodesNamed)
	}
	return word + strings.Join(nodes, ", ")
}

func accepted() Check {
	return Check{OK: true, Reason: ReasonValid, Message: "valid; the speakers use it"}
}

func rejected(err error, consequence string) Check {
	reason := ReasonInvalid
	switch {
	case errors.Is(err, ErrMissingReference):
		reason = ReasonMissingReference
	case errors.Is(err, ErrInvalidReference):
		reason = ReasonInvalidReference
	}
	return Check{Reason: reason, Message: err.Error() + "; " + consequence}
}

// refs checks a list of unresolved references; reason is used when the
// list is not empty.
func refs(unresolved []string, reason, note string) *Check {
	if len(unresolved) == 0 {
		return &Check{OK: true, Reason: ReasonResolved, Message: "every named object exists and is valid" + note}
	}
	return &Check{Reason: reason, Message: strings.Join(unresolved, "; ")}
}
