package controller

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestJudgeProbes(t *testing.T) {
	a, b := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("2001:db8:100::200")
	now := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	const timeout = 3 * time.Second
	cases := []struct {
		name     string
		kept     []netip.Addr
		answered map[netip.Addr]bool
		started  map[netip.Addr]time.Time
		want     string
	}{
		// Also when the controller has learnt since the allocation that
		// another host uses one: only the allocation's own knowledge (kept)
		// settles a conflict, as the address is about to move otherwise.
		{name: "new addresses wait the whole timeout",
			want: "waiting [198.51.100.200 2001:db8:100::200] in 3s, unprobed [], started [198.51.100.200 2001:db8:100::200]"},
		{name: "a probed address is settled", answered: map[netip.Addr]bool{a: true},
			want: "waiting [2001:db8:100::200] in 3s, unprobed [], started [2001:db8:100::200]"},
		{name: "a kept conflicting address is settled", kept: []netip.Addr{a, b},
			want: "waiting [] in 0s, unprobed [], started []"},
		{name: "the wait goes on from when it began",
			started: map[netip.Addr]time.Time{a: now.Add(-2 * time.Second), b: now.Add(-time.Second)},
			want:    "waiting [198.51.100.200 2001:db8:100::200] in 1s, unprobed [], started [198.51.100.200 2001:db8:100::200]"},
		{name: "an address that waited the timeout goes in unprobed",
			started: map[netip.Addr]time.Time{a: now.Add(-timeout)},
			want:    "waiting [2001:db8:100::200] in 3s, unprobed [198.51.100.200], started [198.51.100.200 2001:db8:100::200]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, started := judgeProbes([]netip.Addr{a, b}, tc.kept, tc.answered, tc.started, now, timeout)
			var keys []netip.Addr
			for _, ip := range []netip.Addr{a, b} {
				if _, ok := started[ip]; ok {
					keys = append(keys, ip)
				}
			}
			got := fmt.Sprintf("waiting %v in %v, unprobed %v, started %v", orEmpty(v.waiting), v.retryIn, orEmpty(v.unprobed), orEmpty(keys))
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func orEmpty(ips []netip.Addr) []netip.Addr {
	if ips == nil {
		return []netip.Addr{}
	}
	return ips
}
