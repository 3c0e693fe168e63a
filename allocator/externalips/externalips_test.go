package externalips

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

func TestRangePrefixes(t *testing.T) {
	for _, tc := range []struct{ first, last, want string }{
		{"198.51.100.0", "198.51.100.255", "198.51.100.0/24"},
		{"198.51.100.200", "198.51.100.250", "198.51.100.200/29,198.51.100.208/28,198.51.100.224/28,198.51.100.240/29,198.51.100.248/31,198.51.100.250/32"},
		{"198.51.100.7", "198.51.100.7", "198.51.100.7/32"},
		{"0.0.0.0", "255.255.255.255", "0.0.0.0/0"},
		{"0.0.0.1", "0.0.0.2", "0.0.0.1/32,0.0.0.2/32"},
		{"2001:db8:100::200", "2001:db8:100::250", "2001:db8:100::200/122,2001:db8:100::240/124,2001:db8:100::250/128"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"},
		{"2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64"},
		{"198.51.100.9", "198.51.100.8", ""},
		{"198.51.100.9", "2001:db8::1", ""},
	} {
		got := join(RangePrefixes(netip.MustParseAddr(tc.first), netip.MustParseAddr(tc.last)))
		if got != tc.want {
			t.Errorf("%s-%s: got %s, want %s", tc.first, tc.last, got, tc.want)
		}
	}
}

// Every address of a random range is covered by exactly one prefix, and
// nothing outside it is.
func TestRangePrefixesExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		a, b := rng.Uint32N(1<<12), rng.Uint32N(1<<12)
		if b < a {
			a, b = b, a
		}
		base := uint32(198<<24 | 18<<16)
		first, last := v4(base+a), v4(base+b)
		ps := RangePrefixes(first, last)
		for x := base + a - min(a, 3); x <= base+b+3; x++ {
			n := 0
			for _, p := range ps {
				if p.Contains(v4(x)) {
					n++
				}
			}
			in := x >= base+a && x <= base+b
			if (in && n != 1) || (!in && n != 0) {
				t.Fatalf("%s-%s: %s covered %d times by %s", first, last, v4(x), n, join(ps))
			}
		}
	}
}

func v4(x uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
}

func join(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func TestData(t *testing.T) {
	pool := func(name string, allow bool, created int, addrs ...string) v1alpha1.IPPool {
		p := v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.Unix(int64(created), 0)}}
		p.Spec.AllowExternalIPs = allow
		for _, a := range addrs {
			p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(a))
		}
		return p
	}
	ps := config.ParsePools([]v1alpha1.IPPool{
		pool("ext", true, 2, "198.51.100.0/24", "2001:db8:100::/120"),
		// older, not allowing: its overlap with ext stays forbidden
		pool("lan", false, 1, "198.51.100.200-198.51.100.250"),
		pool("more", true, 3, "203.0.113.10-203.0.113.11"),
		pool("bad", true, 4, "not-a-cidr"),
	})
	cidrs, pools := Data(ps)
	want := "198.51.100.0/25,198.51.100.128/26,198.51.100.192/29,198.51.100.251/32,198.51.100.252/30,203.0.113.10/31,2001:db8:100::/120"
	if got := strings.Join(cidrs, ","); got != want {
		t.Errorf("cidrs = %s\nwant    %s", got, want)
	}
	if got := strings.Join(pools, ","); got != "ext,more" {
		t.Errorf("pools = %s", got)
	}
	if cidrs, pools := Data(config.ParsePools(nil)); cidrs != nil || pools != nil {
		t.Errorf("no pools: %v %v", cidrs, pools)
	}
}
