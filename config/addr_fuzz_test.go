package config

import (
	"testing"
)

// FuzzParseBlock checks that ParseBlock never panics and that whatever it
// accepts is a well-formed range that survives a round trip through String.
func FuzzParseBlock(f *testing.F) {
	for _, s := range []string{
		"198.51.100.0/24",
		"198.51.100.10-198.51.100.20",
		" 198.51.100.10 - 198.51.100.10 ",
		"2001:db8::/64",
		"2001:db8::1-2001:db8::ff",
		"0.0.0.0/0",
		"::/0",
		"255.255.255.255/32",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
		"198.51.100.1/24",
		"198.51.100.20-198.51.100.10",
		"198.51.100.1-2001:db8::1",
		"::ffff:198.51.100.1/128",
		"fe80::1%eth0/64",
		"fe80::1%eth0-fe80::2",
		"1.2.3.4-",
		"-",
		"1.2.3.4/33",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseBlock(s)
		if err != nil {
			return
		}
		if !r.First.IsValid() || !r.Last.IsValid() {
			t.Fatalf("ParseBlock(%q) = %v: invalid address", s, r)
		}
		if r.First.BitLen() != r.Last.BitLen() {
			t.Fatalf("ParseBlock(%q) = %v: mixed families", s, r)
		}
		if r.Last.Less(r.First) {
			t.Fatalf("ParseBlock(%q) = %v: First after Last", s, r)
		}
		if r.First.Zone() != "" || r.Last.Zone() != "" || r.First.Is4In6() || r.Last.Is4In6() {
			t.Fatalf("ParseBlock(%q) = %v: not plain notation", s, r)
		}
		back, err := ParseBlock(r.String())
		if err != nil || back != r {
			t.Fatalf("ParseBlock(%q) = %v, but ParseBlock(%q) = %v, %v", s, r, r.String(), back, err)
		}
	})
}
