package drain

import (
	"testing"
	"time"
)

func TestTracker(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		at       time.Duration
		excluded bool
		want     Phase
		next     time.Duration // 0: none
	}
	for _, tc := range []struct {
		name        string
		lead, delay time.Duration
		steps       []step
	}{
		{"never excluded", 0, 30 * time.Second, []step{{0, false, None, 0}, {time.Hour, false, None, 0}}},
		{"drain, wait, withdraw", 0, 30 * time.Second, []step{
			{0, false, None, 0},
			{10 * time.Second, true, GracefulShutdown, 40 * time.Second},
			{39 * time.Second, true, GracefulShutdown, 40 * time.Second},
			{40 * time.Second, true, Withdrawn, 0},
			{time.Hour, true, Withdrawn, 0},
		}},
		{"label removed during the delay, then again", 0, 30 * time.Second, []step{
			{0, false, None, 0},
			{1 * time.Second, true, GracefulShutdown, 31 * time.Second},
			{5 * time.Second, false, None, 0},
			{6 * time.Second, true, GracefulShutdown, 36 * time.Second},
		}},
		{"back in service after the drain", 0, 30 * time.Second, []step{
			{0, false, None, 0},
			{1 * time.Second, true, GracefulShutdown, 31 * time.Second},
			{31 * time.Second, true, Withdrawn, 0},
			{40 * time.Second, false, None, 0},
		}},
		{"started on an excluded node", time.Second, 30 * time.Second, []step{{0, true, Withdrawn, 0}, {time.Minute, true, Withdrawn, 0}}},
		{"no delay", 0, 0, []step{{0, false, None, 0}, {time.Second, true, Withdrawn, 0}}},
		{"lead: announcing as before, then the delay", time.Second, 30 * time.Second, []step{
			{0, false, None, 0},
			{10 * time.Second, true, None, 11 * time.Second},
			{10500 * time.Millisecond, true, None, 11 * time.Second},
			{11 * time.Second, true, GracefulShutdown, 41 * time.Second},
			{41 * time.Second, true, Withdrawn, 0},
			{42 * time.Second, false, None, 0},
		}},
		{"lead without delay", time.Second, 0, []step{
			{0, false, None, 0},
			{10 * time.Second, true, None, 11 * time.Second},
			{11 * time.Second, true, Withdrawn, 0},
		}},
		{"late update past the end", 0, 30 * time.Second, []step{
			{0, false, None, 0},
			{1 * time.Second, true, GracefulShutdown, 31 * time.Second},
			{5 * time.Minute, true, Withdrawn, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(tc.lead, tc.delay)
			for i, s := range tc.steps {
				p, next := tr.Update(t0.Add(s.at), s.excluded)
				var want time.Time
				if s.next != 0 {
					want = t0.Add(s.next)
				}
				if p != s.want || !next.Equal(want) {
					t.Fatalf("step %d (+%v excluded=%v): got %q next %v, want %q next %v", i, s.at, s.excluded, p, next, s.want, want)
				}
			}
		})
	}
}
