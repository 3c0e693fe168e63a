package allocator

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// each calls fn with the free intervals in order, until it returns false.
func (f freeSet) each(fn func(lo, hi netip.Addr) bool) {
	f.t.Ascend(func(iv interval) bool { return fn(f.addr(iv.lo), f.addr(iv.hi)) })
}

// has reports whether ip is free.
func (f freeSet) has(ip netip.Addr) bool {
	_, ok := f.containing(toU(ip))
	return ok
}

func dumpFree(f freeSet) string {
	var out []string
	f.each(func(lo, hi netip.Addr) bool {
		if lo == hi {
			out = append(out, lo.String())
		} else {
			out = append(out, lo.String()+"-"+hi.String())
		}
		return true
	})
	return strings.Join(out, " ")
}

func TestFreeSetFill(t *testing.T) {
	for _, tc := range []struct {
		lo, hi string
		avoid  bool
		held   string // sorted addresses to leave out
		want   string
		n      int64
		left   int // held addresses beyond hi, left for the next range
	}{
		{lo: "10.0.0.0", hi: "10.0.0.3", want: "10.0.0.0-10.0.0.3", n: 4},
		{lo: "10.0.0.0", hi: "10.0.0.3", avoid: true, want: "10.0.0.1-10.0.0.3", n: 3},
		{lo: "10.0.0.0", hi: "10.0.0.0", avoid: true, want: "", n: 0},
		{lo: "10.0.0.255", hi: "10.0.0.255", avoid: true, want: "", n: 0},
		{lo: "10.0.0.254", hi: "10.0.1.1", avoid: true, want: "10.0.0.254 10.0.1.1", n: 2},
		{lo: "10.0.0.0", hi: "10.0.2.255", avoid: true, want: "10.0.0.1-10.0.0.254 10.0.1.1-10.0.1.254 10.0.2.1-10.0.2.254", n: 762},
		{lo: "255.255.255.250", hi: "255.255.255.255", avoid: true, want: "255.255.255.250-255.255.255.254", n: 5},
		{lo: "0.0.0.0", hi: "0.0.0.1", avoid: true, want: "0.0.0.1", n: 1},
		// avoidBuggyIPs is about IPv4 only.
		{lo: "fd00::", hi: "fd00::ff", avoid: true, want: "fd00::-fd00::ff", n: 256},
		{lo: "fd00::", hi: "fd00::ffff:ffff:ffff:ffff", want: "fd00::-fd00::ffff:ffff:ffff:ffff", n: 1<<63 - 1},
		// Held addresses: at the ends, adjacent, before and after the range.
		{lo: "10.0.0.1", hi: "10.0.0.9", held: "10.0.0.0,10.0.0.1,10.0.0.4,10.0.0.5,10.0.0.9,10.0.0.10,10.0.0.11", want: "10.0.0.2-10.0.0.3 10.0.0.6-10.0.0.8", n: 9, left: 2},
		{lo: "10.0.0.1", hi: "10.0.0.2", held: "10.0.0.1,10.0.0.2", want: "", n: 2},
		{lo: "10.0.0.254", hi: "10.0.1.2", avoid: true, held: "10.0.0.255,10.0.1.0,10.0.1.2", want: "10.0.0.254 10.0.1.1", n: 3},
		{lo: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd", hi: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", held: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", n: 3},
	} {
		t.Run(fmt.Sprintf("%s-%s/%v/%s", tc.lo, tc.hi, tc.avoid, tc.held), func(t *testing.T) {
			lo := netip.MustParseAddr(tc.lo)
			f := newFreeSet(lo.Is4())
			var held []u128
			for _, ip := range addrs(tc.held) {
				held = append(held, toU(ip))
			}
			n := f.fill(lo, netip.MustParseAddr(tc.hi), tc.avoid, &held)
			if got := dumpFree(f); got != tc.want || n != tc.n || len(held) != tc.left {
				t.Errorf("got %q (%d, %d held left), want %q (%d, %d)", got, n, len(held), tc.want, tc.n, tc.left)
			}
		})
	}
}

func TestFreeSetTakePut(t *testing.T) {
	type op struct {
		take bool // else put
		ip   string
		ok   bool // take: was free
		want string
	}
	take := func(ip string, ok bool, want string) op { return op{true, ip, ok, want} }
	put := func(ip, want string) op { return op{false, ip, false, want} }
	for _, tc := range []struct {
		name   string
		lo, hi string
		ops    []op
	}{{
		name: "split and merge",
		lo:   "10.0.0.0", hi: "10.0.0.9",
		ops: []op{
			take("10.0.0.0", true, "10.0.0.1-10.0.0.9"),
			take("10.0.0.0", false, "10.0.0.1-10.0.0.9"),
			take("10.0.0.5", true, "10.0.0.1-10.0.0.4 10.0.0.6-10.0.0.9"),
			take("10.0.0.9", true, "10.0.0.1-10.0.0.4 10.0.0.6-10.0.0.8"),
			take("10.0.0.7", true, "10.0.0.1-10.0.0.4 10.0.0.6 10.0.0.8"),
			take("10.0.0.6", true, "10.0.0.1-10.0.0.4 10.0.0.8"),
			take("10.0.0.8", true, "10.0.0.1-10.0.0.4"),
			take("10.0.0.10", false, "10.0.0.1-10.0.0.4"),
			put("10.0.0.7", "10.0.0.1-10.0.0.4 10.0.0.7"),
			put("10.0.0.5", "10.0.0.1-10.0.0.5 10.0.0.7"),
			put("10.0.0.8", "10.0.0.1-10.0.0.5 10.0.0.7-10.0.0.8"),
			put("10.0.0.6", "10.0.0.1-10.0.0.8"),
			put("10.0.0.0", "10.0.0.0-10.0.0.8"),
			put("10.0.0.9", "10.0.0.0-10.0.0.9"),
		},
	}, {
		name: "ends of the address space",
		lo:   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", hi: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
		ops: []op{
			take("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
			take("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", true, ""),
			put("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
			put("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
		},
	}, {
		name: "zero address",
		lo:   "0.0.0.0", hi: "0.0.0.1",
		ops: []op{
			take("0.0.0.0", true, "0.0.0.1"),
			take("0.0.0.1", true, ""),
			put("0.0.0.0", "0.0.0.0"),
			put("0.0.0.1", "0.0.0.0-0.0.0.1"),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFreeSet(netip.MustParseAddr(tc.lo).Is4())
			var held []u128
			f.fill(netip.MustParseAddr(tc.lo), netip.MustParseAddr(tc.hi), false, &held)
			for i, o := range tc.ops {
				ip := netip.MustParseAddr(o.ip)
				if o.take {
					if ok := f.take(ip); ok != o.ok {
						t.Errorf("op %d: take(%s) = %v", i, ip, ok)
					}
				} else {
					f.put(ip)
				}
				if got := dumpFree(f); got != o.want {
					t.Errorf("op %d: %q, want %q", i, got, o.want)
				}
				if lo, ok := f.lowest(); ok != (o.want != "") || (ok && !strings.HasPrefix(o.want, lo.String())) {
					t.Errorf("op %d: lowest() = %s %v", i, lo, ok)
				}
			}
		})
	}
}
