package election

import (
	"net/netip"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func TestKeep(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.201")
	r := Rank(ip, eligible("node1", "node2", "node3"))
	first, second, third := r[0], r[1], r[2]
	claim := func(c []Candidate, names ...string) []Candidate {
		for i := range c {
			for _, n := range names {
				if c[i].Name == n {
					c[i].Claimed = true
				}
			}
		}
		return c
	}
	set := func(c []Candidate, name string, f func(*Candidate)) []Candidate {
		for i := range c {
			if c[i].Name == name {
				f(&c[i])
			}
		}
		return c
	}
	for _, tc := range []struct {
		name               string
		candidates         []Candidate
		announcer, standby string // "" announcer: none
	}{
		{"nobody claims: by score", eligible("node1", "node2", "node3"), first, second},
		{"the natural winner claims", claim(eligible("node1", "node2", "node3"), first), first, second},
		// The original winner is back; the node that took over keeps it, and
		// the returned winner is next in line.
		{"the taker keeps it", claim(eligible("node1", "node2", "node3"), second), second, first},
		{"the lowest-ranked taker keeps it", claim(eligible("node1", "node2", "node3"), third), third, first},
		// A healed partition: both sides announced; the score decides.
		{"two claimants: higher score", claim(eligible("node1", "node2", "node3"), second, third), second, first},
		{"two claimants with the winner", claim(eligible("node1", "node2", "node3"), first, third), first, second},
		{"a dead claimant does not count", set(claim(eligible("node1", "node2", "node3"), third), third, func(c *Candidate) { c.Eligible, c.Reason = false, NotAlive }), first, second},
		{"an ineligible claimant does not count", set(claim(eligible("node1", "node2", "node3"), second), second, func(c *Candidate) { c.Eligible, c.Reason = false, NoCarrier }), first, third},
		{"unknown claims of an eligible node: by score", set(claim(eligible("node1", "node2", "node3"), third), second, func(c *Candidate) { c.ClaimsUnknown = true }), first, second},
		{"unknown claims of an ineligible node are ignored", set(set(claim(eligible("node1", "node2", "node3"), third), second, func(c *Candidate) { c.ClaimsUnknown = true }), second, func(c *Candidate) { c.Eligible = false }), third, first},
		{"single claimant, no standby", claim(eligible(second), second), second, ""},
		{"none eligible", []Candidate{{Name: "node1", Claimed: true}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, s, ok := Keep(ip, tc.candidates)
			if a != tc.announcer || s != tc.standby || ok != (tc.announcer != "") {
				t.Fatalf("Keep = %q, %q, %v; want %q, %q", a, s, ok, tc.announcer, tc.standby)
			}
		})
	}
}

// Every speaker computes Keep from the same claims: whatever subset claims,
// the answer does not depend on the order of the candidates, and the
// announcer is a claimant when one is eligible.
func TestKeepAgreesAcrossOrders(t *testing.T) {
	c := eligible(nodeNames(6)...)
	for _, ip := range addrs(100, true) {
		for mask := range 1 << len(c) {
			for i := range c {
				c[i].Claimed = mask&(1<<i) != 0
			}
			a, s, _ := Keep(ip, c)
			rev := make([]Candidate, len(c))
			for i := range c {
				rev[len(c)-1-i] = c[i]
			}
			if a2, s2, _ := Keep(ip, rev); a2 != a || s2 != s {
				t.Fatalf("%s mask %b: %s/%s vs reversed %s/%s", ip, mask, a, s, a2, s2)
			}
			if mask != 0 {
				claimed := false
				for i := range c {
					claimed = claimed || (c[i].Name == a && c[i].Claimed)
				}
				if !claimed {
					t.Fatalf("%s mask %b: %s announces without claiming", ip, mask, a)
				}
			}
		}
	}
}

func TestNoCarrier(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.201")
	lan := []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	other := []netip.Prefix{netip.MustParsePrefix("198.18.253.0/24")}
	all := func(labels.Set) Interfaces { return Interfaces{All: true} }
	named := func(names ...string) func(labels.Set) Interfaces {
		return func(labels.Set) Interfaces { return Interfaces{Names: names} }
	}
	for _, tc := range []struct {
		name string
		down []Link
		ifs  func(labels.Set) Interfaces
		want Reason
	}{
		{"all links up", nil, all, ""},
		{"on-link interface down", []Link{{Name: "eth0", Prefixes: lan}}, all, NoCarrier},
		{"another subnet's interface down", []Link{{Name: "eth1", Prefixes: other}}, all, ""},
		{"down interface without addresses, on-link", []Link{{Name: "eth0"}}, all, ""},
		{"the named interface down", []Link{{Name: "eth0"}}, named("eth0"), NoCarrier},
		{"every named interface down", []Link{{Name: "eth0"}, {Name: "eth2"}}, named("eth0", "eth2"), NoCarrier},
		{"one of two named interfaces down", []Link{{Name: "eth0"}}, named("eth0", "eth2"), ""},
		{"unnamed interface down", []Link{{Name: "eth1", Prefixes: lan}}, named("eth0"), ""},
		{"no interface function: not checked", []Link{{Name: "eth0", Prefixes: lan}}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := Node{Name: "a", Alive: true, NoCarrier: tc.down}
			got := Candidates([]Node{n}, nil, Service{IP: ip, Interfaces: tc.ifs})
			if got[0].Reason != tc.want || got[0].Eligible != (tc.want == "") {
				t.Fatalf("got %+v, want reason %q", got[0], tc.want)
			}
		})
	}
	// A dead node is reported dead, not without carrier.
	got := Candidates([]Node{{Name: "a", NoCarrier: []Link{{Name: "eth0", Prefixes: lan}}}}, nil, Service{IP: ip, Interfaces: all})
	if got[0].Reason != NotAlive {
		t.Fatalf("got %q, want %q", got[0].Reason, NotAlive)
	}
}

func TestCandidatesClaims(t *testing.T) {
	ip := netip.MustParseAddr("2001:db8:100::201")
	nodes := []Node{
		{Name: "a", Alive: true, Claims: []netip.Addr{ip}},
		{Name: "b", Alive: true, Claims: []netip.Addr{netip.MustParseAddr("2001:db8:100::202")}},
		{Name: "c", Alive: true, ClaimsUnknown: true},
	}
	got := Candidates(nodes, nil, Service{IP: ip})
	if !got[0].Claimed || got[1].Claimed || got[2].Claimed || !got[2].ClaimsUnknown || got[0].ClaimsUnknown {
		t.Fatalf("got %+v", got)
	}
}
