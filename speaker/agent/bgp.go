package agent

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/bgp"
	"github.com/beaconlb/beacon/speaker/plan"
)

// BGP is the speaker's BGP side (package bgp's Speaker).
type BGP interface {
	Apply(bgp.Desired)
	Sessions() []bgp.Session
	Changes() <-chan struct{}
}

// applyBGP hands the planned sessions to the BGP speaker and the session
// rows to their writer.
func (a *Agent) applyBGP(p *plan.BGP) {
	for _, problem := range p.Problems {
		a.cfg.Log.Info("BGP configuration problem", "problem", problem)
	}
	desired := bgp.Desired{ASN: p.ASN, RouterID: p.RouterID}
	for _, s := range p.Open {
		desired.Peers = append(desired.Peers, toSpeakerPeer(s))
	}
	a.cfg.BGP.Apply(desired)
	select {
	case <-a.sessionsCh:
	default:
	}
	a.sessionsCh <- p.Sessions
}

func toSpeakerPeer(s plan.Open) bgp.Peer {
	p := s.Peer
	out := bgp.Peer{Name: p.Name, Address: p.Address, Port: p.Port, MyASN: p.MyASN, PeerASN: p.PeerASN,
		Source: p.Source, HoldTime: p.HoldTime, Keepalive: p.Keepalive, EBGPMultiHop: p.EBGPMultiHop,
		GracefulRestart: p.GracefulRestart, RestartTime: p.RestartTime, Password: s.Password}
	if b := s.BFD; b != nil {
		out.BFD = &bgp.BFD{Receive: b.ReceiveInterval, Transmit: b.TransmitInterval, Multiplier: b.DetectMultiplier}
	}
	for _, r := range s.Routes {
		rr := bgp.Route{Prefix: r.Prefix, LocalPref: r.LocalPref}
		for _, c := range r.Communities {
			rr.Communities = append(rr.Communities, bgp.Community{Large: c.Large, Value: c.Value})
		}
		out.Routes = append(out.Routes, rr)
	}
	return out
}

// cachedSecret is a Secret read at some time.
type cachedSecret struct {
	plan.Secret
	at time.Time
}

// secretTTL bounds how stale a password may be: Secrets are read on demand
// (a GET, which the chart grants only with BGP enabled) rather than watched.
const secretTTL = 10 * time.Second

// secret reads a Secret of the speaker's namespace, at most every
// secretTTL.
func (a *Agent) secret(ctx context.Context, name string) plan.Secret {
	c, ok := a.secrets[name]
	if !ok || time.Since(c.at) > secretTTL {
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		sec, err := a.cfg.Clients.Kube.CoreV1().Secrets(a.cfg.Namespace).Get(gctx, name, metav1.GetOptions{})
		cancel()
		c = cachedSecret{Secret: plan.Secret{Err: err}, at: time.Now()}
		if err == nil {
			c.Data = sec.Data
		}
		a.secrets[name] = c
	}
	return c.Secret
}

// sessionName names a BGPSessionState after its peer and node, hashed when
// too long for an object name.
func sessionName(peer, node string) string {
	return objectName(peer + "-" + node)
}

// objectName lower-cases a name and shortens it with a hash when it is too
// long for an object name.
func objectName(n string) string {
	n = strings.ToLower(n)
	if len(n) <= 253 {
		return n
	}
	h := sha256.Sum256([]byte(n))
	return n[:200] + "-" + hex.EncodeToString(h[:8])
}

// defaultPrefixesRefresh bounds how stale BGPSessionState.prefixes may
// be (Config.PrefixesRefresh). Every node that announces a Service sends
// its routes, so writing the count at once would cost one update per node
// for each Service change; a change of the count alone waits up to this
// long, coalesced with others. A session's state, and a count that
// becomes or stops being zero, are written at once.
const defaultPrefixesRefresh = 5 * time.Minute

// sessionReportLoop keeps this node's BGPSessionState objects in line with
// the configured sessions and their observed states.
func (a *Agent) sessionReportLoop(ctx context.Context) {
	var configured []plan.Session
	planned := false // nothing is written before the first plan
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	written := map[string]time.Time{} // when each object's prefixes were
	for {
		select {
		case <-ctx.Done():
			return
		case configured = <-a.sessionsCh:
			planned = true
		case <-a.cfg.BGP.Changes():
		case <-retry.C:
		}
		if !planned {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		later, err := a.writeSessions(wctx, configured, written, time.Now())
		cancel()
		switch {
		case err != nil:
			a.cfg.Log.V(1).Info("writing BGP session reports, will retry", "err", err)
			retry.Reset(time.Second)
		case later > 0:
			retry.Reset(later)
		}
	}
}

// writeSessions writes the BGPSessionStates that differ from what they
// should hold, and deletes those of sessions no longer configured. A
// change of the prefix count alone waits for Config.PrefixesRefresh after the
// last write of that object's count (written says when, by name): later
// is when to call again for it, 0 when nothing waits.
func (a *Agent) writeSessions(ctx context.Context, configured []plan.Session, written map[string]time.Time, now time.Time) (later time.Duration, err error) {
	observed := map[string]bgp.Session{}
	for _, s := range a.cfg.BGP.Sessions() {
		observed[s.Name] = s
	}
	have := map[string]*v1alpha1.BGPSessionState{}
	for _, s := range list[v1alpha1.BGPSessionState](a.w.sessions) {
		have[s.Name] = s
	}
	var errs []error
	for _, c := range configured {
		want := sessionState(a.cfg.Node, c, observed)
		cur, exists := have[want.Name]
		delete(have, want.Name)
		if !exists {
			err := a.cfg.Clients.Beacon.Create(ctx, client.BGPSessionStates, want)
			if err == nil {
				written[want.Name] = now
			}
			errs = append(errs, err)
			continue
		}
		if _, ok := written[want.Name]; !ok {
			written[want.Name] = now // as found at start: up to date for now
		}
		other := cur.State != want.State || cur.BFDState != want.BFDState ||
			cur.Message != want.Message || cur.PeerAddress != want.PeerAddress || !sameTime(cur.Since, want.Since) ||
			cur.PasswordSecret != want.PasswordSecret || cur.Draining != want.Draining
		count := cur.Prefixes != want.Prefixes
		if count && !other && cur.Prefixes > 0 && want.Prefixes > 0 {
			refresh := cmp.Or(a.cfg.PrefixesRefresh, defaultPrefixesRefresh)
			if wait := written[want.Name].Add(refresh).Sub(now); wait > 0 {
				if later == 0 || wait < later {
					later = wait
				}
				continue
			}
		}
		if !other && !count {
			continue
		}
		want.ResourceVersion = cur.ResourceVersion
		err := a.cfg.Clients.Beacon.Update(ctx, client.BGPSessionStates, want.Name, want)
		if err == nil {
			written[want.Name] = now
		}
		errs = append(errs, err)
	}
	for name := range have {
		delete(written, name)
		errs = append(errs, a.cfg.Clients.Beacon.Delete(ctx, client.BGPSessionStates, name))
	}
	if err := errors.Join(errs...); err != nil {
		return later, fmt.Errorf("bgp sessions: %w", err)
	}
	return later, nil
}

// sessionState is the BGPSessionState of a configured session, with what
// the BGP speaker observes of it.
func sessionState(node string, c plan.Session, observed map[string]bgp.Session) *v1alpha1.BGPSessionState {
	want := &v1alpha1.BGPSessionState{
		ObjectMeta:     metav1.ObjectMeta{Name: sessionName(c.Peer, node), Labels: map[string]string{v1alpha1.NodeLabel: node}},
		Node:           node,
		Peer:           c.Peer,
		PeerAddress:    c.Address.String(),
		State:          v1alpha1.SessionConfiguring,
		Message:        c.Message,
		PasswordSecret: c.PasswordSecret,
		Draining:       c.Draining,
	}
	if obs, ok := observed[c.Peer]; ok {
		want.State, want.BFDState, want.Prefixes = obs.State, obs.BFD, int32(obs.Prefixes)
		want.Message = plan.JoinMessages(c.Message, obs.Message)
		t := metav1.NewTime(obs.Since.Truncate(time.Second))
		want.Since = &t
	}
	return want
}

func sameTime(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}
