package e2e

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// neighbour returns the MAC client-lan has for ip ("" when none).
func (s *site) neighbour(ip string) string {
	out, _ := s.L.Exec(s.Ctx, lab.ClientLAN, "ip", "neigh", "show", ip)
	return strings.ToLower(neighMAC.FindString(string(out)))
}

var neighMAC = regexp.MustCompile(`(?i)[0-9a-f]{2}(:[0-9a-f]{2}){5}`)

// stableAnnouncer waits until exactly one node answers for ip, client-lan's
// neighbour entry points at it, and the prober has not failed for a second.
// (A killed speaker's ServiceAnnouncement stays until it restarts, so the
// reports do not say who announces here.)
func (s *site) stableAnnouncer(ip string, p *labtest.Prober) string {
	s.T.Helper()
	var who string
	s.Poll(30*time.Second, "a stable announcer of "+ip, func() (bool, string) {
		who = s.Answerer(ip)
		n := s.neighbour(ip)
		return who != "" && n == nodeMAC(s.L, who) && p.QuietFor(time.Second),
			fmt.Sprintf("answerer %q, neighbour %s", who, n)
	})
	return who
}

// Link-aware election: with heartbeats on a second NIC, pulling the
// announcer's LAN cable leaves its speaker alive, yet the address moves
// (NoCarrier), and comes back when the cable does (failback Immediate).
func TestL2LinkAwareFailover(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1, HeartbeatNetwork: true})
	s := startBeacon(t, l)
	s.LANPool()
	s.Apply(labtest.AllEchoService("linked", corev1.ServiceExternalTrafficPolicyCluster))
	ip := s.Ingress("linked")[0]
	p := labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(ip, "80"))
	defer p.Stop()
	first := s.stableAnnouncer(ip, p)

	if err := l.SetCable(s.Ctx, first, false); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	second, d := s.AnsweredBy(ip, 5*time.Second, func(n string) bool { return n != first })
	var outage time.Duration
	s.Poll(10*time.Second, "traffic back", func() (bool, string) {
		var ok bool
		outage, ok = p.Outage(at, at.Add(3*time.Second))
		return ok, ""
	})
	t.Logf("%s's LAN cable out: %s answers after %v; longest gap in traffic %v", first, second, d, outage)
	// The speaker on first is still alive for its peers: the address moved
	// for lack of carrier, not because the node died.
	s.Poll(5*time.Second, first+" still alive at "+second, func() (bool, string) {
		n := s.metric(second, "beacon_member_alive_nodes")
		return n == 3, fmt.Sprint(n)
	})

	if err := l.SetCable(s.Ctx, first, true); err != nil {
		t.Fatal(err)
	}
	_, d = s.AnsweredBy(ip, 10*time.Second, func(n string) bool { return n == first })
	t.Logf("cable back: %s answers again after %v", first, d)
}

// failedOver starts a lab with the failback given, a Service on the LAN
// pool and a prober sending to its IPv4 address every 10 ms; kills the
// announcing speaker and waits for another node to take over. It returns
// the address, the prober, the crashed node and the taker.
func failedOver(t *testing.T, f v1alpha1.Failback) (s *site, ip string, p *labtest.Prober, first, taker string) {
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s = startBeacon(t, l)
	s.LANPoolWith(func(ad *v1alpha1.L2AdvertisementSpec) { ad.Failback = f })
	s.Apply(labtest.AllEchoService("fb", corev1.ServiceExternalTrafficPolicyCluster))
	ip = s.Ingress("fb")[0]
	p = labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(ip, "80"))
	t.Cleanup(p.Stop)
	first = s.stableAnnouncer(ip, p)
	s.KillSpeaker(first)
	taker = s.stableAnnouncer(ip, p)
	if taker == first {
		t.Fatalf("%s still announces after its speaker was killed", first)
	}
	return s, ip, p, first, taker
}

// failback: Never. The announcer crashes, another node takes over, and the
// original one's return changes nothing: client-lan's neighbour entry keeps
// the taker's MAC, only the taker answers ARP, and no request fails. The
// taker keeps the address until it leaves itself.
func TestL2FailbackNever(t *testing.T) {
	s, ip, p, first, taker := failedOver(t, v1alpha1.FailbackNever)
	_, failedBefore := p.Counts()
	s.StartSpeaker(first)
	s.Poll(20*time.Second, first+" ready", func() (bool, string) { return s.ready(first), "" })
	// Watch for a while after the return: a bounded window, long enough
	// for several sync rounds and re-announcements.
	until := time.Now().Add(3 * time.Second)
	checks := 0
	for time.Now().Before(until) {
		if a := s.Answerer(ip); a != taker {
			t.Fatalf("after %s came back, %q answers for %s, want %s", first, a, ip, taker)
		}
		if n := s.neighbour(ip); n != nodeMAC(s.L, taker) {
			t.Fatalf("after %s came back, client-lan's neighbour entry for %s is %s, want %s's", first, ip, n, taker)
		}
		checks++
	}
	s.Poll(10*time.Second, "only "+taker+" reports announcing "+ip, func() (bool, string) {
		a := s.announcerOf("fb", ip)
		return a == taker, a
	})
	if _, failed := p.Counts(); failed != failedBefore {
		t.Fatalf("%d requests failed after %s came back: %q", failed-failedBefore, first, p.LastErrors())
	}
	t.Logf("%s took over from %s and kept %s through its return (%d checks)", taker, first, ip, checks)

	// The taker leaves: the address goes to the best remaining node.
	s.StopSpeaker(taker)
	next, _ := s.AnsweredBy(ip, 5*time.Second, func(n string) bool { return n != taker })
	t.Logf("%s left: %s answers", taker, next)
}

// failback: Immediate (the default). The original announcer's return takes
// the address back, and the hand-back drops no request (flow hand-off).
func TestL2FailbackImmediate(t *testing.T) {
	s, ip, p, first, taker := failedOver(t, v1alpha1.FailbackImmediate)
	_, failedBefore := p.Counts()
	s.StartSpeaker(first)
	if back := s.stableAnnouncer(ip, p); back != first {
		t.Fatalf("%s is back but %s announces %s", first, back, ip)
	}
	if _, failed := p.Counts(); failed != failedBefore {
		t.Fatalf("%d requests failed in the hand-back from %s to %s: %q", failed-failedBefore, taker, first, p.LastErrors())
	}
	t.Logf("%s handed %s back to %s with no failed request", taker, ip, first)
}

// A hung announcer: its speaker stopped (SIGSTOP) and its LAN cable out,
// as a frozen node. Another node takes the address over. When the node
// comes back (its speaker first, its cable 200 ms later, as a thawed kind
// node), its speaker's view still says it announces, but its peers
// declared it dead: it announces nothing until they know it lives, then
// takes the address back with the flow hand-off (failback Immediate).
// Client-lan's neighbour entry moves once, from the taker to it, and no
// request fails.
func TestL2StalledAnnouncerRejoins(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s := startBeacon(t, l)
	s.LANPool()
	// Local: while the cable is out, connections go to the taker's own pod,
	// not to the unreachable pod of the hung node.
	s.Apply(labtest.AllEchoService("hung", corev1.ServiceExternalTrafficPolicyLocal))
	ip := s.Ingress("hung")[0]
	p := labtest.StartProber(s.Ctx, l, lab.ClientLAN, net.JoinHostPort(ip, "80"))
	defer p.Stop()
	first := s.stableAnnouncer(ip, p)
	pid := s.Process("speaker-" + first).Pid
	thawed := false
	thaw := func() {
		if thawed {
			return
		}
		thawed = true
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Error(err)
		}
		// The scenario, not a wait for anything: the link comes back a
		// moment after the processes, as when a kind node is unpaused
		// and then its bridge port set up. Heartbeats the speaker sends
		// meanwhile leave its neighbour entries for the peers waiting
		// for the kernel's next resolution attempt, up to a second later.
		time.Sleep(200 * time.Millisecond)
		if err := l.SetCable(s.Ctx, first, true); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(thaw)
	if err := l.SetCable(s.Ctx, first, false); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	taker := s.stableAnnouncer(ip, p)
	if taker == first {
		t.Fatalf("%s still announces %s while hung", first, ip)
	}
	_, failedBefore := p.Counts()
	// Every MAC client-lan's neighbour entry holds, in order, until first
	// has answered alone for 3 s.
	moves := []string{s.neighbour(ip)}
	thaw()
	s.Poll(20*time.Second, first+" announcing "+ip+" for 3 s", func() (bool, string) {
		if n := s.neighbour(ip); n != moves[len(moves)-1] {
			moves = append(moves, n)
		}
		ok := moves[len(moves)-1] == nodeMAC(s.L, first) && s.Answerer(ip) == first && p.QuietFor(3*time.Second)
		return ok, fmt.Sprintf("neighbour entries %v, answerer %q", moves, s.Answerer(ip))
	})
	want := []string{nodeMAC(s.L, taker), nodeMAC(s.L, first)}
	if !slices.Equal(moves, want) {
		t.Errorf("client-lan's neighbour entry for %s went %v after %s came back; want %v (%s, then %s)", ip, moves, first, want, taker, first)
	}
	if _, failed := p.Counts(); failed != failedBefore {
		t.Errorf("%d requests failed after %s came back: %q", failed-failedBefore, first, p.LastErrors())
	}
	if n := s.metric(first, "beacon_member_rejoins_total"); n != 1 {
		t.Errorf("beacon_member_rejoins_total on %s: %v, want 1", first, n)
	}
	t.Logf("%s took %s over from the hung %s and handed it back; neighbour entries %v", taker, ip, first, moves)
}
