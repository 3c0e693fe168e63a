package kind

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestFollowMonitor reads a capture of ip -ts monitor route on the kind
// router (the label test's three sets, the marker, another prefix).
func TestFollowMonitor(t *testing.T) {
	const capture = `[2026-12-07T08:45:13.528002] blackhole 198.18.111.255 table 1999 
[2026-12-07T08:45:13.532483] Deleted blackhole 198.18.111.255 table 1999 
[2026-12-07T08:45:14.000001] 198.18.110.1 nhid 16 proto bgp metric 20 
	nexthop via 198.18.100.3 dev eth1 weight 1 
	nexthop via 198.18.100.4 dev eth1 weight 1 
[2026-12-07T08:45:15.331014] 198.18.110.0 nhid 23 proto bgp metric 20 
	nexthop via 198.18.100.3 dev eth1 weight 1 
	nexthop via 198.18.100.4 dev eth1 weight 2 
[2026-12-07T08:45:16.000000] 198.18.110.0 table 2001 proto bgp metric 20 
	nexthop via 198.18.100.3 dev eth1 weight 1 
[2026-12-07T08:45:20.100000] 198.18.110.0 via 198.18.100.5 dev eth1 proto bgp metric 20 
[2026-12-07T08:45:25.754673] 198.18.110.0 nhid 15 proto bgp metric 20 
	nexthop via 198.18.100.3 dev eth1 weight 1 
	nexthop via 198.18.100.4 dev eth1 weight 1 
	nexthop via 198.18.100.5 dev eth1 weight 1 
[2026-12-07T08:45:34.378734] Deleted 198.18.110.0 nhid 15 proto bgp metric 20 
	nexthop via 198.18.100.3 dev eth1 weight 1 
`
	w := &ecmpWatch{ip: netip.MustParseAddr("198.18.110.0")}
	marker := make(chan struct{})
	if err := w.follow(strings.NewReader(capture), marker); err != nil {
		t.Fatal(err)
	}
	select {
	case <-marker:
	default:
		t.Error("the marker route was not reported")
	}
	want := []string{
		"08:45:15.331014 198.18.100.3(eth1,1) 198.18.100.4(eth1,2)",
		"08:45:20.100000 198.18.100.5(eth1,1)",
		"08:45:25.754673 198.18.100.3(eth1,1) 198.18.100.4(eth1,1) 198.18.100.5(eth1,1)",
		"08:45:34.378734 no route",
	}
	var got []string
	for _, s := range w.sets {
		got = append(got, s.at.Format("15:04:05.000000")+" "+hopList(s.hops))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMoved(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.18.100.3"), netip.MustParseAddr("198.18.100.4"), netip.MustParseAddr("198.18.100.5")
	set := func(hops ...netip.Addr) ecmpSet {
		s := ecmpSet{at: time.Now()}
		for _, h := range hops {
			s.hops = append(s.hops, ecmpHop{via: h, dev: "eth1", weight: 1})
		}
		return s
	}
	// c drained, then back.
	sets := []ecmpSet{set(a, b, c), set(a, b), set(a, b, c)}
	for _, tc := range []struct {
		name   string
		i0, i1 int
		path   []netip.Addr // next hop under sets i0..i1
		ok     bool
	}{
		{"between nodes in service on the drain", 0, 1, []netip.Addr{a, b}, true},
		{"off the drained node", 0, 1, []netip.Addr{c, a}, false},
		{"did not move", 0, 1, []netip.Addr{b, b}, false},
		{"to the node that rejoins", 1, 2, []netip.Addr{a, c}, true},
		{"between nodes in service on the rejoin", 1, 2, []netip.Addr{b, a}, true},
		{"over both changes, off the drained node first", 0, 2, []netip.Addr{c, a, c}, false},
		{"over both changes, moved on the rejoin", 0, 2, []netip.Addr{a, a, c}, true},
		{"no route in a set", 0, 1, []netip.Addr{a, {}}, false},
	} {
		why := moved(sets, tc.i0, tc.i1, func(k int) netip.Addr { return tc.path[k-tc.i0] })
		if (why == "") != tc.ok {
			t.Errorf("%s: moved = %q, want re-hashed %v", tc.name, why, tc.ok)
		}
	}
}
