package config

import (
	"errors"
	"strings"
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

// Judge gives the verdict on every L2Advertisement and BGP object, keyed
// "Kind/name", from the same parse results the speakers act on. It ignores
// KeepLastGood on purpose: which earlier version a speaker still runs
// depends on that speaker's history, so a rejected object says so in its
// message instead.
func Judge(l2 *L2Advertisements, bgp *BGP) map[string]Verdict {
	out := map[string]Verdict{}
	for name := range l2.ByName {
		out["L2Advertisement/"+name] = Verdict{Accepted: accepted(), ResolvedRefs: refs(l2.Unresolved[name], ReasonMissingReference, "")}
	}
	for name, err := range l2.Invalid {
		out["L2Advertisement/"+name] = Verdict{Accepted: rejected(err, "the speakers ignore it")}
	}
	for name := range bgp.Peers {
		out[peerKey(name)] = Verdict{Accepted: accepted(), ResolvedRefs: refs(nil, "", bgp.passwordNote(name))}
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

// passwordNote says that a peer's password Secret is not checked here: the
// controller has no right to read Secrets, the speakers report a missing
// one in their BGPSessionState.
func (b *BGP) passwordNote(peer string) string {
	p := b.Peers[peer]
	if p == nil || p.Password == nil {
		return ""
	}
	return "; password Secret " + p.Password.Name + " is checked by the speakers (see BGPSessionState)"
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
