package agent

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// aliveSet is a Liveness of fixed answers.
type aliveSet map[string]bool

func (l aliveSet) Alive(n string) bool                { return l[n] }
func (l aliveSet) Settled() bool                      { return true }
func (l aliveSet) Changes() <-chan struct{}           { return nil }
func (l aliveSet) SetPeers(map[string]netip.AddrPort) {}
func (l aliveSet) Left(string) bool                   { return false }

// TestDrainHandoffs: a node hands the BGP flows it did not know back to a
// peer that started draining within the window, while that peer is alive;
// not to one already draining when this process started, nor while it
// drains itself.
func TestDrainHandoffs(t *testing.T) {
	live := aliveSet{"n2": true, "n3": true}
	a := New(Config{Node: "n1", Liveness: live, HandoffWindow: time.Minute})
	a.bgp = newBGPState()
	ip1, ip2 := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8:203::10")
	a.bgp.announced = map[bgpAnnounced]bool{{"d/web", ip2}: true, {"d/web", ip1}: true, {"d/other", ip1}: true}
	excluded := map[string]string{election.ExcludeLabel: ""}
	nodes := func(drained ...string) []election.Node {
		var out []election.Node
		for _, n := range []string{"n1", "n2", "n3"} {
			nd := election.Node{Name: n, Alive: live.Alive(n) || n == "n1"}
			if slices.Contains(drained, n) {
				nd.Labels = excluded
			}
			out = append(out, nd)
		}
		return out
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := func(n string) []handoff.Handoff {
		return []handoff.Handoff{{IP: ip1, Node: n}, {IP: ip2, Node: n}}
	}
	for i, s := range []struct {
		at      time.Duration
		drained []string
		self    drain.Phase
		dead    string
		want    []handoff.Handoff
	}{
		{0, []string{"n2"}, drain.None, "", nil}, // already draining at start
		{time.Second, []string{"n2", "n3"}, drain.None, "", to("n3")},
		{30 * time.Second, []string{"n2", "n3"}, drain.GracefulShutdown, "", nil}, // this node drains too
		{31 * time.Second, []string{"n2", "n3"}, drain.None, "n3", nil},           // n3 vanished
		{32 * time.Second, []string{"n2", "n3"}, drain.None, "", to("n3")},
		{61 * time.Second, []string{"n2", "n3"}, drain.None, "", nil}, // window over
		{62 * time.Second, []string{"n2"}, drain.None, "", nil},
		{63 * time.Second, []string{"n2", "n3"}, drain.None, "", to("n3")}, // drains again
	} {
		a.drainSt.phase = s.self
		for _, n := range []string{"n2", "n3"} {
			live[n] = n != s.dead
		}
		got := a.drainHandoffs(nodes(s.drained...), t0.Add(s.at))
		if !slices.Equal(got, s.want) {
			t.Errorf("step %d (+%v, draining %v, self %q, dead %q): got %v, want %v", i, s.at, s.drained, s.self, s.dead, got, s.want)
		}
	}
}
