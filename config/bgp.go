package config

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// BGP defaults (the CRDs document them).
const (
	DefaultBGPPort          = 179
	DefaultHoldTime         = 90 * time.Second
	DefaultRestartTime      = 120 * time.Second
	DefaultBFDInterval      = 300 * time.Millisecond
	DefaultBFDMultiplier    = 3
	DefaultPasswordKey      = "password"
	asTrans                 = 23456
	maxGracefulRestartTime  = 4095 * time.Second
	minNonZeroHoldTime      = 3 * time.Second
	maxHoldTime             = 65535 * time.Second
	maxBFDIntervalMillis    = 60000
	minBFDIntervalMillis    = 10
	maxAdvertisementPeers   = 64
	maxAdvertisementPools   = 256
	maxAdvertisementCommuns = 32
)

// SecretRef names a key of a Secret in the speaker's namespace.
type SecretRef struct{ Name, Key string }

// BGPPeer is a validated BGPPeer.
type BGPPeer struct {
	Name           string
	MyASN, PeerASN uint32
	Address        netip.Addr
	Port           uint16
	// Source and RouterID are invalid (zero) when unset.
	Source   netip.Addr
	RouterID netip.Addr
	// HoldTime 0 disables keepalives; Keepalive is then 0 too.
	HoldTime, Keepalive time.Duration
	EBGPMultiHop        bool
	// Password is nil without TCP MD5.
	Password *SecretRef
	// NodeSelector is nil when unset (every node).
	NodeSelector    labels.Selector
	GracefulRestart bool
	RestartTime     time.Duration
	BFDProfile      string

	Generation int64
}

// IBGP reports whether the session is internal (same AS on both ends).
func (p *BGPPeer) IBGP() bool { return p.MyASN == p.PeerASN }

// SelectsNode reports whether a node with these labels opens the session.
func (p *BGPPeer) SelectsNode(nodeLabels labels.Set) bool {
	return p.NodeSelector == nil || p.NodeSelector.Matches(nodeLabels)
}

// Family is the address family of the session (and of what it carries).
func (p *BGPPeer) Family() Family { return FamilyOf(p.Address) }

// BFDProfile is a validated BFDProfile.
type BFDProfile struct {
	Name             string
	ReceiveInterval  time.Duration
	TransmitInterval time.Duration
	DetectMultiplier uint8
}

// Community is a standard (RFC 1997) or large (RFC 8092) BGP community.
type Community struct {
	// Large is set for a large community; Value holds its three parts.
	// A standard community keeps its 32-bit value in Value[0].
	Large bool
	Value [3]uint32
}

// ParseCommunity parses "a:b" (two 16-bit parts) or "a:b:c" (three 32-bit
// parts).
func ParseCommunity(s string) (Community, error) {
	parts := strings.Split(s, ":")
	bits := 16
	switch len(parts) {
	case 2:
	case 3:
		bits = 32
	default:
		return Community{}, fmt.Errorf("community %q: want a:b (standard) or a:b:c (large)", s)
	}
	var v [3]uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, bits)
		if err != nil || p == "" || (len(p) > 1 && p[0] == '+') {
			return Community{}, fmt.Errorf("community %q: part %q is not a number of at most %d bits", s, p, bits)
		}
		v[i] = n
	}
	if len(parts) == 2 {
		return Community{Value: [3]uint32{uint32(v[0]<<16 | v[1])}}, nil
	}
	return Community{Large: true, Value: [3]uint32{uint32(v[0]), uint32(v[1]), uint32(v[2])}}, nil
}

func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("%d:%d:%d", c.Value[0], c.Value[1], c.Value[2])
	}
	return fmt.Sprintf("%d:%d", c.Value[0]>>16, c.Value[0]&0xffff)
}

// Compare orders standard communities before large ones, then by value.
func (c Community) Compare(o Community) int {
	if c.Large != o.Large {
		if !c.Large {
			return -1
		}
		return 1
	}
	for i := range c.Value {
		if c.Value[i] != o.Value[i] {
			if c.Value[i] < o.Value[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// BGPAdvertisement is a validated BGPAdvertisement.
type BGPAdvertisement struct {
	Name string
	// Pools holds the names listed in ipPools, sorted.
	Pools []string
	// PoolSelector is nil when unset.
	PoolSelector labels.Selector
	// Peers holds the BGPPeer names, sorted; empty means every peer.
	Peers []string
	// NodeSelector is nil when unset (every node).
	NodeSelector labels.Selector
	// Communities are sorted and unique.
	Communities []Community
	// LocalPref is nil when unset.
	LocalPref *uint32
	// AggregationV4 and AggregationV6 are the announced prefix lengths.
	AggregationV4, AggregationV6 int

	Generation int64
}

// AllPools reports whether the advertisement selects every pool.
func (a *BGPAdvertisement) AllPools() bool { return len(a.Pools) == 0 && a.PoolSelector == nil }

// SelectsPool reports whether the advertisement selects the pool.
func (a *BGPAdvertisement) SelectsPool(name string, poolLabels labels.Set) bool {
	if a.AllPools() {
		return true
	}
	if _, ok := slices.BinarySearch(a.Pools, name); ok {
		return true
	}
	return a.PoolSelector != nil && a.PoolSelector.Matches(poolLabels)
}

// SelectsNode reports whether a node with these labels announces.
func (a *BGPAdvertisement) SelectsNode(nodeLabels labels.Set) bool {
	return a.NodeSelector == nil || a.NodeSelector.Matches(nodeLabels)
}

// SelectsPeer reports whether routes go to the named peer.
func (a *BGPAdvertisement) SelectsPeer(name string) bool {
	if len(a.Peers) == 0 {
		return true
	}
	_, ok := slices.BinarySearch(a.Peers, name)
	return ok
}

// Prefix returns the prefix announced for ip: the address itself or its
// covering aggregate.
func (a *BGPAdvertisement) Prefix(ip netip.Addr) netip.Prefix {
	bits := a.AggregationV4
	if ip.Is6() {
		bits = a.AggregationV6
	}
	p, _ := ip.Prefix(bits)
	return p
}

// BGP is the validated BGP configuration. Objects that fail validation,
// on their own or against the objects they refer to, are in Invalid and are
// left out; references that may resolve later (an advertisement naming a
// pool or peer that does not exist yet) are only reported in Warnings.
type BGP struct {
	Peers          map[string]*BGPPeer
	Advertisements map[string]*BGPAdvertisement
	BFDProfiles    map[string]*BFDProfile
	// Invalid maps "Kind/name" to why the object was rejected.
	Invalid map[string]error
	// Warnings maps "Kind/name" to problems that do not reject the object.
	Warnings map[string]string
	// Unresolved maps "Kind/name" to the objects it names that are missing
	// or invalid, whether that rejects it (a BGPPeer's bfdProfile) or not
	// (an advertisement's pools and peers).
	Unresolved map[string][]string
}

// ErrMissingReference and ErrInvalidReference mark an object rejected
// because an object it names does not exist or is invalid.
var (
	ErrMissingReference = errors.New("does not exist")
	ErrInvalidReference = errors.New("is invalid")
)

// Object keys in Invalid and Warnings.
func peerKey(n string) string { return "BGPPeer/" + n }
func adKey(n string) string   { return "BGPAdvertisement/" + n }
func bfdKey(n string) string  { return "BFDProfile/" + n }

// ParseBGP validates BGP objects. pools may be nil; it is used only to warn
// about advertisements naming unknown pools.
func ParseBGP(peers []v1alpha1.BGPPeer, ads []v1alpha1.BGPAdvertisement, profiles []v1alpha1.BFDProfile, pools *Pools) *BGP {
	out := &BGP{
		Peers:          map[string]*BGPPeer{},
		Advertisements: map[string]*BGPAdvertisement{},
		BFDProfiles:    map[string]*BFDProfile{},
		Invalid:        map[string]error{},
		Warnings:       map[string]string{},
		Unresolved:     map[string][]string{},
	}
	for i := range profiles {
		p, err := parseBFDProfile(&profiles[i])
		if err != nil {
			out.Invalid[bfdKey(profiles[i].Name)] = err
			continue
		}
		out.BFDProfiles[p.Name] = p
	}
	for i := range peers {
		p, err := parseBGPPeer(&peers[i])
		if err == nil && p.BFDProfile != "" && out.BFDProfiles[p.BFDProfile] == nil {
			if _, bad := out.Invalid[bfdKey(p.BFDProfile)]; bad {
				err = fmt.Errorf("bfdProfile %q %w", p.BFDProfile, ErrInvalidReference)
			} else {
				err = fmt.Errorf("bfdProfile %q %w", p.BFDProfile, ErrMissingReference)
			}
			out.Unresolved[peerKey(p.Name)] = []string{err.Error()}
		}
		if err != nil {
			out.Invalid[peerKey(peers[i].Name)] = err
			continue
		}
		out.Peers[p.Name] = p
	}
	for i := range ads {
		a, err := parseBGPAdvertisement(&ads[i])
		if err != nil {
			out.Invalid[adKey(ads[i].Name)] = err
			continue
		}
		out.Advertisements[a.Name] = a
		var unresolved []string
		for _, n := range a.Peers {
			if out.Peers[n] == nil {
				unresolved = append(unresolved, fmt.Sprintf("peer %q does not exist or is invalid", n))
			}
		}
		unresolved = append(unresolved, missingPools(a.Pools, pools)...)
		if len(unresolved) > 0 {
			out.Unresolved[adKey(a.Name)] = unresolved
		}
		warn := slices.Clone(unresolved)
		if a.LocalPref != nil && !out.reachesIBGP(a) {
			warn = append(warn, "localPref is only sent to iBGP peers and this advertisement selects none")
		}
		if len(warn) > 0 {
			out.Warnings[adKey(a.Name)] = strings.Join(warn, "; ")
		}
	}
	return out
}

// missingPools lists the named pools that pools (which may be nil) does
// not hold as valid.
func missingPools(names []string, pools *Pools) []string {
	var out []string
	for _, n := range names {
		if pools == nil || pools.ByName[n] == nil {
			out = append(out, fmt.Sprintf("pool %q does not exist or is invalid", n))
		}
	}
	return out
}

func (b *BGP) reachesIBGP(a *BGPAdvertisement) bool {
	for _, p := range b.Peers {
		if p.IBGP() && a.SelectsPeer(p.Name) {
			return true
		}
	}
	return false
}

// KeepLastGood returns b where every object that is invalid now but was
// valid in prev keeps its previous configuration, so a bad edit never tears
// down a working session. Objects deleted since prev are gone. The Invalid
// entries stay, for reporting.
func (b *BGP) KeepLastGood(prev *BGP) *BGP {
	if prev == nil {
		return b
	}
	for key := range b.Invalid {
		kind, name, _ := strings.Cut(key, "/")
		switch kind {
		case "BGPPeer":
			if p := prev.Peers[name]; p != nil {
				b.Peers[name] = p
				// Its BFD profile may be what broke; keep that too.
				if p.BFDProfile != "" && b.BFDProfiles[p.BFDProfile] == nil && prev.BFDProfiles[p.BFDProfile] != nil {
					b.BFDProfiles[p.BFDProfile] = prev.BFDProfiles[p.BFDProfile]
				}
			}
		case "BGPAdvertisement":
			if a := prev.Advertisements[name]; a != nil {
				b.Advertisements[name] = a
			}
		case "BFDProfile":
			if p := prev.BFDProfiles[name]; p != nil {
				b.BFDProfiles[name] = p
			}
		}
	}
	return b
}

// ForPool returns the advertisements that select the pool, sorted by name.
func (b *BGP) ForPool(pool string, poolLabels labels.Set) []*BGPAdvertisement {
	var out []*BGPAdvertisement
	for _, a := range b.Advertisements {
		if a.SelectsPool(pool, poolLabels) {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func parseBFDProfile(in *v1alpha1.BFDProfile) (*BFDProfile, error) {
	p := &BFDProfile{Name: in.Name, ReceiveInterval: DefaultBFDInterval, TransmitInterval: DefaultBFDInterval, DetectMultiplier: DefaultBFDMultiplier}
	var errs []string
	ms := func(field string, v *int32, dst *time.Duration) {
		if v == nil {
			return
		}
		if *v < minBFDIntervalMillis || *v > maxBFDIntervalMillis {
			errs = append(errs, fmt.Sprintf("%s: %d ms is outside %d-%d", field, *v, minBFDIntervalMillis, maxBFDIntervalMillis))
			return
		}
		*dst = time.Duration(*v) * time.Millisecond
	}
	ms("receiveInterval", in.Spec.ReceiveInterval, &p.ReceiveInterval)
	ms("transmitInterval", in.Spec.TransmitInterval, &p.TransmitInterval)
	if m := in.Spec.DetectMultiplier; m != nil {
		if *m < 2 || *m > 255 {
			errs = append(errs, fmt.Sprintf("detectMultiplier: %d is outside 2-255", *m))
		} else {
			p.DetectMultiplier = uint8(*m)
		}
	}
	if in.Spec.EchoMode != nil && *in.Spec.EchoMode {
		errs = append(errs, "echoMode is not supported (gobgp's BFD has no echo function)")
	}
	if in.Spec.PassiveMode != nil && *in.Spec.PassiveMode {
		errs = append(errs, "passiveMode is not supported (gobgp's BFD always sends control packets)")
	}
	if err := invalid(errs); err != nil {
		return nil, err
	}
	return p, nil
}

func parseASN(field string, v v1alpha1.ASN) (uint32, error) {
	if v < 1 || v > 1<<32-1 || v == asTrans {
		return 0, fmt.Errorf("%s: %d is not a usable AS number (1-4294967295, not 23456)", field, v)
	}
	return uint32(v), nil
}

func duration(field string, d *time.Duration, v *metav1.Duration) error {
	if v == nil {
		return nil
	}
	if v.Duration < 0 {
		return fmt.Errorf("%s: negative", field)
	}
	*d = v.Duration
	return nil
}

func parseBGPPeer(in *v1alpha1.BGPPeer) (*BGPPeer, error) {
	s := &in.Spec
	p := &BGPPeer{Name: in.Name, Generation: in.Generation, Port: DefaultBGPPort, HoldTime: DefaultHoldTime,
		EBGPMultiHop: s.EBGPMultiHop, BFDProfile: s.BFDProfile, RestartTime: DefaultRestartTime}
	var errs []string
	add := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	var err error
	p.MyASN, err = parseASN("myASN", s.MyASN)
	add(err)
	p.PeerASN, err = parseASN("peerASN", s.PeerASN)
	add(err)
	if p.Address, err = netip.ParseAddr(s.PeerAddress); err != nil || p.Address.Zone() != "" {
		errs = append(errs, fmt.Sprintf("peerAddress: %q is not an IP address", s.PeerAddress))
	}
	p.Address = p.Address.Unmap()
	if s.PeerPort != 0 {
		if s.PeerPort < 1 || s.PeerPort > 65535 {
			errs = append(errs, fmt.Sprintf("peerPort: %d is outside 1-65535", s.PeerPort))
		} else {
			p.Port = uint16(s.PeerPort)
		}
	}
	if s.SourceAddress != "" {
		if p.Source, err = netip.ParseAddr(s.SourceAddress); err != nil {
			errs = append(errs, fmt.Sprintf("sourceAddress: %q is not an IP address", s.SourceAddress))
		} else if p.Address.IsValid() && p.Source.Unmap().Is4() != p.Address.Is4() {
			errs = append(errs, "sourceAddress and peerAddress must be of the same family")
		}
		p.Source = p.Source.Unmap()
	}
	if s.RouterID != "" {
		if p.RouterID, err = netip.ParseAddr(s.RouterID); err != nil || !p.RouterID.Is4() {
			errs = append(errs, fmt.Sprintf("routerID: %q is not an IPv4 address", s.RouterID))
		}
	}
	add(duration("holdTime", &p.HoldTime, s.HoldTime))
	switch {
	case p.HoldTime != 0 && p.HoldTime < minNonZeroHoldTime:
		errs = append(errs, fmt.Sprintf("holdTime: %s must be 0 or at least 3s", p.HoldTime))
	case p.HoldTime > maxHoldTime:
		errs = append(errs, fmt.Sprintf("holdTime: %s is over 65535s", p.HoldTime))
	case p.HoldTime%time.Second != 0:
		errs = append(errs, fmt.Sprintf("holdTime: %s is not a whole number of seconds", p.HoldTime))
	}
	p.Keepalive = p.HoldTime / 3
	add(duration("keepaliveTime", &p.Keepalive, s.KeepaliveTime))
	switch {
	case p.HoldTime == 0:
		p.Keepalive = 0
	case p.Keepalive >= p.HoldTime:
		errs = append(errs, fmt.Sprintf("keepaliveTime %s must be shorter than holdTime %s", p.Keepalive, p.HoldTime))
	case s.KeepaliveTime != nil && p.Keepalive < time.Second:
		errs = append(errs, fmt.Sprintf("keepaliveTime %s is under 1s", p.Keepalive))
	}
	p.Keepalive = p.Keepalive.Truncate(time.Second)
	if r := s.PasswordSecretRef; r != nil {
		if r.Name == "" {
			errs = append(errs, "passwordSecretRef: empty name")
		}
		p.Password = &SecretRef{Name: r.Name, Key: r.Key}
		if p.Password.Key == "" {
			p.Password.Key = DefaultPasswordKey
		}
	}
	if p.NodeSelector, err = selector(s.NodeSelector); err != nil {
		errs = append(errs, "nodeSelector: "+err.Error())
	}
	if g := s.GracefulRestart; g != nil {
		p.GracefulRestart = g.Enabled
		add(duration("gracefulRestart.restartTime", &p.RestartTime, g.RestartTime))
		if p.RestartTime < time.Second || p.RestartTime > maxGracefulRestartTime {
			errs = append(errs, fmt.Sprintf("gracefulRestart.restartTime: %s is outside 1s-4095s", p.RestartTime))
		}
	}
	if err := invalid(errs); err != nil {
		return nil, err
	}
	return p, nil
}

func parseBGPAdvertisement(in *v1alpha1.BGPAdvertisement) (*BGPAdvertisement, error) {
	s := &in.Spec
	a := &BGPAdvertisement{Name: in.Name, Generation: in.Generation, AggregationV4: 32, AggregationV6: 128}
	var errs []string
	names := func(field string, in []string, max int) []string {
		if len(in) > max {
			errs = append(errs, fmt.Sprintf("%s: more than %d entries", field, max))
		}
		var out []string
		for _, n := range in {
			if n == "" {
				errs = append(errs, field+": empty name")
				continue
			}
			out = append(out, n)
		}
		sort.Strings(out)
		return slices.Compact(out)
	}
	a.Pools = names("ipPools", s.IPPools, maxAdvertisementPools)
	a.Peers = names("peers", s.Peers, maxAdvertisementPeers)
	var err error
	if a.PoolSelector, err = selector(s.IPPoolSelector); err != nil {
		errs = append(errs, "ipPoolSelector: "+err.Error())
	}
	if a.NodeSelector, err = selector(s.NodeSelector); err != nil {
		errs = append(errs, "nodeSelector: "+err.Error())
	}
	if len(s.Communities) > maxAdvertisementCommuns {
		errs = append(errs, fmt.Sprintf("communities: more than %d entries", maxAdvertisementCommuns))
	}
	for _, c := range s.Communities {
		cm, err := ParseCommunity(string(c))
		if err != nil {
			errs = append(errs, "communities: "+err.Error())
			continue
		}
		a.Communities = append(a.Communities, cm)
	}
	slices.SortFunc(a.Communities, Community.Compare)
	a.Communities = slices.Compact(a.Communities)
	if lp := s.LocalPref; lp != nil {
		if *lp < 0 || *lp > 1<<32-1 {
			errs = append(errs, fmt.Sprintf("localPref: %d is outside 0-4294967295", *lp))
		} else {
			v := uint32(*lp)
			a.LocalPref = &v
		}
	}
	if l := s.AggregationLength; l != nil {
		if *l < 0 || *l > 32 {
			errs = append(errs, fmt.Sprintf("aggregationLength: %d is outside 0-32", *l))
		} else {
			a.AggregationV4 = int(*l)
		}
	}
	if l := s.AggregationLengthV6; l != nil {
		if *l < 0 || *l > 128 {
			errs = append(errs, fmt.Sprintf("aggregationLengthV6: %d is outside 0-128", *l))
		} else {
			a.AggregationV6 = int(*l)
		}
	}
	if err := invalid(errs); err != nil {
		return nil, err
	}
	return a, nil
}
