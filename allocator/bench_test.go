package allocator

import (
	"fmt"
	"math/rand"
	"net/netip"
	"testing"
)

// benchHeld returns n distinct random addresses of 10.0.0.0/16, so that the
// free intervals are as fragmented as a long-running cluster makes them.
func benchHeld(n int) []netip.Addr {
	rng := rand.New(rand.NewSource(1))
	out := make([]netip.Addr, n)
	for i, v := range rng.Perm(1 << 16)[:n] {
		out[i] = netip.AddrFrom4([4]byte{10, 0, byte(v >> 8), byte(v)})
	}
	return out
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("ns%d/svc%d", i%100, i)
	}
	return keys
}

// BenchmarkAllocate allocates one new Service and releases it again, with
// used addresses of a /16 already held at random.
func BenchmarkAllocate(b *testing.B) {
	for _, used := range []int{10, 10000, 60000} {
		b.Run(fmt.Sprintf("used=%d", used), func(b *testing.B) {
			a := newWith(b, pool("a", "10.0.0.0/16"))
			keys := benchKeys(used)
			for i, ip := range benchHeld(used) {
				if _, err := a.Allocate(svc(keys[i], want(ip.String()))); err != nil {
					b.Fatal(err)
				}
			}
			req := svc("bench/new", shared("", "80/TCP"))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := a.Allocate(req); err != nil {
					b.Fatal(err)
				}
				a.Release(req.Key)
			}
		})
	}
}

// BenchmarkAllocateShared allocates a Service that shares an address under
// a sharing key, among 60,000 Services sharing 1,000 addresses.
func BenchmarkAllocateShared(b *testing.B) {
	const used, teams = 60000, 1000
	a := newWith(b, pool("a", "10.0.0.0/16"))
	keys := benchKeys(used)
	for i, k := range keys {
		r := svc(k, shared(fmt.Sprintf("team-%d", i%teams), fmt.Sprintf("%d/TCP", 1000+i/teams)))
		if _, err := a.Allocate(r); err != nil {
			b.Fatal(err)
		}
	}
	req := svc("bench/new", shared("team-7", "9999/TCP"))
	want := a.Holding(keys[7])[0]
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		res, err := a.Allocate(req)
		if err != nil || res.IPs[0] != want {
			b.Fatal(res, err)
		}
		a.Release(req.Key)
	}
}

// BenchmarkRestore restores one more Service, at a random free address,
// into an Allocator that holds 60,000 (as at controller start-up), and
// releases it again.
func BenchmarkRestore(b *testing.B) {
	const n = 60000
	a := newWith(b, pool("a", "10.0.0.0/16"))
	keys := benchKeys(n)
	held := benchHeld(n + 1)
	for i, k := range keys {
		if err := a.Restore(svc(k, shared("", "80/TCP")), held[i:i+1]); err != nil {
			b.Fatal(err)
		}
	}
	req, ips := svc("bench/new", shared("", "80/TCP")), held[n:]
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := a.Restore(req, ips); err != nil {
			b.Fatal(err)
		}
		a.Release(req.Key)
	}
}

// BenchmarkSetPools rebuilds the free intervals of a /16 and re-marks 60,000
// held addresses.
func BenchmarkSetPools(b *testing.B) {
	const n = 60000
	ps := mkPools(pool("a", "10.0.0.0/16"))
	a := New()
	a.SetPools(ps)
	keys := benchKeys(n)
	for i, ip := range benchHeld(n) {
		if err := a.Restore(svc(keys[i]), []netip.Addr{ip}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		a.SetPools(ps)
	}
}
