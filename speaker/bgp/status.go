package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/prometheus/client_golang/prometheus"
)

var sessionStates = map[api.PeerState_SessionState]string{
	api.PeerState_SESSION_STATE_IDLE:        "Idle",
	api.PeerState_SESSION_STATE_CONNECT:     "Connect",
	api.PeerState_SESSION_STATE_ACTIVE:      "Active",
	api.PeerState_SESSION_STATE_OPENSENT:    "OpenSent",
	api.PeerState_SESSION_STATE_OPENCONFIRM: "OpenConfirm",
	api.PeerState_SESSION_STATE_ESTABLISHED: "Established",
}

var bfdStates = map[api.BfdSessionState]string{
	api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN: "AdminDown",
	api.BfdSessionState_BFD_SESSION_STATE_DOWN:       "Down",
	api.BfdSessionState_BFD_SESSION_STATE_INIT:       "Init",
	api.BfdSessionState_BFD_SESSION_STATE_UP:         "Up",
}

// observe reads every peer's state from gobgp and publishes it.
func (s *Speaker) observe(ctx context.Context) {
	if s.srv == nil {
		return
	}
	now := time.Now()
	byAddr := map[netip.Addr]*api.Peer{}
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.GetConf() == nil {
			return
		}
		if a, err := netip.ParseAddr(p.GetConf().GetNeighborAddress()); err == nil {
			byAddr[a] = p
		}
	})
	if err != nil {
		s.cfg.Log.V(1).Info("listing BGP peers", "err", err)
		return
	}
	bfd := map[string]string{}
	s.srv.ListBfdPeer(ctx, func(addr string, st *api.BfdPeerState) {
		bfd[addr] = bfdStates[st.GetSessionState()]
	})
	var out []Session
	for addr, want := range s.peers {
		ss := Session{Name: want.Name, Address: addr, State: "Idle"}
		if p := byAddr[addr]; p != nil {
			st := p.GetState()
			if n, ok := sessionStates[st.GetSessionState()]; ok {
				ss.State = n
			}
			ss.UpdatesSent = st.GetMessages().GetSent().GetUpdate()
			for _, af := range p.GetAfiSafis() {
				ss.Prefixes += int(af.GetState().GetAdvertised())
			}
			if want.BFD != nil {
				if b := st.GetBfdState(); b != nil {
					ss.BFD = bfdStates[b.GetSessionState()]
				}
				if v, ok := bfd[addr.String()]; ok && ss.BFD == "" {
					ss.BFD = v
				}
				if ss.BFD == "" {
					ss.BFD = "Down"
				}
			}
		}
		seen, ok := s.since[want.Name]
		if !ok || seen.state != ss.State {
			seen = sessionSeen{state: ss.State, at: now}
			s.since[want.Name] = seen
		}
		ss.Since = seen.at
		if !ss.Established() && now.Sub(seen.at) >= s.cfg.StuckAfter {
			ss.Message = stuckMessage(want, ss, now.Sub(seen.at))
		}
		out = append(out, ss)
	}
	for name := range s.since {
		if !slices.ContainsFunc(out, func(x Session) bool { return x.Name == name }) {
			delete(s.since, name)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	s.mu.Lock()
	same := slices.EqualFunc(out, s.sessions, func(a, b Session) bool {
		a.UpdatesSent, b.UpdatesSent = 0, 0
		return a == b
	})
	s.sessions = out
	s.mu.Unlock()
	if !same {
		s.changed()
	}
}

// stuckMessage explains a session that stays down. A TCP MD5 mismatch is
// invisible to BGP (the kernel drops the segments), so it is named as the
// first suspect whenever a password is set.
func stuckMessage(p Peer, s Session, d time.Duration) string {
	d = d.Truncate(time.Second)
	switch s.State {
	case "Connect", "Active", "Idle":
		if p.Password != "" {
			return fmt.Sprintf("no BGP connection for %s: check that the router's password for this neighbor matches passwordSecretRef (a TCP MD5 mismatch silently drops the connection), that %s port %d is reachable and that the router has this node as a neighbor", d, p.Address, p.Port)
		}
		return fmt.Sprintf("no BGP connection for %s: check that %s port %d is reachable, that the router has this node as a neighbor, and whether it expects a TCP MD5 password", d, p.Address, p.Port)
	default:
		return fmt.Sprintf("session stuck in %s for %s: check ASNs (myASN %d, peerASN %d) and the router's log", s.State, d, p.MyASN, p.PeerASN)
	}
}

// collector exports the last observed sessions.
type collector struct{ s *Speaker }

var (
	descUp = prometheus.NewDesc("beacon_bgp_session_up",
		"1 when the BGP session with the peer is Established.", []string{"peer"}, nil)
	descPrefixes = prometheus.NewDesc("beacon_bgp_announced_prefixes",
		"Prefixes advertised to the peer.", []string{"peer"}, nil)
	descUpdates = prometheus.NewDesc("beacon_bgp_updates_sent_total",
		"UPDATE messages sent to the peer on the current session.", []string{"peer"}, nil)
	descBFD = prometheus.NewDesc("beacon_bgp_bfd_up",
		"1 when the BFD session with the peer is Up (only peers with BFD).", []string{"peer"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUp
	ch <- descPrefixes
	ch <- descUpdates
	ch <- descBFD
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, s := range c.s.Sessions() {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b2f(s.Established()), s.Name)
		ch <- prometheus.MustNewConstMetric(descPrefixes, prometheus.GaugeValue, float64(s.Prefixes), s.Name)
		ch <- prometheus.MustNewConstMetric(descUpdates, prometheus.CounterValue, float64(s.UpdatesSent), s.Name)
		if s.BFD != "" {
			ch <- prometheus.MustNewConstMetric(descBFD, prometheus.GaugeValue, b2f(s.BFD == "Up"), s.Name)
		}
	}
}
