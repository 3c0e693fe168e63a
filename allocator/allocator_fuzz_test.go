package allocator

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// opReader turns fuzz bytes into choices; past the end it yields zeros.
type opReader struct{ b []byte }

func (r *opReader) next() int {
	if len(r.b) == 0 {
		return 0
	}
	v := int(r.b[0])
	r.b = r.b[1:]
	return v
}

func (r *opReader) n(k int) int { return r.next() % k }

// fuzzPools builds 1-3 pools over a small address space (10.0.0.0/24 and
// fd00::/120) so that overlaps, avoidBuggyIPs and exhaustion are common.
func fuzzPools(r *opReader) *config.Pools {
	var ps []v1alpha1.IPPool
	for i := range 1 + r.n(3) {
		p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{
			Name:              fmt.Sprintf("p%d", i),
			CreationTimestamp: metav1.Unix(int64(r.n(3)), 0),
		}}
		for range 1 + r.n(2) {
			first, size := r.next(), r.n(12)
			last := min(first+size, 255)
			if r.n(3) == 0 {
				p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(fmt.Sprintf("fd00::%x-fd00::%x", first, last)))
			} else {
				p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(fmt.Sprintf("10.0.0.%d-10.0.0.%d", first, last)))
			}
		}
		flags := r.next()
		p.Spec.AvoidBuggyIPs = flags&1 != 0
		if flags&2 != 0 {
			p.Spec.AutoAssign = new(false)
		}
		if flags&4 != 0 {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{"x"}}
		}
		ps = append(ps, p)
	}
	return config.ParsePools(ps)
}

func fuzzRequest(r *opReader) Request {
	ns := []string{"x", "y"}[r.n(2)]
	famChoices := [][]config.Family{{config.IPv4}, {config.IPv6}, {config.IPv4, config.IPv6}, {config.IPv6, config.IPv4}}
	req := Request{
		Key:        fmt.Sprintf("%s/s%d", ns, r.n(8)),
		Namespace:  ns,
		Families:   famChoices[r.n(4)],
		RequireAll: r.n(2) == 0,
	}
	if v := r.n(8); v < 3 {
		req.Pool = fmt.Sprintf("p%d", v)
	}
	if r.n(3) == 0 {
		last := r.next()
		if r.n(2) == 0 {
			req.IPs = []netip.Addr{netip.AddrFrom4([4]byte{10, 0, 0, byte(last)})}
		} else {
			req.IPs = []netip.Addr{netip.AddrFrom16([16]byte{0: 0xfd, 15: byte(last)})}
		}
	}
	if v := r.n(3); v > 0 {
		req.SharingKey = fmt.Sprintf("k%d", v)
	}
	for range 1 + r.n(2) {
		req.Ports = append(req.Ports, Port{Protocol: []string{"TCP", "UDP"}[r.n(2)], Port: int32(80 + r.n(3))})
	}
	if r.n(4) == 0 {
		req.Local, req.Selector = true, []string{"app=a", "app=b"}[r.n(2)]
	}
	return req
}

// FuzzAllocator runs an operation sequence decoded from the input (allocate,
// release, restore, replace pools) and checks after every step: no address
// is held by two Services that may not share it, every address a Service
// obtained (other than one kept as stale) lies in a pool that may give it,
// and per-pool used/free counts agree with the holdings (checkInvariants).
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0})
	f.Add([]byte("\x02\x01\xf8\x0b\x01\x03\x00\x00\x00\x02\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 4096 {
			return
		}
		r := &opReader{b: data}
		a := New()
		a.SetPools(fuzzPools(r))
		for step := 0; len(r.b) > 0 && step < 200; step++ {
			switch op := r.n(8); {
			case op < 4:
				req := fuzzRequest(r)
				old := a.Holding(req.Key)
				before := dumpState(a) + dumpStats(a.Stats())
				res, err := a.Allocate(req)
				if err != nil {
					if ReasonOf(err) == "" {
						t.Fatalf("step %d: untyped error %v", step, err)
					}
					if after := dumpState(a) + dumpStats(a.Stats()); after != before {
						t.Fatalf("step %d: failed Allocate changed the state", step)
					}
					break
				}
				checkAllocated(t, a, step, req, old, res)
				for i, ip := range res.IPs {
					if slices.Contains(res.Stale, ip) {
						continue
					}
					if res.Pools[i] == "" || a.PoolOf(ip) != res.Pools[i] || a.slot(ip) == nil {
						t.Fatalf("step %d: %s handed out outside a pool that may give it (pool %q)", step, ip, res.Pools[i])
					}
				}
			case op < 6:
				key := fmt.Sprintf("%s/s%d", []string{"x", "y"}[r.n(2)], r.n(8))
				a.Release(key)
				if len(a.Holding(key)) != 0 {
					t.Fatalf("step %d: %s holds after Release", step, key)
				}
			case op < 7:
				req := fuzzRequest(r)
				ips := req.IPs
				req.IPs = nil
				if err := a.Restore(req, ips); err == nil && !slices.Equal(a.Holding(req.Key), ips) {
					t.Fatalf("step %d: Restore(%v) holds %v", step, ips, a.Holding(req.Key))
				}
			default:
				before := dumpState(a)
				a.SetPools(fuzzPools(r))
				if dumpState(a) != before {
					t.Fatalf("step %d: SetPools changed holdings", step)
				}
			}
			checkInvariants(t, a)
		}
	})
}
