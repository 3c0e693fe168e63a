package member

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beaconlb/beacon/speaker/election"
)

func TestMessageV3RoundTrip(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("secret")} {
		for _, m := range []Message{
			{Kind: Beat, Name: "a", Incarnation: 1, Seq: 2, V3: true, Watch: true, State: &State{}},
			{Kind: Beat, Name: "a", Incarnation: 1, Seq: 3, V3: true, Hello: true, State: &State{Claims: claims(3)}},
			{Kind: Beat, Name: "a", Incarnation: 1, Seq: 3, V3: true, Ack: true, State: &State{}},
			{Kind: Leave, Name: "a", Incarnation: 1, Seq: 4, V3: true, State: &State{}},
			{Kind: Dead, Name: "a", Incarnation: 1, Seq: 5, V3: true, Subject: Subject{Name: "b", Incarnation: 7, Seq: 1 << 40}},
		} {
			b, err := m.Marshal(key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b, key)
			sameState := (got.State == nil) == (m.State == nil) && (m.State == nil || got.State.Equal(*m.State))
			want := m
			got.State, want.State = nil, nil
			if err != nil || got != want || !sameState {
				t.Fatalf("key %q: Parse(Marshal(%+v)) = %+v, %v", key, m, got, err)
			}
			// Speakers of version 1 (and 2, whose parser rejects any
			// version byte but its own two) drop version 3.
			if _, err := parseV1(b, key); err == nil {
				t.Errorf("version 1 parsed version 3: %+v", m)
			}
		}
	}
}

// The wire format is shared by speakers of different versions: pin it.
func TestMessageV3WireFormat(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{Kind: Beat, Name: "n1", Incarnation: 1, Seq: 9, V3: true, Watch: true, Hello: true},
			"42434e03" + "01060200" + "0000000000000001" + "0000000000000009" + "6e31" + "00" + "0000"},
		{Message{Kind: Dead, Name: "n1", Incarnation: 1, Seq: 9, V3: true, Subject: Subject{Name: "n2", Incarnation: 2, Seq: 3}},
			"42434e03" + "03000200" + "0000000000000001" + "0000000000000009" + "6e31" + "02" + "6e32" + "0000000000000002" + "0000000000000003"},
	} {
		b, err := tc.m.Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(b); got != tc.want {
			t.Errorf("wire of %+v = %s, want %s", tc.m, got, tc.want)
		}
	}
}

func TestMessageV3Rejects(t *testing.T) {
	for _, m := range []Message{
		{Kind: Dead, Name: "a", Subject: Subject{Name: "b"}}, // dead needs version 3
		{Kind: Beat, Name: "a", Watch: true},                 // flags need version 3
		{Kind: Dead, Name: "a", V3: true},                    // no subject
	} {
		if _, err := m.Marshal(nil); err == nil {
			t.Errorf("Marshal(%+v) succeeded", m)
		}
	}
	good, _ := Message{Kind: Dead, Name: "a", V3: true, Subject: Subject{Name: "b"}}.Marshal(nil)
	for name, b := range map[string][]byte{
		"truncated subject": good[:len(good)-1],
		"trailing byte":     append(slices.Clone(good), 0),
		"unknown flag":      func() []byte { c := slices.Clone(good); c[5] = 16; return c }(),
		"dead in version 2": func() []byte { c := slices.Clone(good); c[3] = 2; return c }(),
	} {
		if _, err := Parse(b, nil); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func claims(n int) []netip.Addr {
	var out []netip.Addr
	for i := range n {
		out = append(out, netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	return out
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// RankWatchers, the one-pass form, agrees with the engine's full order.
func TestRankWatchers(t *testing.T) {
	var peers []string
	for i := range 200 {
		peers = append(peers, fmt.Sprintf("node-%d", i))
	}
	for _, k := range []int{1, 3, 5} {
		for _, node := range []string{"node-0", "node-17", "elsewhere"} {
			want := rankPeers(node, peers)[:k]
			if got := RankWatchers(node, peers, k); !slices.Equal(got, want) {
				t.Errorf("RankWatchers(%s, k=%d) = %v, want %v", node, k, got, want)
			}
		}
	}
}

// pickWatchers skips dead peers but keeps them, so that they hear from
// the node when they come back, and stops at 4k names.
func TestPickWatchers(t *testing.T) {
	ranked := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}
	for _, tc := range []struct {
		dead string
		k    int
		want string
	}{
		{"", 2, "a,b"},
		{"a", 2, "a,b,c"},
		{"a,c", 2, "a,b,c,d"},
		{"a,b,c,d,e,f,g,h", 2, "a,b,c,d,e,f,g,h"},
		{"a,b,c,d,e,f,g,h,i", 1, "a,b,c,d"},
	} {
		dead := map[string]bool{}
		for _, d := range splitList(tc.dead) {
			dead[d] = true
		}
		got := pickWatchers(ranked, tc.k, func(p string) bool { return !dead[p] })
		if joined := fmt.Sprint(got); joined != fmt.Sprint(splitList(tc.want)) {
			t.Errorf("dead %q k %d: %v, want %s", tc.dead, tc.k, got, tc.want)
		}
	}
}

// A watcher's dead notice is applied unless it is about an older process,
// or this node heard the peer after the watcher did, recently.
func TestTableReceiveDead(t *testing.T) {
	const dead = 400 * time.Millisecond
	for _, tc := range []struct {
		name    string
		subject Subject
		at      time.Duration // after the peer's last beat (inc 5, seq 10)
		want    bool
	}{
		{"current", Subject{"b", 5, 10}, 0, true},
		{"later seq", Subject{"b", 5, 12}, 0, true},
		{"older process", Subject{"b", 4, 99}, 0, false},
		{"newer process", Subject{"b", 6, 1}, 0, true},
		{"heard after the watcher, recently", Subject{"b", 5, 9}, dead / 2, false},
		{"heard after the watcher, long ago", Subject{"b", 5, 9}, dead, true},
		{"unknown peer", Subject{"c", 5, 10}, 0, false},
		{"this node", Subject{"a", 5, 10}, 0, false},
	} {
		tb := NewTable("a", dead, t0)
		tb.Receive(Message{Kind: Beat, Name: "b", Incarnation: 5, Seq: 10, V3: true}, t0)
		if got := tb.ReceiveDead(tc.subject, t0.Add(tc.at)); got != tc.want || tb.Alive("b") == (tc.want && tc.subject.Name == "b") {
			t.Errorf("%s: ReceiveDead = %v, alive %v; want %v", tc.name, got, tb.Alive("b"), tc.want)
		}
	}
}

// A version 3 peer's silence counts only while it asks to be watched; an
// older peer's always does.
func TestTableWatched(t *testing.T) {
	const dead = 400 * time.Millisecond
	tb := NewTable("a", dead, t0)
	tb.Receive(Message{Kind: Beat, Name: "old", Incarnation: 1, Seq: 1}, t0)
	tb.Receive(Message{Kind: Beat, Name: "w", Incarnation: 1, Seq: 1, V3: true, Watch: true}, t0)
	tb.Receive(Message{Kind: Beat, Name: "u", Incarnation: 1, Seq: 1, V3: true}, t0)
	// A version 3 peer's older beats (sent until it hears version 3
	// back) do not make it watched.
	tb.Receive(Message{Kind: Beat, Name: "u", Incarnation: 1, Seq: 2, State: &State{}}, t0)
	if _, died := tb.Tick(t0.Add(dead)); fmt.Sprint(died) != "[old w]" {
		t.Fatalf("died %v, want [old w]", died)
	}
	tb.Receive(Message{Kind: Beat, Name: "w", Incarnation: 1, Seq: 2, V3: true}, t0.Add(dead)) // released
	if _, died := tb.Tick(t0.Add(10 * dead)); len(died) != 0 || !tb.Alive("u") || !tb.Alive("w") {
		t.Fatalf("died %v; alive %v", died, tb.AliveNames())
	}
}

// An engine without watchers ignores version 3, as a version 2 speaker
// does, so that a version 3 peer's hello does not stop it from watching
// that peer.
func TestEngineWithoutWatchersIgnoresV3(t *testing.T) {
	e := NewEngine(EngineConfig{Name: "a", Interval: 60 * time.Millisecond, DeadAfter: 240 * time.Millisecond}, t0)
	e.SetPeers([]string{"b"}, t0)
	changed, out := e.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: 1, V3: true, Hello: true, State: &State{}}, t0)
	if changed || out != nil || e.Table().Alive("b") {
		t.Fatalf("version 3 hello: changed %v, out %v, alive %v", changed, out, e.Table().Alive("b"))
	}
	e.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: 2, State: &State{}}, t0)
	if p, ok := e.Table().Peer("b"); !ok || !p.Alive || !p.Watched {
		t.Fatalf("after version 2: %+v, want alive and watched", p)
	}
}

// v3Engine returns an engine of node "a" whose greeting every peer has
// answered in version 3, settled.
func v3Engine(t *testing.T, peers []string) *Engine {
	t.Helper()
	e := NewEngine(EngineConfig{Name: "a", Interval: DefaultWatchInterval, DeadAfter: DefaultWatchDeadAfter, Watchers: 2}, t0)
	e.SetPeers(append([]string{"a"}, peers...), t0)
	for _, p := range peers {
		e.Receive(Message{Kind: Beat, Name: p, Incarnation: 1, Seq: 1, V3: true, Ack: true, State: &State{}}, t0)
	}
	e.Expire(t0.Add(DefaultWatchDeadAfter))
	if !e.Table().Settled() {
		t.Fatal("not settled")
	}
	return e
}

// recipients returns who gets a message of kind with State, and who gets
// the watch flag.
func recipients(outs []Out) (state, watch []string) {
	for _, o := range outs {
		if o.Msg.Kind == Beat && o.Msg.State != nil && o.Msg.V3 {
			state = append(state, o.To...)
			if o.Msg.Watch {
				watch = append(watch, o.To...)
			}
		}
	}
	slices.Sort(state)
	slices.Sort(watch)
	return state, watch
}

// In steady state a node beats its watchers only; a state change goes to
// every peer at once and on the next two ticks, then to the watchers
// again.
func TestEngineBeatsWatchersAndBroadcastsState(t *testing.T) {
	peers := []string{"b", "c", "d", "e", "f", "g"}
	e := v3Engine(t, peers)
	now := t0.Add(time.Second)
	state, watch := recipients(e.Tick(now))
	if len(watch) != 2 || !slices.Equal(state, watch) {
		t.Fatalf("steady tick: to %v, watch %v; want 2 watchers only", state, watch)
	}
	watchers := watch
	if !e.SetLocal(State{Claims: claims(1)}) {
		t.Fatal("SetLocal reported no change")
	}
	for i, outs := range [][]Out{e.StateChanged(now), e.Tick(now.Add(DefaultWatchInterval)), e.Tick(now.Add(2 * DefaultWatchInterval))} {
		state, watch := recipients(outs)
		if !slices.Equal(state, peers) || !slices.Equal(watch, watchers) {
			t.Errorf("round %d after the change: to %v, watch %v; want every peer, watchers %v", i, state, watch, watchers)
		}
	}
	if state, _ := recipients(e.Tick(now.Add(3 * DefaultWatchInterval))); !slices.Equal(state, watchers) {
		t.Errorf("fourth round: to %v, want the watchers %v", state, watchers)
	}
}

// A watcher's death makes the next peer in rank a watcher; the dead one
// still gets beats (it may come back), and a watcher that is no longer
// one gets beats without the flag for DeadAfter.
func TestEngineReplacesAndReleasesWatchers(t *testing.T) {
	peers := []string{"b", "c", "d", "e", "f", "g"}
	e := v3Engine(t, peers)
	now := t0.Add(time.Second)
	_, watch := recipients(e.Tick(now))
	ranked := rankPeers("a", peers)
	if !slices.Equal(watch, sorted(ranked[:2])) {
		t.Fatalf("watchers %v, want the first two of %v", watch, ranked)
	}
	dead := ranked[0]
	e.Receive(Message{Kind: Dead, Name: ranked[3], Incarnation: 1, Seq: 2, V3: true, Subject: Subject{Name: dead, Incarnation: 1, Seq: 1}}, now)
	if e.Table().Alive(dead) {
		t.Fatalf("%s alive after a dead notice", dead)
	}
	if _, watch := recipients(e.Tick(now)); !slices.Equal(watch, sorted(ranked[:3])) {
		t.Fatalf("after %s died: watch %v, want %v", dead, watch, sorted(ranked[:3]))
	}
	// It comes back: the third one is released, for DeadAfter.
	e.Receive(Message{Kind: Beat, Name: dead, Incarnation: 2, Seq: 1, V3: true, Ack: true, State: &State{}}, now)
	state, watch := recipients(e.Tick(now))
	if !slices.Equal(watch, sorted(ranked[:2])) || !slices.Contains(state, ranked[2]) {
		t.Fatalf("after %s came back: to %v, watch %v; want watchers %v and %s released", dead, state, watch, sorted(ranked[:2]), ranked[2])
	}
	if state, _ := recipients(e.Tick(now.Add(DefaultWatchDeadAfter))); slices.Contains(state, ranked[2]) {
		t.Fatalf("%s still beaten after DeadAfter: %v", ranked[2], state)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// A node among many greets HelloBurst silent peers per tick, and stays
// unsettled until DeadAfter after the last first greeting.
func TestEnginePacesGreetings(t *testing.T) {
	var peers []string
	for i := range HelloBurst*2 + 10 {
		peers = append(peers, fmt.Sprintf("p%04d", i))
	}
	e := NewEngine(EngineConfig{Name: "a", Interval: DefaultWatchInterval, DeadAfter: DefaultWatchDeadAfter, Watchers: 3}, t0)
	e.SetPeers(peers, t0)
	greeted := map[string]bool{}
	var last time.Time
	now := t0
	for tick := 0; len(greeted) < len(peers); tick++ {
		if tick > 5 {
			t.Fatalf("%d of %d greeted after 5 ticks", len(greeted), len(peers))
		}
		n := 0
		for _, o := range e.Tick(now) {
			if o.Msg.V3 && o.Msg.Hello {
				for _, p := range o.To {
					if !greeted[p] {
						greeted[p], last = true, now
					}
					n++
				}
			}
		}
		if n > HelloBurst+3 { // the watchers come on top
			t.Fatalf("tick %d greeted %d peers, want at most %d", tick, n, HelloBurst+3)
		}
		now = now.Add(DefaultWatchInterval)
	}
	e.Expire(last.Add(DefaultWatchDeadAfter - time.Millisecond))
	if e.Table().Settled() {
		t.Fatal("settled before DeadAfter after the last first greeting")
	}
	e.Expire(last.Add(DefaultWatchDeadAfter))
	if !e.Table().Settled() {
		t.Fatal("not settled DeadAfter after the last first greeting")
	}
}

// rankPeers orders peers by WatchScore for node, highest first.
func rankPeers(node string, peers []string) []string {
	others := slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return p == node })
	return election.Order(others, func(p string) uint64 { return WatchScore(node, p) })
}

// hellos returns who gets a greeting.
func hellos(outs []Out) []string {
	var to []string
	for _, o := range outs {
		if o.Msg.V3 && o.Msg.Hello {
			to = append(to, o.To...)
		}
	}
	slices.Sort(to)
	return to
}

// A peer whose Node is not ready is probed by the nodes among its 4k
// watcher candidates: it stays alive if it answers, and dies after
// DeadAfter with notices to every peer if it does not. A node outside its
// candidates, or one that watches it already, does not probe; a suspect
// is probed when it enters the set and every ProbeEvery while it stays.
func TestEngineProbesSuspects(t *testing.T) {
	var peers []string
	for i := range 30 {
		peers = append(peers, fmt.Sprintf("p%02d", i))
	}
	everyone := append([]string{"a"}, peers...)
	var mine, other string // a is among mine's 4k candidates, not other's
	for _, p := range peers {
		in := slices.Contains(RankWatchers(p, everyone, 8), "a")
		switch {
		case in && mine == "":
			mine = p
		case !in && other == "":
			other = p
		}
	}
	if mine == "" || other == "" {
		t.Fatalf("no suspects to test with: %q %q", mine, other)
	}
	now := t0.Add(time.Second)

	t.Run("answers", func(t *testing.T) {
		e := v3Engine(t, peers)
		e.SetSuspects([]string{mine, other}, now)
		if got := hellos(e.Tick(now)); !slices.Equal(got, []string{mine}) {
			t.Fatalf("probes to %v, want [%s]", got, mine)
		}
		e.Receive(Message{Kind: Beat, Name: mine, Incarnation: 1, Seq: 2, V3: true, Ack: true, State: &State{}}, now.Add(time.Millisecond))
		if _, died, _ := e.Expire(now.Add(time.Second)); len(died) != 0 {
			t.Fatalf("died %v after answering", died)
		}
		if got := hellos(e.Tick(now.Add(time.Second))); len(got) != 0 {
			t.Fatalf("probes to %v after the answer", got)
		}
		// Still suspected: the next probe after ProbeEvery. Ready and not
		// ready again: one at once.
		e.SetSuspects([]string{mine}, now.Add(time.Second))
		if got := hellos(e.Tick(now.Add(time.Second))); len(got) != 0 {
			t.Fatalf("probes to %v while still suspected", got)
		}
		if got := hellos(e.Tick(now.Add(ProbeEvery))); !slices.Equal(got, []string{mine}) {
			t.Fatalf("probes to %v after ProbeEvery, want [%s]", got, mine)
		}
		e.Receive(Message{Kind: Beat, Name: mine, Incarnation: 1, Seq: 3, V3: true, Ack: true, State: &State{}}, now.Add(ProbeEvery))
		later := now.Add(ProbeEvery + time.Second)
		e.SetSuspects(nil, later)
		e.SetSuspects([]string{mine}, later)
		if got := hellos(e.Tick(later)); !slices.Equal(got, []string{mine}) {
			t.Fatalf("probes to %v after not ready again, want [%s]", got, mine)
		}
	})

	t.Run("silent", func(t *testing.T) {
		e := v3Engine(t, peers)
		e.SetSuspects([]string{mine}, now)
		for at := now; at.Before(now.Add(DefaultWatchDeadAfter)); at = at.Add(DefaultWatchInterval) {
			if got := hellos(e.Tick(at)); !slices.Equal(got, []string{mine}) {
				t.Fatalf("at +%v: probes to %v, want [%s]", at.Sub(now), got, mine)
			}
			if _, died, _ := e.Expire(at); len(died) != 0 {
				t.Fatalf("at +%v: died %v", at.Sub(now), died)
			}
		}
		_, died, out := e.Expire(now.Add(DefaultWatchDeadAfter))
		if !slices.Equal(died, []string{mine}) {
			t.Fatalf("died %v, want [%s]", died, mine)
		}
		var told []string
		for _, o := range out {
			if o.Msg.Kind == Dead && o.Msg.Subject.Name == mine {
				told = append(told, o.To...)
			}
		}
		want := slices.DeleteFunc(slices.Clone(peers), func(p string) bool { return p == mine })
		if !slices.Equal(sorted(told), want) {
			t.Fatalf("notices to %v, want every other peer", told)
		}
		if got := hellos(e.Tick(now.Add(time.Second))); len(got) != 0 {
			t.Fatalf("probes to %v after it died", got)
		}
	})

	t.Run("watched", func(t *testing.T) {
		e := v3Engine(t, peers)
		e.Receive(Message{Kind: Beat, Name: mine, Incarnation: 1, Seq: 2, V3: true, Watch: true, State: &State{}}, now)
		e.SetSuspects([]string{mine}, now)
		if got := hellos(e.Tick(now)); len(got) != 0 {
			t.Fatalf("probes to %v, want none: its silence counts already", got)
		}
	})
}

// A node back from a stall its watchers took for its death takes part in
// no election until its peers know it lives: until the first notice of its
// death arrives, at most DeadAfter after it woke. A shorter stall, or one
// with no peer alive to take over, changes nothing.
func TestEngineRejoinsAfterStall(t *testing.T) {
	const iv, dead = DefaultWatchInterval, DefaultWatchDeadAfter
	notice := func(e *Engine, inc uint64) Message {
		return Message{Kind: Dead, Name: "b", Incarnation: 1, Seq: 9, V3: true, Subject: Subject{Name: "a", Incarnation: inc, Seq: 1}}
	}
	for _, tc := range []struct {
		name     string
		v2       bool
		alone    bool
		stall    time.Duration
		noticeAt time.Duration // after the wake; 0: none
		other    bool          // the notice names an earlier incarnation
		rejoin   bool
		ends     time.Duration // after the wake
	}{
		{name: "short stall", stall: dead - 2*iv},
		{name: "long stall, notice", stall: dead, noticeAt: 2 * time.Millisecond, rejoin: true, ends: 2 * time.Millisecond},
		{name: "long stall, late notice", stall: 3 * time.Second, noticeAt: dead - iv, rejoin: true, ends: dead - iv},
		{name: "long stall, no notice", stall: dead, rejoin: true, ends: dead},
		{name: "notice of an earlier incarnation", stall: dead, noticeAt: 2 * time.Millisecond, other: true, rejoin: true, ends: dead},
		{name: "no peer alive", stall: time.Second, alone: true},
		{name: "without watchers", v2: true, stall: time.Second, rejoin: true, ends: dead},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *Engine
			switch {
			case tc.v2:
				e = NewEngine(EngineConfig{Name: "a", Interval: iv, DeadAfter: dead}, t0)
				e.SetPeers([]string{"a", "b"}, t0)
				e.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: 1, State: &State{}}, t0)
			case tc.alone:
				e = NewEngine(EngineConfig{Name: "a", Interval: iv, DeadAfter: dead, Watchers: 2}, t0)
				e.SetPeers([]string{"a"}, t0)
			default:
				e = v3Engine(t, []string{"b", "c"})
			}
			at := t0
			for ; at.Before(t0.Add(2 * dead)); at = at.Add(iv) {
				e.Wake(at)
				if tc.v2 {
					e.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: uint64(at.Sub(t0)/iv) + 2, State: &State{}}, at)
				}
				e.Expire(at)
			}
			if !e.Table().Settled() || e.Rejoining() {
				t.Fatalf("before the stall: settled %v, rejoining %v", e.Table().Settled(), e.Rejoining())
			}
			woke := at.Add(tc.stall) // silent for the stall and an Interval
			e.Wake(woke)
			if e.Rejoining() != tc.rejoin {
				t.Fatalf("after a stall of %v: rejoining %v, want %v", tc.stall, e.Rejoining(), tc.rejoin)
			}
			if !tc.rejoin {
				return
			}
			if tc.noticeAt > 0 {
				inc := e.Incarnation()
				if tc.other {
					inc--
				}
				e.Receive(notice(e, inc), woke.Add(tc.noticeAt))
			}
			end, ok := e.NextDeadline()
			if !ok || end.After(woke.Add(tc.ends)) {
				t.Errorf("next deadline %v (%v), want by %v after the wake", end.Sub(woke), ok, tc.ends)
			}
			if e.Expire(woke.Add(tc.ends - time.Millisecond)); !e.Rejoining() {
				t.Errorf("%v after the wake: rejoined, want still rejoining", tc.ends-time.Millisecond)
			}
			if changed, _, _ := e.Expire(woke.Add(tc.ends)); !changed || e.Rejoining() {
				t.Errorf("%v after the wake: changed %v, rejoining %v; want rejoined", tc.ends, changed, e.Rejoining())
			}
		})
	}
}

// While a node rejoins, the peers it watches may have stopped beating it
// (they took it for dead): their silence counts against them only from
// the end of the rejoin, DeadAfter later.
func TestEngineRejoinJudgesNoPeer(t *testing.T) {
	const iv, dead = DefaultWatchInterval, DefaultWatchDeadAfter
	e := v3Engine(t, []string{"b", "c"})
	at := t0
	seq := uint64(10)
	for ; at.Before(t0.Add(2 * dead)); at = at.Add(iv) {
		e.Wake(at)
		seq++
		e.Receive(Message{Kind: Beat, Name: "b", Incarnation: 1, Seq: seq, V3: true, Watch: true, State: &State{}}, at)
		e.Expire(at)
	}
	if p, _ := e.Table().Peer("b"); !p.Watched {
		t.Fatal("b is not watched")
	}
	woke := at.Add(time.Second) // b sends nothing from here on
	e.Wake(woke)
	if !e.Rejoining() {
		t.Fatal("not rejoining after a stall of a second")
	}
	end := woke.Add(dead - time.Millisecond)
	for at := woke; at.Before(end); at = at.Add(iv) {
		if e.Expire(at); !e.Table().Alive("b") {
			t.Fatalf("b dead %v after the wake, while rejoining", at.Sub(woke))
		}
	}
	e.Receive(Message{Kind: Dead, Name: "c", Incarnation: 1, Seq: 99, V3: true, Subject: Subject{Name: "a", Incarnation: e.Incarnation(), Seq: 1}}, end)
	if e.Expire(end); e.Rejoining() || !e.Table().Alive("b") {
		t.Fatalf("at the rejoin's end: rejoining %v, b alive %v", e.Rejoining(), e.Table().Alive("b"))
	}
	if e.Expire(end.Add(dead - time.Millisecond)); !e.Table().Alive("b") {
		t.Fatal("b dead before DeadAfter after the rejoin")
	}
	if e.Expire(end.Add(dead)); e.Table().Alive("b") {
		t.Fatal("b still alive DeadAfter after the rejoin without a beat")
	}
}
