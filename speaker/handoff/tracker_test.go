package handoff

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.200")
	b := netip.MustParseAddr("2001:db8:100::200")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := NewTracker(time.Minute)
	steps := []struct {
		name   string
		at     time.Duration
		claims []Claim
		want   []Handoff
	}{
		{"fresh address: nothing to hand off", 0, []Claim{{IP: a}}, nil},
		{"still announced, no previous announcer", time.Second, []Claim{{IP: a}}, nil},
		{"address taken over", 2 * time.Second, []Claim{{IP: b, From: "node2"}}, []Handoff{{IP: b, Node: "node2"}}},
		{"a later claim does not replace the first holder", 3 * time.Second, []Claim{{IP: b, From: "node3"}}, []Handoff{{IP: b, Node: "node2"}}},
		{"window ends", 62 * time.Second, []Claim{{IP: b}}, nil},
		{"lost and taken over again: a new window", 63 * time.Second, nil, nil},
		{"second takeover", 64 * time.Second, []Claim{{IP: b, From: "node3"}, {IP: a, From: "node1"}}, []Handoff{{IP: a, Node: "node1"}, {IP: b, Node: "node3"}}},
		{"kept, nothing new", 70 * time.Second, []Claim{{IP: b}, {IP: a}}, []Handoff{{IP: a, Node: "node1"}, {IP: b, Node: "node3"}}},
		{"windows end", 125 * time.Second, []Claim{{IP: b}, {IP: a}}, nil},
		{"kept throughout, then a returning node held it (healed partition): a new window", 126 * time.Second, []Claim{{IP: b, From: "node2"}, {IP: a}}, []Handoff{{IP: b, Node: "node2"}}},
	}
	for _, s := range steps {
		got := tr.Update(t0.Add(s.at), s.claims)
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

// TestTrackerLinger: an address this node stops announcing is still
// handed off for Linger (clients that have not heard the new announcer
// yet still send here), unless its window ends first.
func TestTrackerLinger(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.200")
	b := netip.MustParseAddr("198.51.100.201")
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := NewTracker(time.Minute)
	ab := []Handoff{{IP: a, Node: "node2"}, {IP: b, Node: "node3"}}
	steps := []struct {
		name   string
		at     time.Duration
		claims []Claim
		want   []Handoff
	}{
		{"both taken over", 0, []Claim{{IP: a, From: "node2"}, {IP: b, From: "node3"}}, ab},
		{"a released: still handed off", time.Second, []Claim{{IP: b}}, ab},
		{"a still lingering", time.Second + Linger - time.Millisecond, []Claim{{IP: b}}, ab},
		{"a's linger over", time.Second + Linger, []Claim{{IP: b}}, []Handoff{{IP: b, Node: "node3"}}},
		{"b released, then claimed again within the linger: kept", 10 * time.Second, nil, []Handoff{{IP: b, Node: "node3"}}},
		{"b announced again", 11 * time.Second, []Claim{{IP: b}}, []Handoff{{IP: b, Node: "node3"}}},
		{"b lingers no longer than its window", 58 * time.Second, nil, []Handoff{{IP: b, Node: "node3"}}},
		{"b's window over", time.Minute, nil, nil},
	}
	for _, s := range steps {
		got := tr.Update(t0.Add(s.at), s.claims)
		if !reflect.DeepEqual(got, s.want) {
			t.Fatalf("%s: got %v, want %v", s.name, got, s.want)
		}
	}
}

func TestTrackerDisabled(t *testing.T) {
	tr := NewTracker(0)
	if got := tr.Update(time.Now(), []Claim{{IP: netip.MustParseAddr("198.51.100.200"), From: "node1"}}); got != nil {
		t.Fatalf("disabled tracker handed off %v", got)
	}
}
