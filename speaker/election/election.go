package election

import (
	"net/netip"
	"sort"
)

// Candidate is a node that might announce an address.
type Candidate struct {
	Name string
	// Eligible is true when the node may announce; see Candidates.
	Eligible bool
	// Reason says why the node is not eligible; empty when it is.
	Reason Reason
	// Claimed is true when the node says it announces the address now.
	Claimed bool
	// ClaimsUnknown is true when the node does not report what it claims.
	ClaimsUnknown bool
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// ipHash is FNV-1a-64 over the address's 16 bytes: the shared prefix of
// every node's score for one address.
func ipHash(ip netip.Addr) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range ip.As16() {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return h
}

// score continues FNV-1a over the node name and finalises the result.
// FNV-1a alone mixes its last bytes poorly (node names often differ only
// there), so the finaliser is needed for an even spread.
func score(h uint64, node string) uint64 {
	for i := 0; i < len(node); i++ {
		h ^= uint64(node[i])
		h *= fnvPrime64
	}
	return fmix64(h)
}

// fmix64 is MurmurHash3's 64-bit finaliser: every input bit affects every
// output bit.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// Score is the rendezvous weight of a node for an address.
func Score(ip netip.Addr, node string) uint64 {
	return score(ipHash(ip), node)
}

// Announcer returns the eligible candidate that announces ip, or false when
// no candidate is eligible. The result depends only on ip and on the names
// of the eligible candidates, not on their order.
func Announcer(ip netip.Addr, candidates []Candidate) (string, bool) {
	h := ipHash(ip)
	var (
		best      string
		bestScore uint64
		found     bool
	)
	for i := range candidates {
		c := &candidates[i]
		if !c.Eligible {
			continue
		}
		s := score(h, c.Name)
		if !found || s > bestScore || (s == bestScore && c.Name < best) {
			best, bestScore, found = c.Name, s, true
		}
	}
	return best, found
}

// Standby returns the announcer of ip and the candidate that would take
// over if it went away ("" when there is none), in one pass: Rank's first
// two without the sort.
func Standby(ip netip.Addr, candidates []Candidate) (announcer, standby string, ok bool) {
	h := ipHash(ip)
	var s1, s2 uint64
	better := func(s uint64, name string, than uint64, thanName string) bool {
		return s > than || (s == than && name < thanName)
	}
	for i := range candidates {
		c := &candidates[i]
		if !c.Eligible {
			continue
		}
		s := score(h, c.Name)
		switch {
		case !ok || better(s, c.Name, s1, announcer):
			announcer, s1, standby, s2, ok = c.Name, s, announcer, s1, true
		case standby == "" || better(s, c.Name, s2, standby):
			standby, s2 = c.Name, s
		}
	}
	return announcer, standby, ok
}

// Rank returns the eligible candidates' names in announcing order for ip:
// the announcer first, then who takes over if it goes away, and so on.
func Rank(ip netip.Addr, candidates []Candidate) []string {
	h := ipHash(ip)
	var names []string
	for _, c := range candidates {
		if c.Eligible {
			names = append(names, c.Name)
		}
	}
	return Order(names, func(name string) uint64 { return score(h, name) })
}

// Order returns names in rendezvous order of their scores: the highest
// first, ties to the smaller name.
func Order(names []string, scoreOf func(string) uint64) []string {
	type scored struct {
		name  string
		score uint64
	}
	ss := make([]scored, len(names))
	for i, n := range names {
		ss[i] = scored{n, scoreOf(n)}
	}
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].score != ss[j].score {
			return ss[i].score > ss[j].score
		}
		return ss[i].name < ss[j].name
	})
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.name
	}
	return out
}

// Mix64 is the finaliser of Score (MurmurHash3's fmix64), for other
// rendezvous hashes.
func Mix64(k uint64) uint64 { return fmix64(k) }

// Keep is the election for an address that does not fail back: it stays
// with the node announcing it now. The announcer is the highest-scoring
// eligible candidate that claims the address; with no such claimant (the
// owner left or became ineligible, or nobody announced it yet) it is
// Standby's. Two claimants (a healed partition) resolve by score, so both
// sides agree on the same one. The standby is the highest-scoring eligible
// candidate other than the announcer: who takes over if it goes.
//
// An eligible candidate whose claims are unknown (an older speaker) elects
// by score only, so every speaker does the same and no address is announced
// twice: Keep is then Standby.
func Keep(ip netip.Addr, candidates []Candidate) (announcer, standby string, ok bool) {
	h := ipHash(ip)
	var best uint64
	for i := range candidates {
		c := &candidates[i]
		if !c.Eligible {
			continue
		}
		if c.ClaimsUnknown {
			return Standby(ip, candidates)
		}
		if !c.Claimed {
			continue
		}
		if s := score(h, c.Name); !ok || s > best || (s == best && c.Name < announcer) {
			announcer, best, ok = c.Name, s, true
		}
	}
	if !ok {
		return Standby(ip, candidates)
	}
	var s2 uint64
	for i := range candidates {
		c := &candidates[i]
		if !c.Eligible || c.Name == announcer {
			continue
		}
		if s := score(h, c.Name); standby == "" || s > s2 || (s == s2 && c.Name < standby) {
			standby, s2 = c.Name, s
		}
	}
	return announcer, standby, true
}
