package plan

import (
	"fmt"
	"maps"
	"net/netip"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/bgpplan"
	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
)

// BGP is what this node does in BGP mode.
type BGP struct {
	ASN      uint32
	RouterID netip.Addr
	// Open are the sessions to hold, with their routes and passwords.
	Open []Open
	// Sessions are the BGPSessionState rows: every session this node should
	// hold, opened or not, with what the BGP speaker cannot see.
	Sessions []Session
	// Problems are configuration problems for the log.
	Problems []string
}

// Open is one session to hold.
type Open struct {
	bgpplan.Session
	Password string // TCP MD5; "" for none
}

// Session is a session this node should hold, with problems the speaker
// cannot see (bad configuration, missing Secret).
type Session struct {
	Peer    string
	Address netip.Addr
	Message string
	// PasswordSecret is BGPSessionState.passwordSecret.
	PasswordSecret string
	// Draining is BGPSessionState.draining: this node's drain phase.
	Draining string
}

// planBGP plans this node's BGP sessions and announcements, the reports of
// what goes out by BGP and their Events.
func planBGP(f Facts, in announce.Input, cfg *config.BGP, st *State) (*BGP, []Report, []Event) {
	node, addrs := self(f)
	if f.Drain.Phase == drain.None && election.ExcludeLabelSet(node.Labels) {
		// The drain's lead (package drain): the node announces as before
		// while the other speakers put their hand-off in place.
		node.Labels = maps.Clone(node.Labels)
		delete(node.Labels, election.ExcludeLabel)
	}
	plan := bgpplan.Make(bgpplan.Input{Node: node, NodeAddresses: addrs, Services: in.Services, Pools: in.Pools, BGP: cfg,
		GracefulShutdown: f.Drain.Phase == drain.GracefulShutdown})
	out := &BGP{ASN: plan.ASN, RouterID: plan.RouterID, Problems: plan.Problems}
	passwords := map[string]string{}
	for _, s := range plan.Sessions {
		cs := Session{Peer: s.Peer.Name, Address: s.Peer.Address, Draining: string(f.Drain.Phase)}
		if err := cfg.Invalid["BGPPeer/"+s.Peer.Name]; err != nil {
			cs.Message = fmt.Sprintf("invalid BGPPeer (%v): running its last valid configuration", err)
		}
		open := Open{Session: s}
		if ref := s.Peer.Password; ref != nil {
			pw, problem, err := password(f, ref)
			cs.PasswordSecret = problem
			switch {
			case err == nil:
				passwords[s.Peer.Name] = pw
			case st.Passwords[s.Peer.Name] != "":
				pw = st.Passwords[s.Peer.Name]
				passwords[s.Peer.Name] = pw
				cs.Message = JoinMessages(cs.Message, err.Error()+": keeping the password in use")
			default:
				cs.Message = JoinMessages(cs.Message, err.Error()+": session not opened")
				out.Sessions = append(out.Sessions, cs)
				continue
			}
			open.Password = pw
		}
		out.Sessions = append(out.Sessions, cs)
		out.Open = append(out.Open, open)
	}
	if !plan.RouterID.IsValid() && len(plan.Problems) > 0 {
		for _, p := range cfg.Peers {
			if p.SelectsNode(node.Labels) {
				out.Sessions = append(out.Sessions, Session{Peer: p.Name, Address: p.Address, Message: strings.Join(plan.Problems, "; "),
					Draining: string(f.Drain.Phase)})
			}
		}
	}
	for name, pw := range st.Passwords {
		if _, ok := passwords[name]; !ok {
			passwords[name] = pw
		}
	}
	st.Passwords = passwords

	// Reporters are known once the member layer has settled (member
	// liveness ranks them); until then a pair keeps what it had.
	settled := f.Members.Settled && !f.Members.NewPeer
	var rep *reporters
	if settled && len(plan.Announcements) > 0 {
		rep = newReporters(f, in, cfg)
	}
	services := make(map[string]announce.Service, len(in.Services))
	for _, s := range in.Services {
		services[s.Key] = s
	}
	var reports []Report
	var events []Event
	now := map[ServiceIP]bool{}
	for _, ann := range plan.Announcements {
		reporting := rep != nil && rep.reports(services[ann.Service], ann.Addresses)
		if reporting {
			r := newReport(ann.Service, v1alpha1.ViaBGP)
			r.Addresses, r.Peers = ann.Addresses, ann.Peers
			reports = append(reports, r)
		}
		for _, ip := range ann.Addresses {
			k := ServiceIP{ann.Service, ip}
			reported, had := st.BGP[k]
			if settled || !had {
				reported = reporting
			}
			now[k] = reported
			if reporting && !st.BGP[k] {
				events = append(events, serviceEvent(ann.Service, EventAnnouncing,
					"Announcing %s from node %s via BGP (peers %s)", ip, f.Node, strings.Join(ann.Peers, ",")))
			}
		}
	}
	events = append(events, withdrawnEvents(withdrawnBGP(in, f.Node, st.BGP, now), f.Node, v1alpha1.ViaBGP)...)
	st.BGP = now
	return out, reports, events
}

// password reads a peer's TCP MD5 password from its Secret. On failure it
// also says what is wrong, in the terms of BGPSessionState.passwordSecret.
func password(f Facts, ref *config.SecretRef) (pw, problem string, err error) {
	if f.Namespace == "" || f.Secret == nil {
		return "", v1alpha1.PasswordSecretUnreadable,
			fmt.Errorf("passwordSecretRef %s: the speaker does not know its namespace (--namespace or POD_NAMESPACE)", ref.Name)
	}
	key := f.Namespace + "/" + ref.Name
	s := f.Secret(ref.Name)
	switch {
	case apierrors.IsNotFound(s.Err):
		return "", v1alpha1.PasswordSecretMissing, fmt.Errorf("password Secret %s: %w", key, s.Err)
	case s.Err != nil:
		return "", v1alpha1.PasswordSecretUnreadable, fmt.Errorf("password Secret %s: %w", key, s.Err)
	}
	v, ok := s.Data[ref.Key]
	if !ok || len(v) == 0 {
		return "", v1alpha1.PasswordSecretNoKey, fmt.Errorf("password Secret %s has no key %q", key, ref.Key)
	}
	return string(v), "", nil
}
