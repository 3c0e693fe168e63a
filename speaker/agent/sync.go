package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/handoff"
	"github.com/beaconlb/beacon/speaker/plan"
)

// sync plans the node once and applies the plan.
func (a *Agent) sync(ctx context.Context) error {
	prev := a.state
	f := a.facts(ctx)
	res := plan.Make(f, a.state)
	a.state = res.State
	var errs []error
	if res.BGP != nil {
		a.applyBGP(res.BGP)
	}
	if res.L2 != nil {
		a.claim(res.L2) // sticky claims, sent with heartbeats
		a.mu.Lock()
		a.decisions = res.L2.Decisions
		a.mu.Unlock()
		a.elections.Add(float64(res.L2.ElectionChanges))
		// Hand-off goes in before any announcement: clients move at once.
		if err := a.applyHandoff(res.L2); err != nil {
			errs = append(errs, err)
		}
		recheck := poolConflicts(list[v1alpha1.IPPool](a.w.pools))
		maps.Copy(recheck, awaitingProbe(f.Services))
		probe := toProbe(a.cfg.Node, prev.Decisions, res.L2.Decisions, prev.Planned, recheck)
		if f.LinksErr == nil {
			a.cfg.Links.Retain(f.Links)
		}
		responders, rerrs := a.applyResponders(ctx, res.L2, probe)
		errs = append(errs, rerrs...)
		conflicts := conflictsOf(responders)
		applyConflicts(res.Reports, a.cfg.Node, res.L2.Decisions, conflicts)
		answered := answeredBy(responders)
		keepAnswered(res.Reports, answered)
		res.Reports = keepProbed(res.Reports, checkedBy(responders))
		res.Events = a.holdAnnouncing(res.Events, a.cfg.Node, res.L2.Decisions, answered)
		res.Events = append(res.Events, a.conflictEvents(a.cfg.Node, res.L2.Decisions, conflicts)...)
		if f.LinksErr == nil {
			res.Events = append(res.Events, a.checkKernel(res.L2.Known, f.Links, f.Now)...)
		}
	}
	a.record(res.Events)
	if res.L2 != nil {
		a.wantReports(res.Reports)
		if !a.ready.Swap(true) {
			// The initial lists and the first plan leave garbage several
			// times the caches' size; the runtime would return it to the
			// kernel over minutes.
			debug.FreeOSMemory()
		}
	}
	for _, p := range res.Problems {
		errs = append(errs, errors.New(p))
	}
	return errors.Join(errs...)
}

// facts gathers what the planner reads: the caches, the member layer's
// view (after telling it the current peers) and this node's interfaces.
func (a *Agent) facts(ctx context.Context) plan.Facts {
	f := plan.Facts{Node: a.cfg.Node, LoadBalancerClass: a.cfg.LoadBalancerClass, Namespace: a.cfg.Namespace,
		Now: time.Now(), HandoffWindow: a.cfg.HandoffWindow, BGPReporters: a.cfg.BGPReporters}
	a.w.facts(&f)
	f.Drain = a.drain(f.Nodes, f.Now)
	f.Members = plan.Members{Alive: map[string]bool{}, Left: map[string]bool{}}
	for _, n := range f.Nodes {
		f.Members.Alive[n.Name] = a.cfg.Liveness.Alive(n.Name)
		f.Members.Left[n.Name] = a.cfg.Liveness.Left(n.Name)
	}
	peers := plan.MemberPeers(f.Nodes, a.cfg.Node, a.cfg.MemberPort)
	a.cfg.Liveness.SetPeers(peers)
	if s, ok := a.cfg.Liveness.(Suspects); ok {
		s.SetSuspects(plan.NotReady(f.Nodes))
	}
	// A peer never heard from: the member layer needs a moment before its
	// silence means anything; it signals Changes when settled.
	f.Members.NewPeer = hasNew(a.peers, peers)
	a.peers = peers
	f.Members.Settled = a.cfg.Liveness.Settled()
	f.Members.Rejoining = a.cfg.Liveness.Rejoining()
	a.reported(&f) // carrier and sticky claims from heartbeats
	f.Links, f.LinksErr = a.cfg.Links.Interfaces()
	f.Secret = func(name string) plan.Secret { return a.secret(ctx, name) }
	return f
}

func (a *Agent) applyHandoff(l2 *plan.L2) error {
	if a.cfg.Handoff == nil {
		return nil
	}
	routes := l2.Routes(a.handoffs.Update(time.Now(), l2.Claims))
	if err := a.cfg.Handoff.Apply(routes); err != nil {
		return fmt.Errorf("hand-off (%s): %w", handoff.String(routes), err)
	}
	return nil
}

// applyResponders sets every responder's addresses, starting new ones;
// those in probe are probed first if new to a responder.
func (a *Agent) applyResponders(ctx context.Context, l2 *plan.L2, probe map[netip.Addr]bool) ([]Responder, []error) {
	var errs []error
	var out []Responder
	ifaces := map[string]bool{}
	for _, m := range []map[string][]netip.Addr{l2.Responders, l2.Checks, a.checking} {
		for i := range m {
			ifaces[i] = true
		}
	}
	for _, iface := range slices.Sorted(maps.Keys(ifaces)) {
		r, err := a.cfg.Links.Responder(ctx, iface)
		if err != nil {
			errs = append(errs, fmt.Errorf("responder on %s: %w", iface, err))
			continue
		}
		if ips, ok := l2.Responders[iface]; ok {
			var first []netip.Addr
			for _, ip := range ips {
				if probe[ip] {
					first = append(first, ip)
				}
			}
			r.Announce(ips, first)
			if l2.Reannounce {
				r.Reannounce()
			}
		}
		// Interfaces that checked addresses at the last sync and check
		// none now are cleared.
		r.Check(l2.Checks[iface])
		out = append(out, r)
	}
	a.checking = l2.Checks
	return out, errs
}

// record logs the Events and records those whose object exists, at most
// plan.ServiceEventsPerSync Announcing and Withdrawn ones on Services.
func (a *Agent) record(evs []plan.Event) {
	for _, e := range plan.BoundServiceEvents(evs, a.cfg.Node) {
		log, msg := a.cfg.Log.V(1), strings.ToLower(e.Reason)
		if e.Type == v1.EventTypeWarning {
			log, msg = a.cfg.Log, "configuration problem"
		}
		log.Info(msg, "kind", e.Kind, "namespace", e.Namespace, "name", e.Name, "message", e.Message)
		if a.cfg.Recorder == nil {
			continue
		}
		if obj, ok := a.w.object(e); ok {
			a.cfg.Recorder.Event(obj, e.Type, e.Reason, e.Message)
		}
	}
}

func hasNew(before, after map[string]netip.AddrPort) bool {
	for n := range after {
		if _, ok := before[n]; !ok {
			return true
		}
	}
	return false
}
