package plan

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beaconlb/beacon/speaker/bgpplan"
	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// TestMakeDrain follows n1 through a drain in BGP mode: routes keep going
// out with GRACEFUL_SHUTDOWN, then are withdrawn, then come back; every
// phase shows in the BGPSessionState rows and gets one Event on the Node.
func TestMakeDrain(t *testing.T) {
	const delay = 30 * time.Second
	drainingEvent := "Node | /n1 | Normal | Draining | node n1 is labelled " + election.ExcludeLabel +
		": L2 addresses move to other nodes; BGP routes carry GRACEFUL_SHUTDOWN (65535:0) and are withdrawn in 30s"
	announcing := "Service | default/api | Normal | Announcing | Announcing 203.0.113.5 from node n1 via BGP (peers tor)"
	withdrawn := "Service | default/api | Normal | Withdrawn | Withdrawn 203.0.113.5 from node n1 via BGP: " +
		"the node is labelled " + election.ExcludeLabel
	var st State
	for i, s := range []struct {
		excluded bool
		phase    drain.Phase
		routes   string // to the peer: prefix,communities
		draining string // the session row's
		events   []string
	}{
		{false, drain.None, "203.0.113.5/32", "", []string{announcing}},
		{true, drain.None, "203.0.113.5/32", "", nil}, // the lead: as before
		{true, drain.GracefulShutdown, "203.0.113.5/32,c=65535:0", "GracefulShutdown", []string{drainingEvent}},
		{true, drain.GracefulShutdown, "203.0.113.5/32,c=65535:0", "GracefulShutdown", nil},
		{true, drain.Withdrawn, "", "Withdrawn", []string{
			"Node | /n1 | Normal | Drained | node n1 is labelled " + election.ExcludeLabel + " and announces nothing", withdrawn}},
		{false, drain.None, "203.0.113.5/32", "", []string{
			"Node | /n1 | Normal | DrainEnded | node n1 is no longer labelled " + election.ExcludeLabel + " and announces again", announcing}},
	} {
		f := bgpSite()
		if s.excluded {
			f.Nodes[0].Labels = map[string]string{election.ExcludeLabel: ""}
		}
		f.Drain = Drain{Phase: s.phase, Delay: delay}
		res := Make(f, st)
		st = res.State
		if len(res.BGP.Open) != 1 || len(res.BGP.Sessions) != 1 {
			t.Fatalf("step %d: %d sessions open, %d rows, want 1 and 1", i, len(res.BGP.Open), len(res.BGP.Sessions))
		}
		if got := routeStrings(res.BGP.Open[0].Routes); got != s.routes {
			t.Errorf("step %d (%q): routes %q, want %q", i, s.phase, got, s.routes)
		}
		if got := res.BGP.Sessions[0].Draining; got != s.draining {
			t.Errorf("step %d (%q): session row draining %q, want %q", i, s.phase, got, s.draining)
		}
		if got := eventStrings(res.Events); !slices.Equal(got, s.events) {
			t.Errorf("step %d (%q): events\n%q\nwant\n%q", i, s.phase, got, s.events)
		}
	}
}

func routeStrings(rs []bgpplan.Route) string {
	var out []string
	for _, r := range rs {
		o := r.Prefix.String()
		for _, c := range r.Communities {
			o += ",c=" + c.String()
		}
		if r.LocalPref != nil {
			o += ",lp=" + strconv.Itoa(int(*r.LocalPref))
		}
		out = append(out, o)
	}
	return strings.Join(out, " ")
}

// TestDrainHandoffs: a node hands the BGP flows it did not know back to a
// peer that started draining within the window, while that peer is alive;
// not to one already draining at this process's first L2 plan, nor while
// this node drains itself.
func TestDrainHandoffs(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	to := func(n string) []handoff.Handoff { return []handoff.Handoff{{IP: bgpIP, Node: n}} }
	var st State
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
		f := bgpSite()
		f.Now, f.HandoffWindow = t0.Add(s.at), time.Minute
		f.Drain.Phase = s.self
		for _, n := range f.Nodes {
			if slices.Contains(s.drained, n.Name) {
				n.Labels = map[string]string{election.ExcludeLabel: ""}
			}
			f.Members.Alive[n.Name] = n.Name != s.dead
		}
		res := Make(f, st)
		st = res.State
		if res.L2 == nil {
			t.Fatalf("step %d: no L2 plan", i)
		}
		if !slices.Equal(res.L2.Drain, s.want) {
			t.Errorf("step %d (+%v, draining %v, self %q, dead %q): got %v, want %v", i, s.at, s.drained, s.self, s.dead, res.L2.Drain, s.want)
		}
	}
	// Routes adds them to the tracker's hand-offs, which win for their
	// addresses, and routes them via the node's InternalIP.
	f := bgpSite()
	st2 := Make(f, State{}).State
	res := Make(f, st2)
	res.L2.Drain = to("n3")
	if got := handoff.String(res.L2.Routes(nil)); got != "203.0.113.5→198.51.100.13" {
		t.Errorf("drain routes %q", got)
	}
	if got := handoff.String(res.L2.Routes([]handoff.Handoff{{IP: bgpIP, Node: "n2"}})); got != "203.0.113.5→198.51.100.12" {
		t.Errorf("tracker and drain routes %q", got)
	}
}
