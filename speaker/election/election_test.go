package election

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func eligible(names ...string) []Candidate {
	out := make([]Candidate, len(names))
	for i, n := range names {
		out[i] = Candidate{Name: n, Eligible: true}
	}
	return out
}

func nodeNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node%d", i+1)
	}
	return out
}

// addrs returns n IPv4 addresses from 198.51.100.0 on, then n IPv6 ones from
// 2001:db8:100:: on, when v6.
func addrs(n int, v6 bool) []netip.Addr {
	a := netip.MustParseAddr("198.51.100.0")
	if v6 {
		a = netip.MustParseAddr("2001:db8:100::")
	}
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = a
		a = a.Next()
	}
	return out
}

// The score is a contract between speaker versions: pin it. The values were
// computed independently (Python) from the definition in doc.go.
func TestScoreIsStable(t *testing.T) {
	for _, tc := range []struct {
		ip, node string
		want     uint64
	}{
		{"198.51.100.201", "node1", 0xec822da49159fba5},
		{"198.51.100.201", "node2", 0x8ce5766e45217136},
		{"::ffff:198.51.100.201", "node1", 0xec822da49159fba5}, // IPv4-mapped == IPv4
		{"2001:db8:100::201", "node1", 0xc1b71ee5486d340d},
		{"2001:db8:100::201", "", 0x6d032dd50b0789e0},
	} {
		if got := Score(netip.MustParseAddr(tc.ip), tc.node); got != tc.want {
			t.Errorf("Score(%s, %q) = %#x, want %#x", tc.ip, tc.node, got, tc.want)
		}
	}
}

func TestAnnouncer(t *testing.T) {
	ip := netip.MustParseAddr("198.51.100.201")
	ranked := Rank(ip, eligible("node1", "node2", "node3"))
	first, second := ranked[0], ranked[1]
	for _, tc := range []struct {
		name       string
		candidates []Candidate
		want       string // "" means none
	}{
		{"no candidates", nil, ""},
		{"none eligible", []Candidate{{Name: "node1"}, {Name: "node2", Reason: NotAlive}}, ""},
		{"single eligible", []Candidate{{Name: "node1"}, {Name: "node2", Eligible: true}}, "node2"},
		{"highest score wins", eligible("node1", "node2", "node3"), first},
		{"order does not matter", eligible("node3", "node2", "node1"), first},
		{"runner-up takes over", slices.DeleteFunc(eligible("node1", "node2", "node3"), func(c Candidate) bool { return c.Name == first }), second},
		{"ineligible winner falls to runner-up", func() []Candidate {
			c := eligible("node1", "node2", "node3")
			for i := range c {
				c[i].Eligible = c[i].Name != first
			}
			return c
		}(), second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Announcer(ip, tc.candidates)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("Announcer = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// A duplicate of the winner marked ineligible must not hide the eligible
// entry: the caller may list a node twice.
func TestAnnouncerIgnoresIneligibleDuplicates(t *testing.T) {
	ip := netip.MustParseAddr("2001:db8:100::201")
	first := Rank(ip, eligible(nodeNames(3)...))[0]
	got, _ := Announcer(ip, append([]Candidate{{Name: first}}, eligible(nodeNames(3)...)...))
	if got != first {
		t.Fatalf("got %s, want %s", got, first)
	}
}

func TestStandbyAgreesWithRank(t *testing.T) {
	for n := 1; n <= 6; n++ {
		c := eligible(nodeNames(n)...)
		c = append(c, Candidate{Name: "zz-ineligible", Reason: NotAlive})
		for _, ip := range addrs(300, n%2 == 0) {
			r := Rank(ip, c)
			a, s, ok := Standby(ip, c)
			want := ""
			if len(r) > 1 {
				want = r[1]
			}
			if !ok || a != r[0] || s != want {
				t.Fatalf("%v over %d nodes: Standby = %q, %q, %v; Rank = %v", ip, n, a, s, ok, r)
			}
		}
	}
	if _, _, ok := Standby(netip.MustParseAddr("192.0.2.1"), nil); ok {
		t.Error("Standby with no candidates reported ok")
	}
}

func TestRankAgreesWithAnnouncer(t *testing.T) {
	c := eligible(nodeNames(7)...)
	c[3].Eligible = false
	for _, ip := range addrs(500, true) {
		r := Rank(ip, c)
		a, _ := Announcer(ip, c)
		if len(r) != 6 || r[0] != a || slices.Contains(r, c[3].Name) {
			t.Fatalf("%s: Rank %v, Announcer %s", ip, r, a)
		}
	}
}

// Each node gets its fair share of 10,000 addresses within ±10%.
func TestSpread(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, n := range []int{3, 5, 10} {
			for _, style := range []string{"node%d", "worker-%02d.example.com"} {
				t.Run(fmt.Sprintf("v6=%v/%d/%s", v6, n, style), func(t *testing.T) {
					var c []Candidate
					for i := range n {
						c = append(c, Candidate{Name: fmt.Sprintf(style, i+1), Eligible: true})
					}
					count := map[string]int{}
					const total = 10000
					for _, ip := range addrs(total, v6) {
						a, _ := Announcer(ip, c)
						count[a]++
					}
					fair := float64(total) / float64(n)
					for _, cand := range c {
						if got := float64(count[cand.Name]); got < 0.9*fair || got > 1.1*fair {
							t.Errorf("%s announces %v addresses, fair share %.0f: %v", cand.Name, got, fair, count)
						}
					}
				})
			}
		}
	}
}

// Removing a node moves only its addresses; adding one moves only addresses
// to it.
func TestStability(t *testing.T) {
	all := eligible(nodeNames(10)...)
	ips := append(addrs(5000, false), addrs(5000, true)...)
	before := make([]string, len(ips))
	for i, ip := range ips {
		before[i], _ = Announcer(ip, all)
	}
	for _, gone := range []string{"node1", "node5", "node10"} {
		t.Run("remove "+gone, func(t *testing.T) {
			rest := slices.DeleteFunc(slices.Clone(all), func(c Candidate) bool { return c.Name == gone })
			moved := 0
			for i, ip := range ips {
				after, _ := Announcer(ip, rest)
				switch {
				case before[i] == gone:
					moved++
				case after != before[i]:
					t.Fatalf("%s moved from %s to %s though %s went away", ip, before[i], after, gone)
				}
			}
			if moved == 0 {
				t.Fatal("the removed node announced nothing")
			}
		})
	}
	t.Run("add node11", func(t *testing.T) {
		more := append(slices.Clone(all), Candidate{Name: "node11", Eligible: true})
		moved := 0
		for i, ip := range ips {
			after, _ := Announcer(ip, more)
			if after != before[i] {
				if after != "node11" {
					t.Fatalf("%s moved from %s to %s", ip, before[i], after)
				}
				moved++
			}
		}
		// About 1/11 of the addresses.
		if fair := len(ips) / 11; moved < fair*9/10 || moved > fair*11/10 {
			t.Fatalf("%d addresses moved to the new node, want about %d", moved, fair)
		}
	})
}

func TestCandidates(t *testing.T) {
	edge := func(l labels.Set) bool { return l["role"] == "edge" }
	for _, tc := range []struct {
		name     string
		node     Node
		selected func(labels.Set) bool
		svc      Service
		want     Reason
	}{
		{"eligible", Node{Name: "a", Alive: true}, nil, Service{}, ""},
		{"selected by advertisement", Node{Name: "a", Alive: true, Labels: labels.Set{"role": "edge"}}, edge, Service{}, ""},
		{"not selected", Node{Name: "a", Alive: true, Labels: labels.Set{"role": "core"}}, edge, Service{}, NotSelected},
		{"excluded whatever the value", Node{Name: "a", Alive: true, Labels: labels.Set{ExcludeLabel: ""}}, nil, Service{}, Excluded},
		{"network unavailable", Node{Name: "a", Alive: true, NetworkUnavailable: true}, nil, Service{}, NetworkUnavailable},
		{"speaker dead", Node{Name: "a"}, nil, Service{}, NotAlive},
		{"local without endpoints", Node{Name: "a", Alive: true}, nil, Service{Local: true, ReadyEndpoints: map[string]int{"b": 2}}, NoLocalEndpoint},
		{"local with an endpoint", Node{Name: "a", Alive: true}, nil, Service{Local: true, ReadyEndpoints: map[string]int{"a": 1}}, ""},
		{"cluster ignores endpoints", Node{Name: "a", Alive: true}, nil, Service{ReadyEndpoints: map[string]int{}}, ""},
		{"first reason wins", Node{Name: "a", Labels: labels.Set{ExcludeLabel: "true"}, NetworkUnavailable: true}, nil, Service{Local: true}, Excluded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Candidates([]Node{tc.node}, tc.selected, tc.svc)
			if len(got) != 1 || got[0].Name != tc.node.Name || got[0].Reason != tc.want || got[0].Eligible != (tc.want == "") {
				t.Fatalf("got %+v, want reason %q", got, tc.want)
			}
		})
	}
}

// Local Services go to a node with an endpoint, and follow the endpoints.
func TestLocalFollowsEndpoints(t *testing.T) {
	nodes := []Node{{Name: "node1", Alive: true}, {Name: "node2", Alive: true}, {Name: "node3", Alive: true}}
	ip := netip.MustParseAddr("198.51.100.210")
	for _, eps := range []map[string]int{{"node1": 1}, {"node2": 3}, {"node3": 1, "node1": 1}} {
		got, ok := Announcer(ip, Candidates(nodes, nil, Service{Local: true, ReadyEndpoints: eps}))
		if !ok || eps[got] == 0 {
			t.Fatalf("endpoints %v: announcer %q", eps, got)
		}
	}
	if got, ok := Announcer(ip, Candidates(nodes, nil, Service{Local: true})); ok {
		t.Fatalf("no endpoints anywhere, yet %s announces", got)
	}
}

func TestOrderIndependence(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	c := eligible(nodeNames(10)...)
	for _, ip := range addrs(200, false) {
		want, _ := Announcer(ip, c)
		shuffled := slices.Clone(c)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got, _ := Announcer(ip, shuffled); got != want {
			t.Fatalf("%s: %s vs %s after shuffle %s", ip, got, want, names(shuffled))
		}
	}
}

func names(c []Candidate) string {
	var s []string
	for _, x := range c {
		s = append(s, x.Name)
	}
	return strings.Join(s, ",")
}

func BenchmarkAnnouncer(b *testing.B) {
	for _, n := range []int{3, 10, 100} {
		c := eligible(nodeNames(n)...)
		ips := append(addrs(512, false), addrs(512, true)...)
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				Announcer(ips[i%len(ips)], c)
				i++
			}
		})
	}
}

func BenchmarkCandidates(b *testing.B) {
	nodes := make([]Node, 100)
	for i := range nodes {
		nodes[i] = Node{Name: fmt.Sprintf("node%d", i), Alive: true, Labels: labels.Set{"role": "edge"}}
	}
	sel := func(l labels.Set) bool { return l["role"] == "edge" }
	svc := Service{Local: true, ReadyEndpoints: map[string]int{"node7": 1, "node42": 2}}
	for b.Loop() {
		Candidates(nodes, sel, svc)
	}
}
