package agent_test

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/record"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/speaker/agent"
	"github.com/beaconlb/beacon/speaker/member"
)

// states stands in for the heartbeats between speakers: what each node
// reports (claims, links without carrier) and who is alive, shared by the
// agents' Liveness views.
type states struct {
	mu     sync.Mutex
	alive  map[string]bool
	claims map[string][]netip.Addr
	down   map[string][]member.Link
	subs   []chan struct{}
}

func (s *states) notify() {
	for _, c := range s.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

func (s *states) update(f func()) {
	s.mu.Lock()
	f()
	s.mu.Unlock()
	s.notify()
}

func (s *states) claimed(node string) []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.claims[node])
}

// view is one node's Liveness (and NodeStates) over the shared states.
type view struct {
	s    *states
	self string
	ch   chan struct{}
}

func (s *states) view(self string) *view {
	v := &view{s: s, self: self, ch: make(chan struct{}, 1)}
	s.mu.Lock()
	s.subs = append(s.subs, v.ch)
	s.mu.Unlock()
	return v
}

func (v *view) Alive(n string) bool {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	return v.s.alive[n]
}
func (v *view) Settled() bool                      { return true }
func (v *view) Rejoining() bool                    { return false }
func (v *view) Changes() <-chan struct{}           { return v.ch }
func (v *view) SetPeers(map[string]netip.AddrPort) {}
func (v *view) Left(string) bool                   { return false }
func (v *view) State(n string) (member.State, bool) {
	v.s.mu.Lock()
	defer v.s.mu.Unlock()
	return member.State{Claims: v.s.claims[n], NoCarrier: v.s.down[n]}, true
}
func (v *view) SetClaims(ips []netip.Addr) {
	v.s.mu.Lock()
	same := slices.Equal(v.s.claims[v.self], ips)
	v.s.claims[v.self] = slices.Clone(ips)
	v.s.mu.Unlock()
	if !same {
		v.s.notify()
	}
}

// Three agents on a real API server with failback: Never: the announcer
// claims its address; when it dies another takes over and claims it; the
// first one's return changes nothing; a lost carrier on the taker's
// announcing interface moves the address on.
func TestAgentsStickyAndCarrier(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := []string{"sticky1", "sticky2", "sticky3"}
	ip := netip.MustParseAddr("198.51.100.150")
	l2Site(ctx, t, e, "sticky", "198.51.100.150-198.51.100.159", ip,
		map[string]netip.Addr{"sticky1": netip.MustParseAddr("198.51.100.31"), "sticky2": netip.MustParseAddr("198.51.100.32"), "sticky3": netip.MustParseAddr("198.51.100.33")},
		func(ad *v1alpha1.L2Advertisement) { ad.Spec.Failback = v1alpha1.FailbackNever })

	st := &states{alive: map[string]bool{}, claims: map[string][]netip.Addr{}, down: map[string][]member.Link{}}
	links := map[string]*fakeLinks{}
	agents := map[string]*agent.Agent{}
	stop := map[string]func(){}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	start := func(n string) {
		links[n] = &fakeLinks{ips: map[string][]netip.Addr{}}
		a := newAgent(t, agent.Config{
			Node: n, Clients: cli.Clients{Kube: e.Kube, Beacon: e.Beacon}, Liveness: st.view(n), Links: links[n],
			Recorder: record.NewFakeRecorder(100), Log: logr.Discard(), MemberPort: 7946,
		})
		agents[n] = a
		actx, acancel := context.WithCancel(ctx)
		done := make(chan struct{})
		wg.Go(func() { _ = a.Run(actx); close(done) })
		stop[n] = func() {
			acancel()
			<-done
			links[n].mu.Lock()
			links[n].ips = map[string][]netip.Addr{}
			links[n].mu.Unlock()
			// A new process starts with no claims.
			st.update(func() { st.alive[n] = false; delete(st.claims, n) })
		}
		st.update(func() { st.alive[n] = true })
	}
	for _, n := range nodes {
		start(n)
	}
	announcers := func() []string {
		var out []string
		for _, n := range nodes {
			if slices.Contains(links[n].announced("eth0"), ip) {
				out = append(out, n)
			}
		}
		return out
	}
	waitOne := func(what string, ok func(string) bool) string {
		t.Helper()
		var got string
		testenv.Poll(t, ctx, 10*time.Millisecond, 10*time.Second, what, func() (bool, string) {
			a := announcers()
			if len(a) != 1 || !ok(a[0]) || !slices.Equal(st.claimed(a[0]), []netip.Addr{ip}) {
				return false, "announcers " + strings.Join(a, ",")
			}
			got = a[0]
			return true, ""
		})
		return got
	}
	first := waitOne("initial election, claimed", func(string) bool { return true })
	stop[first]()
	taker := waitOne("takeover, claimed", func(n string) bool { return n != first })

	start(first)
	testenv.Poll(t, ctx, 10*time.Millisecond, 10*time.Second, first+" ready again", func() (bool, string) {
		return agents[first].Ready(), ""
	})
	// Ready means the returned agent applied a plan with the taker's claim
	// in it; more rounds change nothing.
	for range 3 {
		st.notify()
		if a := announcers(); !slices.Equal(a, []string{taker}) || len(st.claimed(first)) != 0 {
			t.Fatalf("after %s came back: announcers %v, its claims %v; want only %s", first, a, st.claimed(first), taker)
		}
	}

	// The taker's eth0 loses carrier: the address moves on, and the new
	// announcer claims it.
	st.update(func() {
		st.down[taker] = []member.Link{{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.31/24")}}}
	})
	next := waitOne("carrier lost on "+taker, func(n string) bool { return n != taker })
	t.Logf("%s announced, %s took over and kept it through %s's return, %s took over on lost carrier", first, taker, first, next)
	for _, n := range nodes {
		stop[n]()
	}
}
