package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/register"
)

// Defaults.
const (
	// ConnectRetry and IdleHoldTime keep reconnects quick: gobgp's own
	// defaults (120 s and 30 s) stall a session that dropped.
	ConnectRetry = 2 * time.Second
	IdleHoldTime = 1 * time.Second
	// DefaultStuckAfter is how long a session may stay down before its
	// status explains why it is probably down.
	DefaultStuckAfter = 10 * time.Second
	pollInterval      = time.Second
	retryInterval     = time.Second
	policyName        = "beacon-export"
)

// Config wires a Speaker.
type Config struct {
	Log logr.Logger
	// Registerer, if set, receives the session metrics.
	Registerer prometheus.Registerer
	// StuckAfter defaults to DefaultStuckAfter.
	StuckAfter time.Duration
	// GoBGPLogLevel is the level of gobgp's own log lines; default Warn.
	GoBGPLogLevel slog.Level
	// FirstStartRestarting marks the first session of every graceful
	// restart peer as a restart (gobgp LocalRestarting): the router keeps
	// the routes of the previous speaker process until this one has sent
	// its own. Default true via New.
	FirstStartRestarting *bool
}

// Speaker converges an embedded gobgp server on the desired state. Run
// owns its goroutines; Apply and Sessions may be called any time.
type Speaker struct {
	cfg     Config
	nudge   chan struct{}
	changes chan struct{}

	mu       sync.Mutex
	desired  *Desired
	sessions []Session
	lastErr  error

	// Owned by Run.
	srv    *server.BgpServer
	global struct {
		asn uint32
		id  netip.Addr
	}
	peers      map[netip.Addr]Peer // as configured in gobgp (Routes unused)
	paths      map[netip.Prefix]bool
	policy     string // rendered policy, to detect changes
	generation int
	// policySets and policyHadStatements describe the live generation.
	policySets          []*api.DefinedSet
	policyHadStatements bool
	lastExports         map[netip.Prefix]string
	everAdded           map[string]bool // peers added since the process started
	since               map[string]sessionSeen
}

type sessionSeen struct {
	state string
	at    time.Time
}

// New returns a Speaker; it starts nothing.
func New(cfg Config) (*Speaker, error) {
	if cfg.StuckAfter == 0 {
		cfg.StuckAfter = DefaultStuckAfter
	}
	if cfg.GoBGPLogLevel == 0 {
		cfg.GoBGPLogLevel = slog.LevelWarn
	}
	s := &Speaker{cfg: cfg, nudge: make(chan struct{}, 1), changes: make(chan struct{}, 1),
		everAdded: map[string]bool{}, since: map[string]sessionSeen{}}
	if err := register.Metrics(cfg.Registerer, &collector{s: s}); err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	return s, nil
}

// Apply sets the desired state; Run converges on the latest one.
func (s *Speaker) Apply(d Desired) {
	d = normalize(d)
	s.mu.Lock()
	s.desired = &d
	s.mu.Unlock()
	select {
	case s.nudge <- struct{}{}:
	default:
	}
}

// Sessions returns the last observed sessions, sorted by name.
func (s *Speaker) Sessions() []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sessions)
}

// Err returns the last error converging on the desired state, nil when the
// desired state is applied.
func (s *Speaker) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

// Changes signals (coalesced) when Sessions changed.
func (s *Speaker) Changes() <-chan struct{} { return s.changes }

// Run converges and observes until ctx ends. On the way out, sessions with
// graceful restart are closed without a NOTIFICATION, so routers keep their
// routes while the next speaker process starts.
func (s *Speaker) Run(ctx context.Context) error {
	defer s.stopServer(true)
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	events := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.nudge:
		case <-retry.C:
		case <-events:
			s.observe(ctx)
			continue
		case <-poll.C:
			s.observe(ctx)
			continue
		}
		s.mu.Lock()
		d := s.desired
		s.mu.Unlock()
		if d == nil {
			continue
		}
		err := s.reconcile(ctx, *d, events)
		s.mu.Lock()
		s.lastErr = err
		s.mu.Unlock()
		if err != nil {
			s.cfg.Log.Error(err, "applying BGP configuration, will retry")
			retry.Reset(retryInterval)
		}
		s.observe(ctx)
	}
}

// reconcile makes gobgp match d.
func (s *Speaker) reconcile(ctx context.Context, d Desired, events chan struct{}) error {
	if len(d.Peers) == 0 || !d.RouterID.IsValid() {
		s.stopServer(false)
		return nil
	}
	if s.srv != nil && (s.global.asn != d.ASN || s.global.id != d.RouterID) {
		s.cfg.Log.Info("BGP identity changed: restarting every session", "asn", d.ASN, "routerID", d.RouterID)
		s.stopServer(false)
	}
	if s.srv == nil {
		if err := s.startServer(ctx, d, events); err != nil {
			return err
		}
	}
	var errs []error

	// Peers: drop the ones gone or changed, add the new ones.
	want := map[netip.Addr]Peer{}
	for _, p := range d.Peers {
		want[p.Address] = p
	}
	for addr, have := range s.peers {
		if w, ok := want[addr]; ok && samePeer(have, w) {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: addr.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete peer %s: %w", have.Name, err))
			continue
		}
		delete(s.peers, addr)
	}

	// The policy goes in before new peers and paths so that nothing is
	// ever sent unfiltered.
	if err := s.applyPolicy(ctx, d); err != nil {
		errs = append(errs, err)
	}

	for addr, p := range want {
		if _, ok := s.peers[addr]; ok {
			continue
		}
		restarting := p.GracefulRestart && !s.everAdded[p.Name] && (s.cfg.FirstStartRestarting == nil || *s.cfg.FirstStartRestarting)
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(p, restarting)}); err != nil {
			errs = append(errs, fmt.Errorf("add peer %s: %w", p.Name, err))
			continue
		}
		s.everAdded[p.Name] = true
		s.peers[addr] = p
	}

	// Paths: every prefix any peer receives is in the RIB once; the export
	// policy decides who gets it with which attributes.
	wantPaths := map[netip.Prefix]bool{}
	for _, p := range d.Peers {
		for _, r := range p.Routes {
			wantPaths[r.Prefix] = true
		}
	}
	var add, del []*apiutil.Path
	for pfx := range wantPaths {
		if !s.paths[pfx] {
			add = append(add, path(pfx))
		}
	}
	for pfx := range s.paths {
		if !wantPaths[pfx] {
			del = append(del, path(pfx))
		}
	}
	if len(del) > 0 {
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: del}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw: %w", err))
		} else {
			for _, p := range del {
				delete(s.paths, p.Nlri.(*bgp.IPAddrPrefix).Prefix)
			}
		}
	}
	if len(add) > 0 {
		resp, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: add})
		for i, p := range add {
			if err == nil || (i < len(resp) && resp[i].Error == nil) {
				s.paths[p.Nlri.(*bgp.IPAddrPrefix).Prefix] = true
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announce: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (s *Speaker) startServer(ctx context.Context, d Desired, events chan struct{}) error {
	lv := new(slog.LevelVar)
	lv.Set(s.cfg.GoBGPLogLevel)
	sl := slog.New(logr.ToSlogHandler(s.cfg.Log.WithName("gobgp")))
	srv := server.NewBgpServer(server.LoggerOption(sl, lv))
	go srv.Serve()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: d.ASN, RouterId: d.RouterID.String(), ListenPort: -1,
	}})
	if err == nil {
		// Nothing leaves without a matching statement.
		err = srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
			Name: "global", Direction: api.PolicyDirection_POLICY_DIRECTION_EXPORT,
			DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
		}})
	}
	if err == nil {
		err = srv.WatchEvent(context.WithoutCancel(ctx), server.WatchEventMessageCallbacks{
			OnPeerUpdate: func(*apiutil.WatchEventMessage_PeerEvent, time.Time) {
				select {
				case events <- struct{}{}:
				default:
				}
			},
		}, server.WatchPeer())
	}
	if err != nil {
		srv.Stop()
		return fmt.Errorf("start gobgp: %w", err)
	}
	s.srv = srv
	s.global.asn, s.global.id = d.ASN, d.RouterID
	s.peers = map[netip.Addr]Peer{}
	s.paths = map[netip.Prefix]bool{}
	s.policy, s.generation, s.policySets, s.policyHadStatements, s.lastExports = "", 0, nil, false, nil
	s.cfg.Log.Info("BGP started", "asn", d.ASN, "routerID", d.RouterID)
	return nil
}

// stopServer stops gobgp. graceful leaves graceful-restart sessions without
// a NOTIFICATION, as a crash would.
func (s *Speaker) stopServer(graceful bool) {
	if s.srv == nil {
		return
	}
	if err := s.srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: graceful}); err != nil {
		s.cfg.Log.Error(err, "stopping gobgp")
	}
	// Stop also ends the BFD server; its StopBgp finds BGP already stopped.
	s.srv.Stop()
	s.srv = nil
	s.peers, s.paths = nil, nil
	s.mu.Lock()
	s.sessions = nil
	s.mu.Unlock()
	s.changed()
}

func (s *Speaker) changed() {
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// samePeer reports whether two peers need the same gobgp peer config.
func samePeer(a, b Peer) bool {
	ab, bb := a.BFD, b.BFD
	if (ab == nil) != (bb == nil) || (ab != nil && *ab != *bb) {
		return false
	}
	type key struct {
		addr, src           netip.Addr
		port                uint16
		my, peer            uint32
		hold, keep, restart time.Duration
		multihop, gr        bool
		password            string
	}
	k := func(p Peer) key {
		return key{p.Address, p.Source, p.Port, p.MyASN, p.PeerASN, p.HoldTime, p.Keepalive, p.RestartTime, p.EBGPMultiHop, p.GracefulRestart, p.Password}
	}
	return k(a) == k(b)
}

func families(p Peer) []bgp.Family {
	if p.Address.Is4() {
		return []bgp.Family{bgp.RF_IPv4_UC}
	}
	return []bgp.Family{bgp.RF_IPv6_UC}
}

func apiFamily(f bgp.Family) *api.Family {
	return &api.Family{Afi: api.Family_Afi(f.Afi()), Safi: api.Family_Safi(f.Safi())}
}

func apiPeer(p Peer, restarting bool) *api.Peer {
	out := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.PeerASN,
			LocalAsn:        p.MyASN,
			AuthPassword:    p.Password,
			Description:     p.Name,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           uint64(ConnectRetry / time.Second),
			HoldTime:               uint64(p.HoldTime / time.Second),
			KeepaliveInterval:      uint64(p.Keepalive / time.Second),
			IdleHoldTimeAfterReset: uint64(IdleHoldTime / time.Second),
		}},
		Transport: &api.Transport{RemotePort: uint32(p.Port)},
	}
	if p.Source.IsValid() {
		out.Transport.LocalAddress = p.Source.String()
	}
	if p.EBGPMultiHop {
		out.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	for _, f := range families(p) {
		afi := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}}
		if p.GracefulRestart {
			afi.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		out.AfiSafis = append(out.AfiSafis, afi)
	}
	if p.GracefulRestart {
		out.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(p.RestartTime / time.Second),
			LocalRestarting: restarting,
		}
	}
	if p.BFD != nil {
		out.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(p.BFD.Transmit / time.Microsecond),
			RequiredMinimumReceive:   uint32(p.BFD.Receive / time.Microsecond),
			DetectionMultiplier:      uint32(p.BFD.Multiplier),
		}
	}
	return out
}

// path is the locally originated route for a prefix; the unspecified next
// hop makes gobgp put each session's local address.
func path(pfx netip.Prefix) *apiutil.Path {
	nlri, _ := bgp.NewIPAddrPrefix(pfx)
	origin := bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)
	if pfx.Addr().Is4() {
		nh, _ := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		return &apiutil.Path{Family: bgp.RF_IPv4_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{origin, nh}}
	}
	mp, _ := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
	return &apiutil.Path{Family: bgp.RF_IPv6_UC, Nlri: nlri, Attrs: []bgp.PathAttributeInterface{origin, mp}}
}

// normalize sorts everything so that equal states compare equal.
func normalize(d Desired) Desired {
	d.Peers = slices.Clone(d.Peers)
	sort.Slice(d.Peers, func(i, j int) bool { return d.Peers[i].Name < d.Peers[j].Name })
	for i := range d.Peers {
		p := &d.Peers[i]
		if p.Port == 0 {
			p.Port = 179
		}
		p.Routes = slices.Clone(p.Routes)
		sort.Slice(p.Routes, func(a, b int) bool { return p.Routes[a].Prefix.String() < p.Routes[b].Prefix.String() })
	}
	return d
}

func (c Community) String() string {
	if c.Large {
		return strconv.FormatUint(uint64(c.Value[0]), 10) + ":" + strconv.FormatUint(uint64(c.Value[1]), 10) + ":" + strconv.FormatUint(uint64(c.Value[2]), 10)
	}
	return strconv.FormatUint(uint64(c.Value[0]>>16), 10) + ":" + strconv.FormatUint(uint64(c.Value[0]&0xffff), 10)
}

// attrKey renders a route's attributes, to group prefixes that share them.
func attrKey(r Route) string {
	var b strings.Builder
	for _, c := range r.Communities {
		b.WriteString(c.String() + " ")
	}
	if r.LocalPref != nil {
		fmt.Fprintf(&b, "lp=%d", *r.LocalPref)
	}
	return b.String()
}
