package allocator

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"

	"github.com/google/btree"
)

// u128 is an address of the set's family as a number. Intervals hold no
// netip.Addr: its internal pointer would make every B-tree node a GC-scanned,
// write-barriered object, and comparing two words is cheaper.
type u128 struct{ hi, lo uint64 }

func (u u128) less(v u128) bool { return u.hi < v.hi || (u.hi == v.hi && u.lo < v.lo) }

func (u u128) cmp(v u128) int {
	switch {
	case u.less(v):
		return -1
	case v.less(u):
		return 1
	}
	return 0
}

// next and prev wrap around at the ends of the space; callers only compare
// their result with addresses beyond the end, which cannot exist.
func (u u128) next() u128 {
	lo, carry := bits.Add64(u.lo, 1, 0)
	return u128{u.hi + carry, lo}
}

func (u u128) prev() u128 {
	lo, borrow := bits.Sub64(u.lo, 1, 0)
	return u128{u.hi - borrow, lo}
}

// size returns v-u+1 for u <= v, saturating at MaxInt64.
func size(u, v u128) int64 {
	lo, borrow := bits.Sub64(v.lo, u.lo, 0)
	if v.hi-u.hi-borrow != 0 || lo >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo) + 1
}

func toU(a netip.Addr) u128 {
	b := a.As16()
	return u128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// interval is an inclusive run of free addresses.
type interval struct{ lo, hi u128 }

// freeSet holds the free addresses of one pool and family as disjoint,
// non-adjacent intervals ordered by their first address, so that the lowest
// free address, taking one address and giving one back all cost O(log n) in
// the number of intervals, however large the pool.
type freeSet struct {
	t   *btree.BTreeG[interval]
	is4 bool
}

func newFreeSet(is4 bool) freeSet {
	return freeSet{t: btree.NewG(32, func(a, b interval) bool { return a.lo.less(b.lo) }), is4: is4}
}

func (f freeSet) addr(u u128) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], u.hi)
	binary.BigEndian.PutUint64(b[8:], u.lo)
	a := netip.AddrFrom16(b)
	if f.is4 {
		return a.Unmap()
	}
	return a
}

// fill adds the addresses of lo..hi that the pool may hand out, except
// those in held, and returns how many the pool may hand out (saturating at
// MaxInt64), held or not. With avoidBuggy, IPv4 addresses ending in .0 or
// .255 are left out, which splits the range into one interval per /24.
// held is sorted; fill consumes its addresses up to hi. The caller fills
// ranges in ascending order that neither overlap nor touch.
func (f freeSet) fill(lo, hi netip.Addr, avoidBuggy bool, held *[]u128) int64 {
	if !avoidBuggy || !f.is4 {
		return f.fillOne(toU(lo), toU(hi), held)
	}
	var n int64
	last := u32(hi)
	for start := u32(lo); ; {
		end := min(start|0xff, last)
		s, e := start, end
		if s&0xff == 0 {
			s++
		}
		if e&0xff == 0xff {
			e--
		}
		if s <= e {
			n += f.fillOne(toU(addr4(s)), toU(addr4(e)), held)
		}
		if end == last {
			return n
		}
		start = end + 1
	}
}

// fillOne adds lo..hi minus held and returns hi-lo+1.
func (f freeSet) fillOne(lo, hi u128, held *[]u128) int64 {
	n := size(lo, hi)
	h := *held
	for len(h) > 0 && !hi.less(h[0]) {
		if u := h[0]; !u.less(lo) {
			if u != lo {
				f.t.ReplaceOrInsert(interval{lo, u.prev()})
			}
			if u == hi {
				*held = h[1:]
				return n
			}
			lo = u.next()
		}
		h = h[1:]
	}
	*held = h
	f.t.ReplaceOrInsert(interval{lo, hi})
	return n
}

// lowest returns the lowest free address.
func (f freeSet) lowest() (netip.Addr, bool) {
	iv, ok := f.t.Min()
	if !ok {
		return netip.Addr{}, false
	}
	return f.addr(iv.lo), true
}

// containing returns the interval that holds u.
func (f freeSet) containing(u u128) (interval, bool) {
	var found interval
	var ok bool
	f.t.DescendLessOrEqual(interval{lo: u}, func(iv interval) bool {
		found, ok = iv, !iv.hi.less(u)
		return false
	})
	return found, ok
}

// take removes ip from the set, splitting its interval, and reports whether
// ip was free.
func (f freeSet) take(ip netip.Addr) bool {
	u := toU(ip)
	iv, ok := f.containing(u)
	if !ok {
		return false
	}
	if iv.lo == u {
		f.t.Delete(iv)
	} else {
		// Same lo: replaces iv in place.
		f.t.ReplaceOrInsert(interval{iv.lo, u.prev()})
	}
	if u != iv.hi {
		f.t.ReplaceOrInsert(interval{u.next(), iv.hi})
	}
	return true
}

// put gives ip back, merging it with the intervals just below and above. It
// must not be in the set already.
func (f freeSet) put(ip netip.Addr) {
	u := toU(ip)
	var below, above interval
	var hasBelow, hasAbove bool
	f.t.DescendLessOrEqual(interval{lo: u}, func(iv interval) bool {
		below, hasBelow = iv, iv.hi.next() == u
		return false
	})
	f.t.AscendGreaterOrEqual(interval{lo: u}, func(iv interval) bool {
		above, hasAbove = iv, u.next() == iv.lo
		return false
	})
	switch {
	case hasBelow && hasAbove:
		f.t.Delete(above)
		f.t.ReplaceOrInsert(interval{below.lo, above.hi})
	case hasBelow:
		f.t.ReplaceOrInsert(interval{below.lo, u})
	case hasAbove:
		f.t.Delete(above)
		f.t.ReplaceOrInsert(interval{u, above.hi})
	default:
		f.t.ReplaceOrInsert(interval{u, u})
	}
}

// addSat adds two non-negative counts, saturating at MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr4(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
