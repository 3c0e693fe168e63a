package agent

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/bgp"
	"github.com/beaconlb/beacon/speaker/bgpplan"
	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
)

// BGP is the speaker's BGP side (package bgp's Speaker).
type BGP interface {
	Apply(bgp.Desired)
	Sessions() []bgp.Session
	Changes() <-chan struct{}
}

// Event reasons about BGP configuration.
const (
	EventBGPConfigInvalid = "InvalidBGPConfiguration"
	EventBGPConfigWarning = "BGPConfigurationWarning"
)

// bgpState is the agent's BGP bookkeeping, owned by the sync loop except
// where noted.
type bgpState struct {
	peers, ads, profiles, sessions cache.Store
	secrets                        map[string]cachedSecret // namespace/name

	lastGood  *config.BGP
	passwords map[string]string // peer -> last password that resolved
	announced map[bgpAnnounced]bool
	warned    map[string]string // object key -> last message sent as Event

	// configured is what the session reports need from the last sync:
	// guarded by Agent.mu.
	configured []configuredSession
	reportsCh  chan []configuredSession
}

// configuredSession is a session this node should hold, with problems the
// speaker cannot see (bad configuration, missing Secret).
type configuredSession struct {
	peer           string
	address        netip.Addr
	message        string
	passwordSecret string // BGPSessionState.passwordSecret
	draining       string // BGPSessionState.draining
}

// cachedSecret is a Secret read at some time (nil when it was not found).
type cachedSecret struct {
	secret *v1.Secret
	err    error
	at     time.Time
}

// secretTTL bounds how stale a password may be: Secrets are read on demand
// (a GET, which the chart grants only with BGP enabled) rather than watched.
const secretTTL = 10 * time.Second

func newBGPState() *bgpState {
	return &bgpState{passwords: map[string]string{}, announced: map[bgpAnnounced]bool{}, secrets: map[string]cachedSecret{},
		warned: map[string]string{}, reportsCh: make(chan []configuredSession, 1)}
}

// bgpInformers creates the BGP informers.
func (a *Agent) bgpInformers() []cache.SharedIndexInformer {
	b := cmp.Or(a.cfg.InformerBeacon, a.cfg.Beacon)
	peers, ads, profiles := b.BGPPeerInformer(), b.BGPAdvertisementInformer(), b.BFDProfileInformer()
	sessions := b.BGPSessionStateInformer(a.cfg.Node)
	a.bgp.peers, a.bgp.ads, a.bgp.profiles, a.bgp.sessions = peers.GetStore(), ads.GetStore(), profiles.GetStore(), sessions.GetStore()
	return []cache.SharedIndexInformer{peers, ads, profiles, sessions}
}

// syncBGP plans this node's BGP announcements and hands them to the
// speaker. It returns the per-Service reports of what goes out by BGP.
func (a *Agent) syncBGP(ctx context.Context, in announce.Input, svcs map[string]*v1.Service, nodeObj *v1.Node, phase drain.Phase) map[string]*report {
	st := a.bgp
	var peerObjs []v1alpha1.BGPPeer
	for _, o := range st.peers.List() {
		peerObjs = append(peerObjs, *o.(*v1alpha1.BGPPeer))
	}
	var adObjs []v1alpha1.BGPAdvertisement
	for _, o := range st.ads.List() {
		adObjs = append(adObjs, *o.(*v1alpha1.BGPAdvertisement))
	}
	var profObjs []v1alpha1.BFDProfile
	for _, o := range st.profiles.List() {
		profObjs = append(profObjs, *o.(*v1alpha1.BFDProfile))
	}
	cfg := config.ParseBGP(peerObjs, adObjs, profObjs, in.Pools).KeepLastGood(st.lastGood)
	st.lastGood = cfg
	a.reportBGPConfig(cfg)

	self := election.Node{Name: a.cfg.Node}
	var addrs []netip.Addr
	if nodeObj != nil {
		self.Labels = nodeObj.Labels
		self.NetworkUnavailable = nodeCondition(nodeObj, v1.NodeNetworkUnavailable)
		for _, ad := range nodeObj.Status.Addresses {
			if ad.Type != v1.NodeInternalIP {
				continue
			}
			if ip, err := netip.ParseAddr(ad.Address); err == nil {
				addrs = append(addrs, ip)
			}
		}
	}
	plan := bgpplan.Make(bgpplan.Input{Node: self, NodeAddresses: addrs, Services: in.Services, Pools: in.Pools, BGP: cfg,
		GracefulShutdown: phase == drain.GracefulShutdown})
	for _, p := range plan.Problems {
		a.cfg.Log.Info("BGP configuration problem", "problem", p)
	}

	desired := bgp.Desired{ASN: plan.ASN, RouterID: plan.RouterID}
	var configured []configuredSession
	for _, s := range plan.Sessions {
		cs := configuredSession{peer: s.Peer.Name, address: s.Peer.Address, draining: string(phase)}
		if err := cfg.Invalid["BGPPeer/"+s.Peer.Name]; err != nil {
			cs.message = fmt.Sprintf("invalid BGPPeer (%v): running its last valid configuration", err)
		}
		peer := toSpeakerPeer(s)
		if ref := s.Peer.Password; ref != nil {
			pw, problem, err := a.password(ctx, ref)
			cs.passwordSecret = problem
			switch {
			case err == nil:
				st.passwords[s.Peer.Name] = pw
			case st.passwords[s.Peer.Name] != "":
				pw = st.passwords[s.Peer.Name]
				cs.message = joinMsg(cs.message, err.Error()+": keeping the password in use")
			default:
				cs.message = joinMsg(cs.message, err.Error()+": session not opened")
				configured = append(configured, cs)
				continue
			}
			peer.Password = pw
		}
		configured = append(configured, cs)
		desired.Peers = append(desired.Peers, peer)
	}
	if !plan.RouterID.IsValid() && len(plan.Problems) > 0 {
		for _, p := range cfg.Peers {
			if p.SelectsNode(self.Labels) {
				configured = append(configured, configuredSession{peer: p.Name, address: p.Address, message: strings.Join(plan.Problems, "; ")})
			}
		}
	}
	a.cfg.BGP.Apply(desired)
	a.mu.Lock()
	st.configured = configured
	a.mu.Unlock()
	a.wantSessionReports(configured)

	reports := map[string]*report{}
	now := map[bgpAnnounced]bool{}
	for _, ann := range plan.Announcements {
		ns, name, _ := strings.Cut(ann.Service, "/")
		reports[ann.Service] = &report{namespace: ns, service: name, via: v1alpha1.ViaBGP, addresses: ann.Addresses, peers: ann.Peers}
		for _, ip := range ann.Addresses {
			k := bgpAnnounced{ann.Service, ip}
			now[k] = true
			if !st.announced[k] && a.cfg.Recorder != nil {
				if svc := svcs[ann.Service]; svc != nil {
					a.cfg.Recorder.Eventf(svc, v1.EventTypeNormal, EventAnnouncing,
						"Announcing %s from node %s via BGP (peers %s)", ip, a.cfg.Node, strings.Join(ann.Peers, ","))
				}
			}
		}
	}
	a.recordWithdrawn(withdrawnBGP(in, a.cfg.Node, st.announced, now), v1alpha1.ViaBGP)
	st.announced = now
	return reports
}

func joinMsg(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + "; " + b
}

func toSpeakerPeer(s bgpplan.Session) bgp.Peer {
	p := s.Peer
	out := bgp.Peer{Name: p.Name, Address: p.Address, Port: p.Port, MyASN: p.MyASN, PeerASN: p.PeerASN,
		Source: p.Source, HoldTime: p.HoldTime, Keepalive: p.Keepalive, EBGPMultiHop: p.EBGPMultiHop,
		GracefulRestart: p.GracefulRestart, RestartTime: p.RestartTime}
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

// password reads a peer's TCP MD5 password from its Secret. On failure it
// also says what is wrong, in the terms of BGPSessionState.passwordSecret.
func (a *Agent) password(ctx context.Context, ref *config.SecretRef) (pw, problem string, err error) {
	if a.cfg.Namespace == "" {
		return "", v1alpha1.PasswordSecretUnreadable,
			fmt.Errorf("passwordSecretRef %s: the speaker does not know its namespace (--namespace or POD_NAMESPACE)", ref.Name)
	}
	key := a.cfg.Namespace + "/" + ref.Name
	c, ok := a.bgp.secrets[key]
	if !ok || time.Since(c.at) > secretTTL {
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		sec, err := a.cfg.Kube.CoreV1().Secrets(a.cfg.Namespace).Get(gctx, ref.Name, metav1.GetOptions{})
		cancel()
		c = cachedSecret{secret: sec, err: err, at: time.Now()}
		a.bgp.secrets[key] = c
	}
	switch {
	case apierrors.IsNotFound(c.err):
		return "", v1alpha1.PasswordSecretMissing, fmt.Errorf("password Secret %s: %w", key, c.err)
	case c.err != nil:
		return "", v1alpha1.PasswordSecretUnreadable, fmt.Errorf("password Secret %s: %w", key, c.err)
	}
	v, ok := c.secret.Data[ref.Key]
	if !ok || len(v) == 0 {
		return "", v1alpha1.PasswordSecretNoKey, fmt.Errorf("password Secret %s has no key %q", key, ref.Key)
	}
	return string(v), "", nil
}

// reportBGPConfig records a Warning Event on each BGP object whose problem
// is new or changed.
func (a *Agent) reportBGPConfig(cfg *config.BGP) {
	msgs := map[string]string{}
	for k, err := range cfg.Invalid {
		msgs[k] = "invalid: " + err.Error()
	}
	for k, w := range cfg.Warnings {
		msgs[k] = joinMsg(msgs[k], w)
	}
	a.warnObjects(a.bgp.warned, msgs, func(k string) string {
		if _, bad := cfg.Invalid[k]; bad {
			return EventBGPConfigInvalid
		}
		return EventBGPConfigWarning
	})
}

// sessionName names a BGPSessionState after its peer and node, hashed when too
// long for an object name.
func sessionName(peer, node string) string {
	n := strings.ToLower(peer + "-" + node)
	if len(n) <= 253 {
		return n
	}
	h := sha256.Sum256([]byte(n))
	return n[:200] + "-" + hex.EncodeToString(h[:8])
}

func (a *Agent) wantSessionReports(c []configuredSession) {
	select {
	case <-a.bgp.reportsCh:
	default:
	}
	a.bgp.reportsCh <- c
}

// sessionReportLoop keeps this node's BGPSessionState objects in line with the
// configured sessions and their observed states.
func (a *Agent) sessionReportLoop(ctx context.Context) {
	var configured []configuredSession
	planned := false // nothing is written before the first plan
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case configured = <-a.bgp.reportsCh:
			planned = true
		case <-a.cfg.BGP.Changes():
		case <-retry.C:
		}
		if !planned {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.writeSessions(wctx, configured)
		cancel()
		if err != nil {
			a.cfg.Log.V(1).Info("writing BGP session reports, will retry", "err", err)
			retry.Reset(time.Second)
		}
	}
}

func (a *Agent) writeSessions(ctx context.Context, configured []configuredSession) error {
	observed := map[string]bgp.Session{}
	for _, s := range a.cfg.BGP.Sessions() {
		observed[s.Name] = s
	}
	have := map[string]*v1alpha1.BGPSessionState{}
	for _, o := range a.bgp.sessions.List() {
		s := o.(*v1alpha1.BGPSessionState)
		have[s.Name] = s
	}
	var errs []string
	for _, c := range configured {
		obs, ok := observed[c.peer]
		want := &v1alpha1.BGPSessionState{
			ObjectMeta:     metav1.ObjectMeta{Name: sessionName(c.peer, a.cfg.Node), Labels: map[string]string{v1alpha1.NodeLabel: a.cfg.Node}},
			Node:           a.cfg.Node,
			Peer:           c.peer,
			PeerAddress:    c.address.String(),
			State:          v1alpha1.SessionConfiguring,
			Message:        c.message,
			PasswordSecret: c.passwordSecret,
			Draining:       c.draining,
		}
		if ok {
			want.State, want.BFDState, want.Prefixes = obs.State, obs.BFD, int32(obs.Prefixes)
			want.Message = joinMsg(c.message, obs.Message)
			t := metav1.NewTime(obs.Since.Truncate(time.Second))
			want.Since = &t
		}
		cur, exists := have[want.Name]
		delete(have, want.Name)
		var err error
		switch {
		case !exists:
			err = a.cfg.Beacon.Create(ctx, client.BGPSessionStates, want)
		case cur.State != want.State || cur.BFDState != want.BFDState || cur.Prefixes != want.Prefixes ||
			cur.Message != want.Message || cur.PeerAddress != want.PeerAddress || !sameTime(cur.Since, want.Since) ||
			cur.PasswordSecret != want.PasswordSecret || cur.Draining != want.Draining:
			want.ResourceVersion = cur.ResourceVersion
			err = a.cfg.Beacon.Update(ctx, client.BGPSessionStates, want.Name, want)
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	for name := range have {
		if err := a.cfg.Beacon.Delete(ctx, client.BGPSessionStates, name); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("bgp sessions: %s", strings.Join(errs, "; "))
	}
	return nil
}

func sameTime(a, b *metav1.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(b)
}
