package config

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
func i32(v int32) *int32                   { return &v }
func i64(v int64) *int64                   { return &v }
func yes() *bool                           { b := true; return &b }

func peerObj(name string, spec v1alpha1.BGPPeerSpec) v1alpha1.BGPPeer {
	p := v1alpha1.BGPPeer{Spec: spec}
	p.Name = name
	return p
}

func TestParseBGPPeer(t *testing.T) {
	base := v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1"}
	with := func(f func(*v1alpha1.BGPPeerSpec)) v1alpha1.BGPPeerSpec { s := base; f(&s); return s }
	for _, tc := range []struct {
		name  string
		spec  v1alpha1.BGPPeerSpec
		check func(*testing.T, *BGPPeer)
		err   string
	}{
		{"defaults", base, func(t *testing.T, p *BGPPeer) {
			if p.Port != 179 || p.HoldTime != 90*time.Second || p.Keepalive != 30*time.Second || p.IBGP() ||
				p.Address != netip.MustParseAddr("198.51.100.1") || p.Source.IsValid() || p.RouterID.IsValid() ||
				p.GracefulRestart || p.RestartTime != DefaultRestartTime || p.Password != nil || p.NodeSelector != nil {
				t.Errorf("got %+v", p)
			}
		}, ""},
		{"ibgp ipv6 full", with(func(s *v1alpha1.BGPPeerSpec) {
			s.PeerASN = 64512
			s.PeerAddress = "2001:db8:100::1"
			s.SourceAddress = "2001:db8:100::11"
			s.RouterID = "10.0.0.1"
			s.PeerPort = 1179
			s.HoldTime, s.KeepaliveTime = dur(9*time.Second), dur(2*time.Second)
			s.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "bgp"}
			s.NodeSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "a"}}
			s.GracefulRestart = &v1alpha1.GracefulRestart{Enabled: true, RestartTime: dur(30 * time.Second)}
			s.BFDProfile = "fast"
		}), func(t *testing.T, p *BGPPeer) {
			if !p.IBGP() || p.Port != 1179 || p.HoldTime != 9*time.Second || p.Keepalive != 2*time.Second ||
				p.Family() != IPv6 || p.Source != netip.MustParseAddr("2001:db8:100::11") ||
				*p.Password != (SecretRef{"bgp", "password"}) || !p.GracefulRestart || p.RestartTime != 30*time.Second ||
				!p.SelectsNode(labels.Set{"rack": "a"}) || p.SelectsNode(labels.Set{"rack": "b"}) {
				t.Errorf("got %+v", p)
			}
		}, ""},
		{"hold 0 means no keepalive", with(func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur(0) }), func(t *testing.T, p *BGPPeer) {
			if p.HoldTime != 0 || p.Keepalive != 0 {
				t.Errorf("got hold %s keepalive %s", p.HoldTime, p.Keepalive)
			}
		}, ""},
		{"hold 2s", with(func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur(2 * time.Second) }), nil, "must be 0 or at least 3s"},
		{"hold fractional", with(func(s *v1alpha1.BGPPeerSpec) { s.HoldTime = dur(3500 * time.Millisecond) }), nil, "whole number"},
		{"keepalive not under hold", with(func(s *v1alpha1.BGPPeerSpec) {
			s.HoldTime, s.KeepaliveTime = dur(3*time.Second), dur(3*time.Second)
		}), nil, "must be shorter than holdTime"},
		{"asn 0", with(func(s *v1alpha1.BGPPeerSpec) { s.MyASN = 0 }), nil, "myASN: 0 is not a usable AS number"},
		{"as_trans", with(func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = 23456 }), nil, "peerASN: 23456"},
		{"asn too big", with(func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = 1 << 32 }), nil, "peerASN"},
		{"4-byte asn", with(func(s *v1alpha1.BGPPeerSpec) { s.PeerASN = 4200000000 }), func(t *testing.T, p *BGPPeer) {
			if p.PeerASN != 4200000000 {
				t.Errorf("got %d", p.PeerASN)
			}
		}, ""},
		{"bad address", with(func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "router" }), nil, "peerAddress"},
		{"mixed families", with(func(s *v1alpha1.BGPPeerSpec) { s.SourceAddress = "2001:db8::1" }), nil, "same family"},
		{"v6 router id", with(func(s *v1alpha1.BGPPeerSpec) { s.RouterID = "2001:db8::1" }), nil, "routerID"},
		{"restart time", with(func(s *v1alpha1.BGPPeerSpec) {
			s.GracefulRestart = &v1alpha1.GracefulRestart{Enabled: true, RestartTime: dur(5000 * time.Second)}
		}), nil, "restartTime"},
		{"bad selector", with(func(s *v1alpha1.BGPPeerSpec) {
			s.NodeSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
		}), nil, "nodeSelector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ParseBGP([]v1alpha1.BGPPeer{peerObj("p", tc.spec)}, nil, []v1alpha1.BFDProfile{{ObjectMeta: metav1.ObjectMeta{Name: "fast"}}}, nil)
			err := b.Invalid["BGPPeer/p"]
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				if b.Peers["p"] != nil {
					t.Fatal("invalid peer kept")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, b.Peers["p"])
		})
	}
}

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Community
		err  bool
	}{
		{"65000:100", Community{Value: [3]uint32{65000<<16 | 100}}, false},
		{"0:0", Community{}, false},
		{"65535:65535", Community{Value: [3]uint32{0xffffffff}}, false},
		{"65536:1", Community{}, true},
		{"1:2:3", Community{Large: true, Value: [3]uint32{1, 2, 3}}, false},
		{"4294967295:0:4294967295", Community{Large: true, Value: [3]uint32{4294967295, 0, 4294967295}}, false},
		{"4294967296:0:0", Community{}, true},
		{"1", Community{}, true},
		{"1:2:3:4", Community{}, true},
		{"a:b", Community{}, true},
		{":1", Community{}, true},
		{"+1:1", Community{}, true},
		{"-1:1", Community{}, true},
	} {
		got, err := ParseCommunity(tc.in)
		if (err != nil) != tc.err || (err == nil && got != tc.want) {
			t.Errorf("%q: got %+v, %v", tc.in, got, err)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("%q prints as %q", tc.in, got.String())
		}
	}
}

func TestParseBFDProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec v1alpha1.BFDProfileSpec
		want BFDProfile
		err  string
	}{
		{"defaults", v1alpha1.BFDProfileSpec{}, BFDProfile{Name: "b", ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}, ""},
		{"fast", v1alpha1.BFDProfileSpec{ReceiveInterval: i32(100), TransmitInterval: i32(50), DetectMultiplier: i32(5)},
			BFDProfile{Name: "b", ReceiveInterval: 100 * time.Millisecond, TransmitInterval: 50 * time.Millisecond, DetectMultiplier: 5}, ""},
		{"echo", v1alpha1.BFDProfileSpec{EchoMode: yes()}, BFDProfile{}, "echoMode is not supported"},
		{"passive", v1alpha1.BFDProfileSpec{PassiveMode: yes()}, BFDProfile{}, "passiveMode is not supported"},
		{"interval", v1alpha1.BFDProfileSpec{ReceiveInterval: i32(5)}, BFDProfile{}, "receiveInterval"},
		{"multiplier", v1alpha1.BFDProfileSpec{DetectMultiplier: i32(1)}, BFDProfile{}, "detectMultiplier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ParseBGP(nil, nil, []v1alpha1.BFDProfile{{ObjectMeta: metav1.ObjectMeta{Name: "b"}, Spec: tc.spec}}, nil)
			if tc.err != "" {
				if err := b.Invalid["BFDProfile/b"]; err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if got := b.BFDProfiles["b"]; got == nil || *got != tc.want {
				t.Fatalf("got %+v (%v)", got, b.Invalid)
			}
		})
	}
}

func TestParseBGPAdvertisement(t *testing.T) {
	pools := ParsePools([]v1alpha1.IPPool{{ObjectMeta: metav1.ObjectMeta{Name: "bgp", Labels: map[string]string{"scope": "routed"}},
		Spec: v1alpha1.IPPoolSpec{Addresses: []v1alpha1.AddressBlock{"203.0.113.0/24"}}}})
	peers := []v1alpha1.BGPPeer{
		peerObj("ebgp", v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1"}),
		peerObj("ibgp", v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64512, PeerAddress: "198.51.100.2"}),
	}
	for _, tc := range []struct {
		name  string
		spec  v1alpha1.BGPAdvertisementSpec
		check func(*testing.T, *BGPAdvertisement)
		err   string
		warn  string
	}{
		{"empty selects all", v1alpha1.BGPAdvertisementSpec{}, func(t *testing.T, a *BGPAdvertisement) {
			if !a.AllPools() || !a.SelectsPool("x", nil) || !a.SelectsPeer("any") || !a.SelectsNode(nil) ||
				a.AggregationV4 != 32 || a.AggregationV6 != 128 || a.LocalPref != nil {
				t.Errorf("got %+v", a)
			}
			if a.Prefix(netip.MustParseAddr("203.0.113.7")) != netip.MustParsePrefix("203.0.113.7/32") {
				t.Error("prefix")
			}
		}, "", ""},
		{"full", v1alpha1.BGPAdvertisementSpec{
			IPPools: []string{"bgp"}, Peers: []string{"ibgp", "ebgp"},
			IPPoolSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"scope": "other"}},
			Communities:    []v1alpha1.Community{"1:2:3", "65000:100", "65000:100"},
			LocalPref:      i64(200), AggregationLength: i32(24), AggregationLengthV6: i32(64),
		}, func(t *testing.T, a *BGPAdvertisement) {
			if !a.SelectsPool("bgp", nil) || a.SelectsPool("lan", labels.Set{"scope": "routed"}) || !a.SelectsPool("o", labels.Set{"scope": "other"}) ||
				!a.SelectsPeer("ebgp") || a.SelectsPeer("x") || *a.LocalPref != 200 {
				t.Errorf("got %+v", a)
			}
			if len(a.Communities) != 2 || a.Communities[0].String() != "65000:100" || a.Communities[1].String() != "1:2:3" {
				t.Errorf("communities %v", a.Communities)
			}
			if a.Prefix(netip.MustParseAddr("203.0.113.7")) != netip.MustParsePrefix("203.0.113.0/24") ||
				a.Prefix(netip.MustParseAddr("2001:db8:203::7")) != netip.MustParsePrefix("2001:db8:203::/64") {
				t.Error("aggregation")
			}
		}, "", ""},
		{"bad community", v1alpha1.BGPAdvertisementSpec{Communities: []v1alpha1.Community{"65536:1"}}, nil, "communities", ""},
		{"bad aggregation", v1alpha1.BGPAdvertisementSpec{AggregationLength: i32(33)}, nil, "aggregationLength", ""},
		{"unknown pool and peer", v1alpha1.BGPAdvertisementSpec{IPPools: []string{"nope"}, Peers: []string{"ghost"}}, func(*testing.T, *BGPAdvertisement) {},
			"", `peer "ghost" does not exist or is invalid; pool "nope" does not exist`},
		{"localPref to eBGP only", v1alpha1.BGPAdvertisementSpec{Peers: []string{"ebgp"}, LocalPref: i64(10)}, func(*testing.T, *BGPAdvertisement) {},
			"", "localPref is only sent to iBGP peers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad := v1alpha1.BGPAdvertisement{Spec: tc.spec}
			ad.Name = "a"
			b := ParseBGP(peers, []v1alpha1.BGPAdvertisement{ad}, nil, pools)
			if tc.err != "" {
				if err := b.Invalid["BGPAdvertisement/a"]; err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err := b.Invalid["BGPAdvertisement/a"]; err != nil {
				t.Fatal(err)
			}
			if w := b.Warnings["BGPAdvertisement/a"]; !strings.Contains(w, tc.warn) || (tc.warn == "" && w != "") {
				t.Errorf("warning %q, want %q", w, tc.warn)
			}
			tc.check(t, b.Advertisements["a"])
		})
	}
}

// TestKeepLastGood: a bad edit (or a dangling BFD profile) keeps the
// previous valid configuration of the object, so sessions stay up.
func TestKeepLastGood(t *testing.T) {
	good := peerObj("p", v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1", BFDProfile: "fast"})
	fast := v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: v1alpha1.BFDProfileSpec{ReceiveInterval: i32(100)}}
	prev := ParseBGP([]v1alpha1.BGPPeer{good}, nil, []v1alpha1.BFDProfile{fast}, nil)
	if len(prev.Invalid) != 0 {
		t.Fatal(prev.Invalid)
	}

	// The profile is deleted: the peer is invalid now, yet keeps its last
	// good configuration including the profile.
	cur := ParseBGP([]v1alpha1.BGPPeer{good}, nil, nil, nil)
	if cur.Invalid["BGPPeer/p"] == nil || !strings.Contains(cur.Invalid["BGPPeer/p"].Error(), `bfdProfile "fast" does not exist`) {
		t.Fatalf("invalid: %v", cur.Invalid)
	}
	cur = cur.KeepLastGood(prev)
	if cur.Peers["p"] == nil || cur.BFDProfiles["fast"] == nil || cur.BFDProfiles["fast"].ReceiveInterval != 100*time.Millisecond {
		t.Fatalf("last good not kept: %+v", cur)
	}

	// A bad edit of the peer keeps the old one.
	bad := good
	bad.Spec.HoldTime = dur(time.Second)
	cur = ParseBGP([]v1alpha1.BGPPeer{bad}, nil, []v1alpha1.BFDProfile{fast}, nil).KeepLastGood(prev)
	if cur.Peers["p"] != prev.Peers["p"] || cur.Invalid["BGPPeer/p"] == nil {
		t.Fatalf("got %+v", cur)
	}

	// Deleted objects are gone, not kept.
	cur = ParseBGP(nil, nil, nil, nil).KeepLastGood(prev)
	if len(cur.Peers) != 0 || len(cur.BFDProfiles) != 0 {
		t.Fatalf("deleted objects kept: %+v", cur)
	}
}
