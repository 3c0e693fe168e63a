package kind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab/labtest"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/plan"
)

// TestGracefulDrainLabel: labelling the node that announces a site's L2
// address with node.kubernetes.io/exclude-from-external-load-balancers,
// under steady traffic, fails no request. The L2 address moves to another
// node; the node's BGP route first carries GRACEFUL_SHUTDOWN (65535:0),
// which the kind router honours with local preference 0 (its ECMP set
// drops the node while the route is still there), and is withdrawn after
// the speakers' --drain-delay; its BGPSessionStates say GracefulShutdown,
// then Withdrawn. Removing the label puts everything back. 20 long-lived
// connections to each address hold through both: the flow hand-off keeps
// each on the node that has its state, and a BGP one breaks only if the
// router's hash-threshold ECMP moved it between two nodes in service
// (judged by the router's own lookup, and logged), which no speaker can
// undo.
func TestGracefulDrainLabel(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	c.waitBeacon(t)
	s := c.newSite(t, 3)
	c.httpFromHost(t, s.l2)
	node := c.announcer(t, s.l2)
	nodeIP := c.nodeIPs(t)[node]
	workers := workerNodes(t, c)
	others := map[string]bool{}
	for n := range workers {
		if n != node {
			others[n] = true
		}
	}
	before := c.addresses(t)
	for _, ss := range c.sessions(t, node) {
		if ss.Draining != "" {
			t.Fatalf("BGPSessionState %s: draining %q before the label", ss.Name, ss.Draining)
		}
	}

	ld := c.startLoad(t, s)
	var d net.Dialer
	l2Streams := labtest.StartStreamsDial(ctx, d.DialContext, net.JoinHostPort(s.l2.String(), "80"), 20, 500*time.Millisecond)
	bgpStreams := labtest.StartStreamsDial(ctx, c.clientDialer(t), net.JoinHostPort(s.bgp.String(), "80"), 20, 500*time.Millisecond)
	t.Cleanup(l2Streams.Stop)
	t.Cleanup(bgpStreams.Stop)
	neigh := c.watchNeighbour(t, s.l2)
	unlabel := func() error {
		_, err := c.kubectl(ctx, "label", "node", node, election.ExcludeLabel+"-")
		return err
	}
	t.Cleanup(func() { _ = unlabel() })

	labelled := time.Now()
	if _, err := c.kubectl(ctx, "label", "node", node, election.ExcludeLabel+"=true"); err != nil {
		t.Fatal(err)
	}
	// Phase 1: the route is still there, with the community, and out of
	// the router's ECMP set.
	var gshutAt time.Duration
	eventually(t, 30*time.Second, fmt.Sprintf("the router's path for %s via %s (%s) with GRACEFUL_SHUTDOWN", s.bgp, node, nodeIP), func() error {
		paths, err := c.routerPaths(ctx, s.bgp)
		if err != nil {
			return err
		}
		for _, p := range paths {
			if p.NextHop == nodeIP && p.gshut() {
				gshutAt = time.Since(labelled)
				t.Logf("router: path via %s: communities %q, local preference %d, %v after the label", nodeIP, p.Communities, p.LocalPref, gshutAt.Round(time.Millisecond))
				if p.LocalPref != 0 {
					return fmt.Errorf("local preference %d, want 0 (the router's gshut route-map)", p.LocalPref)
				}
				return nil
			}
		}
		return fmt.Errorf("paths %+v", paths)
	})
	c.wantNextHops(t, s.bgp, others)
	if paths, err := c.routerPaths(ctx, s.bgp); err != nil {
		t.Fatal(err)
	} else if !slices.ContainsFunc(paths, func(p routerPath) bool { return p.NextHop == nodeIP }) {
		// The withdrawal came before the checks above could see the path.
		t.Fatalf("the path via %s was withdrawn %v after the label, before the drain delay ended", nodeIP, time.Since(labelled).Round(time.Millisecond))
	}
	c.wantDraining(t, node, v1alpha1.DrainingGracefulShutdown)
	eventually(t, 30*time.Second, "the host's neighbour entry for "+s.l2.String()+" off "+node, func() error {
		if n := c.announcer(t, s.l2); n == node {
			return fmt.Errorf("still %s", n)
		}
		return nil
	})

	// Phase 2: after the drain delay the route is withdrawn.
	var withdrawnAt time.Duration
	eventually(t, time.Minute, fmt.Sprintf("the router's path for %s via %s withdrawn", s.bgp, nodeIP), func() error {
		paths, err := c.routerPaths(ctx, s.bgp)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(paths, func(p routerPath) bool { return p.NextHop == nodeIP }) {
			return fmt.Errorf("paths %+v", paths)
		}
		withdrawnAt = time.Since(labelled)
		return nil
	})
	c.wantDraining(t, node, v1alpha1.DrainingWithdrawn)
	for _, reason := range []string{plan.EventDraining, plan.EventDrained} {
		eventually(t, 30*time.Second, "a "+reason+" Event on Node "+node, func() error {
			if len(c.events(t, "", "Node", node, reason, labelled)) == 0 {
				return fmt.Errorf("none")
			}
			return nil
		})
	}
	t.Logf("label on %s: GRACEFUL_SHUTDOWN at the router after %v, route withdrawn after %v",
		node, gshutAt.Round(time.Millisecond), withdrawnAt.Round(time.Millisecond))

	// Back in service.
	unlabelled := time.Now()
	if err := unlabel(); err != nil {
		t.Fatal(err)
	}
	c.wantDraining(t, node, "")
	c.wantNextHops(t, s.bgp, workers)
	eventually(t, 30*time.Second, "a "+plan.EventDrainEnded+" Event on Node "+node, func() error {
		if len(c.events(t, "", "Node", node, plan.EventDrainEnded, unlabelled)) == 0 {
			return fmt.Errorf("none")
		}
		return nil
	})
	// The lan pool fails back at once: the address returns to node.
	eventually(t, 30*time.Second, "the host's neighbour entry for "+s.l2.String()+" back on "+node, func() error {
		if n := c.announcer(t, s.l2); n != node {
			return fmt.Errorf("on %s", n)
		}
		return nil
	})
	ld.settle(t, 3*time.Second)
	neigh.close()
	t.Logf("host's neighbour entry for %s: %s", s.l2, neigh)
	if moves := len(neigh.nodes()) - 1; moves != 2 {
		t.Errorf("the L2 address moved %d times (%v), want 2: away on the label, back on its removal", moves, neigh.nodes())
	}
	l2Streams.Stop()
	bgpStreams.Stop()
	noFailures(t, ld.report(t, "drain label on "+node+" and its removal"))
	ld.checkStreams(t, ld.probes[0], l2Streams)
	ld.checkStreams(t, ld.probes[1], bgpStreams)
	sameAddresses(t, before, c.addresses(t))
}

// checkStreams fails the test for every broken stream to p's address,
// except, through the router, one it re-hashed between nodes in service
// (logged), shows what the cluster did around the others, and logs how
// many held, by the node of their pod.
func (l *load) checkStreams(t *testing.T, p *probe, ss *labtest.Streams) {
	t.Helper()
	byNode := map[string]int{}
	var broken []labtest.Failure
	for _, st := range ss.Results() {
		byNode[st.Node]++
		if st.Broken != "" {
			err := st.Err
			if err == nil {
				err = errors.New(st.Broken)
			}
			broken = append(broken, labtest.Failure{Start: st.Opened, At: st.BrokenAt, Local: st.Local, Err: err})
		}
	}
	counted := broken
	if p.ecmp != nil && len(broken) > 0 {
		var rehashed []labtest.Failure
		rehashed, counted = p.ecmp.judge(t, broken)
		t.Logf("%s: %d broken streams re-hashed by the router between nodes in service (not counted)", p.name, len(rehashed))
	}
	t.Logf("%s: %d long-lived streams (pods' nodes %v), %d broken", p.name, len(ss.Results()), byNode, len(broken))
	var at []time.Time
	pods := map[string]string{}
	for _, st := range ss.Results() {
		pods[st.Local] = st.Pod + " on " + st.Node
	}
	for _, f := range counted {
		t.Errorf("%s: stream from %s (pod %s) opened %s broke at %s: %v", p.name, f.Local, pods[f.Local], f.Start.Format("15:04:05.000"), f.At.Format("15:04:05.000"), f.Err)
		at = append(at, f.At)
	}
	if len(counted) > 0 {
		slices.SortFunc(at, time.Time.Compare)
		l.explain(t, p, counted, at)
	}
}

// wantDraining waits until every BGPSessionState of node says draining
// (empty: in service).
func (c *cluster) wantDraining(t *testing.T, node, draining string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("BGPSessionStates of %s draining %q", node, draining), func() error {
		ss := c.sessions(t, node)
		if len(ss) == 0 {
			return fmt.Errorf("none")
		}
		for _, s := range ss {
			if s.Draining != draining || s.State != "Established" {
				return fmt.Errorf("%s: state %s, draining %q", s.Name, s.State, s.Draining)
			}
		}
		return nil
	})
	t.Logf("BGPSessionStates of %s: draining %q", node, draining)
}
