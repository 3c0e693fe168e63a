package member

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one event of a table scenario, at a millisecond offset from t0.
type step struct {
	ms int
	// One of: a message ("beat b 1 5" = kind, name, incarnation, seq),
	// "tick", "stall 450" (the caller did not run for 450 ms) or "peers a,b".
	do string
	// want is the expected AliveNames after the step, comma-separated;
	// "settled:" in front also requires Settled.
	want    string
	changed bool
}

func parseStep(t *testing.T, s string) Message {
	t.Helper()
	var kind, name string
	var inc, seq uint64
	if _, err := fmt.Sscanf(s, "%s %s %d %d", &kind, &name, &inc, &seq); err != nil {
		t.Fatalf("bad step %q: %v", s, err)
	}
	k := map[string]Kind{"beat": Beat, "leave": Leave}[kind]
	return Message{Kind: k, Name: name, Incarnation: inc, Seq: seq}
}

func TestTable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{{
		name: "unsettled until deadAfter has passed, then silence is death",
		steps: []step{
			{0, "peers b,c", "a", false},
			{399, "tick", "a", false},
			{400, "tick", "settled:a", true},
		},
	}, {
		name: "peers learnt after settling are not dead before they could be heard",
		steps: []step{
			{400, "tick", "settled:a", true},
			{500, "peers b", "a", false},
			{899, "tick", "a", false},
			{900, "tick", "settled:a", true},
			{950, "peers b", "settled:a", false},
		},
	}, {
		name: "beats keep a peer alive; silence for deadAfter kills it",
		steps: []step{
			{0, "beat b 1 1", "a,b", true},
			{100, "beat b 1 2", "a,b", false},
			{200, "beat b 1 3", "a,b", false},
			{599, "tick", "settled:a,b", true},
			{600, "tick", "settled:a", true},
			{650, "tick", "settled:a", false},
			{700, "beat b 1 4", "settled:a,b", true},
		},
	}, {
		name: "leave kills at once; a late beat of the same run does not revive",
		steps: []step{
			{0, "beat b 1 1", "a,b", true},
			{100, "beat b 1 2", "a,b", false},
			{150, "leave b 1 4", "a", true},
			{151, "beat b 1 3", "a", false},  // reordered: sent before the leave
			{152, "leave b 1 4", "a", false}, // duplicate
		},
	}, {
		name: "a restarted peer (new incarnation) is alive again after leaving",
		steps: []step{
			{0, "beat b 5 1", "a,b", true},
			{10, "leave b 5 2", "a", true},
			{20, "beat b 6 1", "a,b", true},
		},
	}, {
		name: "stale packets of an older incarnation are ignored while alive",
		steps: []step{
			{0, "beat b 6 1", "a,b", true},
			{10, "leave b 5 99", "a,b", false},
			{20, "beat b 5 100", "a,b", false},
		},
	}, {
		name: "once dead, an older incarnation is accepted (clock went back on restart)",
		steps: []step{
			{0, "beat b 6 1", "a,b", true},
			{400, "tick", "settled:a", true},
			{500, "beat b 5 1", "settled:a,b", true},
		},
	}, {
		name: "duplicates and replays of the same incarnation are ignored",
		steps: []step{
			{0, "beat b 1 7", "a,b", true},
			{390, "beat b 1 7", "a,b", false},
			{400, "tick", "settled:a", true},
			{410, "beat b 1 6", "settled:a", false},
		},
	}, {
		name: "a stall of the caller does not count against peers",
		steps: []step{
			{0, "beat b 1 1", "a,b", true},
			{500, "stall 450", "a,b", false}, // the caller ran last at 50 ms
			{500, "tick", "settled:a,b", true},
			{849, "tick", "settled:a,b", false},
			{850, "tick", "settled:a", true}, // 400 ms of silence it saw
		},
	}, {
		name: "own name is ignored",
		steps: []step{
			{0, "beat a 1 1", "a", false},
			{1, "leave a 1 2", "a", false},
		},
	}, {
		name: "unknown peers are tracked",
		steps: []step{
			{0, "peers b", "a", false},
			{0, "beat z 1 1", "a,z", true},
			{1, "beat b 1 1", "a,b,z", true},
			{400, "tick", "settled:a,b", true},
		},
	}, {
		name: "several peers expire independently",
		steps: []step{
			{0, "beat b 1 1", "a,b", true},
			{200, "beat c 1 1", "a,b,c", true},
			{400, "tick", "settled:a,c", true},
			{599, "tick", "settled:a,c", false},
			{600, "tick", "settled:a", true},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tb := NewTable("a", 400*time.Millisecond, t0)
			for i, s := range tc.steps {
				now := t0.Add(time.Duration(s.ms) * time.Millisecond)
				var changed bool
				switch {
				case s.do == "tick":
					changed, _ = tb.Tick(now)
				case strings.HasPrefix(s.do, "stall "):
					ms, err := strconv.Atoi(strings.TrimPrefix(s.do, "stall "))
					if err != nil {
						t.Fatal(err)
					}
					tb.Stalled(time.Duration(ms) * time.Millisecond)
				case strings.HasPrefix(s.do, "peers "):
					tb.SetPeers(strings.Split(strings.TrimPrefix(s.do, "peers "), ","), now)
				default:
					changed = tb.Receive(parseStep(t, s.do), now)
				}
				got := strings.Join(tb.AliveNames(), ",")
				if tb.Settled() {
					got = "settled:" + got
				}
				if got != s.want || changed != s.changed {
					t.Fatalf("step %d (%dms %q): alive %q changed %v, want %q changed %v", i, s.ms, s.do, got, changed, s.want, s.changed)
				}
			}
		})
	}
}

func TestTableTickReportsDeaths(t *testing.T) {
	tb := NewTable("a", 400*time.Millisecond, t0)
	tb.Receive(Message{Kind: Beat, Name: "c", Incarnation: 1, Seq: 1}, t0)
	tb.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: 1}, t0)
	if _, died := tb.Tick(t0.Add(time.Second)); strings.Join(died, ",") != "b,c" {
		t.Fatalf("died = %v", died)
	}
	if !tb.Alive("a") || tb.Alive("b") || tb.Alive("nobody") {
		t.Fatal("Alive is wrong")
	}
}

func TestTableNextDeadline(t *testing.T) {
	d := 400 * time.Millisecond
	tb := NewTable("a", d, t0)
	if at, ok := tb.NextDeadline(); !ok || !at.Equal(t0.Add(d)) {
		t.Fatalf("before settling: %v %v, want the settle time", at, ok)
	}
	tb.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: 1}, t0.Add(-300*time.Millisecond))
	if at, _ := tb.NextDeadline(); !at.Equal(t0.Add(100 * time.Millisecond)) {
		t.Fatalf("with an older beat: %v, want its expiry", at)
	}
	tb.Tick(t0.Add(d))
	if at, ok := tb.NextDeadline(); ok {
		t.Fatalf("nothing pending, got %v", at)
	}
	tb.Receive(Message{Kind: Beat, Name: "c", Incarnation: 1, Seq: 1}, t0.Add(time.Second))
	if at, ok := tb.NextDeadline(); !ok || !at.Equal(t0.Add(time.Second+d)) {
		t.Fatalf("one alive peer: %v %v", at, ok)
	}
}

func TestTablePeers(t *testing.T) {
	tb := NewTable("a", time.Second, t0)
	tb.SetPeers([]string{"b"}, t0)
	tb.Receive(Message{Kind: Beat, Name: "b", Incarnation: 3, Seq: 9}, t0)
	tb.Receive(Message{Kind: Leave, Name: "b", Incarnation: 3, Seq: 10}, t0.Add(time.Millisecond))
	got := fmt.Sprintf("%+v", tb.Peers())
	want := fmt.Sprintf("[%+v]", PeerState{Name: "b", Left: true, LastSeen: t0.Add(time.Millisecond), Incarnation: 3, Seq: 10, Watched: true})
	if got != want {
		t.Fatalf("Peers = %s, want %s", got, want)
	}
	// A peer that left is remembered while known, and for the retention
	// period once no longer known.
	tb.Tick(t0.Add(time.Hour))
	if len(tb.Peers()) != 1 {
		t.Fatal("known peer forgotten")
	}
	tb.SetPeers(nil, t0.Add(time.Hour))
	tb.Tick(t0.Add(Retention(time.Second)))
	if len(tb.Peers()) != 1 {
		t.Fatal("unknown peer forgotten before the retention period")
	}
	tb.Tick(t0.Add(Retention(time.Second) + time.Millisecond))
	if len(tb.Peers()) != 0 {
		t.Fatalf("peer kept after the retention period: %+v", tb.Peers())
	}
}

// A version 3 beat that arrives after the older copy sent behind it still
// marks the peer as speaking version 3.
func TestTableReorderedVersions(t *testing.T) {
	tb := NewTable("a", time.Second, t0)
	tb.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: 2, State: &State{}}, t0)
	if p, _ := tb.Peer("b"); p.V3 || !p.Watched {
		t.Fatalf("after version 2: %+v", p)
	}
	tb.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: 1, V3: true, Hello: true, State: &State{}}, t0)
	if p, _ := tb.Peer("b"); !p.V3 || p.Watched || p.Seq != 2 {
		t.Fatalf("after the reordered version 3: %+v, want version 3, not watched, seq 2", p)
	}
}

// A peer heard before its Node object is known keeps what the table
// knows when it becomes known, and still expires on time.
func TestTablePeerBecomesKnown(t *testing.T) {
	tb := NewTable("a", time.Second, t0)
	tb.Receive(Message{Kind: Beat, Name: "c", Incarnation: 2, Seq: 5, V3: true, Watch: true}, t0.Add(100*time.Millisecond))
	if unsettled := tb.SetPeers([]string{"c", "b"}, t0.Add(200*time.Millisecond)); unsettled {
		t.Fatal("unsettled before settling")
	}
	p, ok := tb.Peer("c")
	if want := (PeerState{Name: "c", Alive: true, LastSeen: t0.Add(100 * time.Millisecond), Incarnation: 2, Seq: 5, V3: true, Watched: true}); !ok || p != want {
		t.Fatalf("c = %+v, %v; want %+v", p, ok, want)
	}
	if _, ok := tb.Peer("b"); ok {
		t.Fatal("b tracked before it was heard")
	}
	if at, ok := tb.NextDeadline(); !ok || !at.Equal(t0.Add(1100*time.Millisecond)) {
		t.Fatalf("next deadline %v %v, want c's expiry at 1.1s", at, ok)
	}
	if _, died := tb.Tick(t0.Add(1100 * time.Millisecond)); !slices.Equal(died, []string{"c"}) {
		t.Fatalf("died %v, want [c]", died)
	}
}

// Every speaker holds an entry per node of the cluster.
func TestTableEntrySize(t *testing.T) {
	if s := unsafe.Sizeof(peer{}); s > 40 {
		t.Errorf("a table entry takes %d bytes, want at most 40", s)
	}
}
