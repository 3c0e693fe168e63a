package config

import (
	"math"
	"net/netip"
	"strings"
	"testing"
)

func rng(first, last string) Range {
	return Range{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}
}

func TestParseBlock(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Range
		err  string // substring of the error; "" for success
		str  string // Range.String of the result
	}{
		{in: "198.51.100.0/24", want: rng("198.51.100.0", "198.51.100.255"), str: "198.51.100.0/24"},
		{in: " 198.51.100.7/32 ", want: rng("198.51.100.7", "198.51.100.7"), str: "198.51.100.7/32"},
		{in: "0.0.0.0/0", want: rng("0.0.0.0", "255.255.255.255"), str: "0.0.0.0/0"},
		{in: "198.51.100.10-198.51.100.20", want: rng("198.51.100.10", "198.51.100.20"), str: "198.51.100.10-198.51.100.20"},
		{in: "198.51.100.10 - 198.51.100.10", want: rng("198.51.100.10", "198.51.100.10"), str: "198.51.100.10/32"},
		// A range that is exactly a CIDR prints as one.
		{in: "198.51.100.0-198.51.100.127", want: rng("198.51.100.0", "198.51.100.127"), str: "198.51.100.0/25"},
		{in: "2001:db8::/64", want: rng("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"), str: "2001:db8::/64"},
		{in: "2001:db8::1-2001:db8::ff", want: rng("2001:db8::1", "2001:db8::ff"), str: "2001:db8::1-2001:db8::ff"},
		{in: "::/0", err: "IPv4-mapped"},
		{in: "::/80", err: "IPv4-mapped"},
		{in: "::fffe:ffff:ffff-::1:0:0:0", err: "IPv4-mapped"},
		{in: "2001:db8::/32", want: rng("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), str: "2001:db8::/32"},
		{in: "198.51.100.1/24", err: "host bits set; write 198.51.100.0/24"},
		{in: "198.51.100.20-198.51.100.10", err: "first address after its last"},
		{in: "198.51.100.1-2001:db8::1", err: "mixes IPv4 and IPv6"},
		{in: "::ffff:198.51.100.0/120", err: "plain IPv4 or IPv6"},
		{in: "::ffff:198.51.100.1-::ffff:198.51.100.2", err: "plain IPv4 or IPv6"},
		{in: "fe80::1%eth0/128", err: "neither a CIDR nor a range"},
		{in: "198.51.100.1-", err: "range"},
		{in: "198.51.100.0/33", err: "neither a CIDR nor a range"},
		{in: "198.51.100.1", err: "neither a CIDR nor a range"},
		{in: "", err: "neither a CIDR nor a range"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBlock(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseBlock(%q) = %v, %v; want error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseBlock(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.str {
				t.Errorf("String() = %q, want %q", got.String(), tc.str)
			}
		})
	}
}

func TestRangeArithmetic(t *testing.T) {
	for _, tc := range []struct {
		r    Range
		size int64
	}{
		{rng("10.0.0.0", "10.0.0.0"), 1},
		{rng("10.0.0.0", "10.0.255.255"), 65536},
		{rng("0.0.0.0", "255.255.255.255"), 1 << 32},
		{rng("2001:db8::", "2001:db8::ffff:ffff:ffff:fffe"), math.MaxInt64},
		{rng("2001:db8::", "2001:db8::7fff:ffff:ffff:fffd"), math.MaxInt64 - 1},
		{rng("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), math.MaxInt64},
	} {
		if got := tc.r.Size(); got != tc.size {
			t.Errorf("%v.Size() = %d, want %d", tc.r, got, tc.size)
		}
	}
	for p, last := range map[string]string{
		"10.0.0.0/8":     "10.255.255.255",
		"10.1.2.3/32":    "10.1.2.3",
		"10.1.2.3/24":    "10.1.2.255",
		"2001:db8::/126": "2001:db8::3",
		"::/0":           "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
	} {
		if got := LastOf(netip.MustParsePrefix(p)); got.String() != last {
			t.Errorf("LastOf(%s) = %s, want %s", p, got, last)
		}
	}
	a, b := rng("10.0.0.0", "10.0.0.9"), rng("10.0.0.9", "10.0.0.20")
	if !a.Overlaps(b) || a.Overlaps(rng("10.0.0.10", "10.0.0.10")) || a.Overlaps(rng("::", "::ffff")) {
		t.Error("Overlaps is wrong")
	}
	if !a.Contains(netip.MustParseAddr("10.0.0.9")) || a.Contains(netip.MustParseAddr("::ffff:10.0.0.9")) {
		t.Error("Contains is wrong")
	}
}

func TestMergeAndSubtract(t *testing.T) {
	merged := Merge([]Range{
		rng("2001:db8::10", "2001:db8::1f"),
		rng("10.0.0.10", "10.0.0.19"),
		rng("10.0.0.0", "10.0.0.9"), // touches the next: joined
		rng("10.0.0.15", "10.0.0.30"),
		rng("10.0.1.0", "10.0.1.0"),
		rng("2001:db8::", "2001:db8::f"),
	})
	if got := join(merged); got != "10.0.0.0-10.0.0.30 10.0.1.0/32 2001:db8::/123" {
		t.Errorf("Merge = %s", got)
	}
	for _, tc := range []struct {
		r    Range
		cut  []Range
		want string
	}{
		{rng("10.0.0.0", "10.0.0.255"), nil, "10.0.0.0/24"},
		{rng("10.0.0.0", "10.0.0.255"), []Range{rng("10.0.0.0", "10.0.0.127")}, "10.0.0.128/25"},
		{rng("10.0.0.0", "10.0.0.255"), []Range{rng("10.0.0.10", "10.0.0.19"), rng("10.0.0.100", "10.0.1.5")}, "10.0.0.0-10.0.0.9 10.0.0.20-10.0.0.99"},
		{rng("10.0.0.0", "10.0.0.255"), []Range{rng("10.0.0.0", "10.0.0.255")}, ""},
		{rng("10.0.0.0", "10.0.0.255"), []Range{rng("::", "::ffff")}, "10.0.0.0/24"},
	} {
		if got := join(Subtract(tc.r, tc.cut)); got != tc.want {
			t.Errorf("Subtract(%v, %v) = %q, want %q", tc.r, tc.cut, got, tc.want)
		}
	}
}

func join(rs []Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, " ")
}
