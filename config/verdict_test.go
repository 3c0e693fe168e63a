package config

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

func bfdObj(name string, spec v1alpha1.BFDProfileSpec) v1alpha1.BFDProfile {
	return v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

func bgpAdObj(name string, spec v1alpha1.BGPAdvertisementSpec) v1alpha1.BGPAdvertisement {
	return v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

// show renders a check as "OK/Reason: message" ("-" for nil).
func show(c *Check) string {
	if c == nil {
		return "-"
	}
	return fmt.Sprintf("%t/%s: %s", c.OK, c.Reason, c.Message)
}

func TestJudge(t *testing.T) {
	peer := v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1"}
	with := func(f func(*v1alpha1.BGPPeerSpec)) v1alpha1.BGPPeerSpec { s := peer; f(&s); return s }
	withPW := with(func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "pw"} })
	report := func(peer, node, pw string) v1alpha1.BGPSessionState {
		return v1alpha1.BGPSessionState{Peer: peer, Node: node, PasswordSecret: pw}
	}
	const (
		valid    = "true/Valid: valid; the speakers use it"
		resolved = "true/Resolved: every named object exists and is valid"
		kept     = "speakers that ran an earlier valid version keep running it, others ignore it"
	)
	for _, tc := range []struct {
		name     string
		l2       []v1alpha1.L2Advertisement
		peers    []v1alpha1.BGPPeer
		ads      []v1alpha1.BGPAdvertisement
		profiles []v1alpha1.BFDProfile
		sessions []v1alpha1.BGPSessionState
		key      string
		accepted string
		refs     string
	}{
		{name: "l2 all pools", l2: []v1alpha1.L2Advertisement{l2ad("a")},
			key: "L2Advertisement/a", accepted: valid, refs: resolved},
		{name: "l2 named pool exists", l2: []v1alpha1.L2Advertisement{l2ad("a", pools("lan", "wan"))},
			key: "L2Advertisement/a", accepted: valid, refs: resolved},
		{name: "l2 missing pool", l2: []v1alpha1.L2Advertisement{l2ad("a", pools("lan", "gone"))},
			key: "L2Advertisement/a", accepted: valid, refs: `false/MissingReference: pool "gone" does not exist or is invalid`},
		{name: "l2 invalid", l2: []v1alpha1.L2Advertisement{l2ad("a", ifaces("has space"))},
			key: "L2Advertisement/a", refs: "-",
			accepted: `false/Invalid: interfaces: interface name "has space" contains '/', ':' or whitespace; the speakers ignore it`},
		{name: "peer valid", peers: []v1alpha1.BGPPeer{peerObj("p", peer)},
			key: "BGPPeer/p", accepted: valid, refs: resolved},
		{name: "peer with password: Secret not checked",
			peers: []v1alpha1.BGPPeer{peerObj("p", with(func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "pw"} }))},
			key:   "BGPPeer/p", accepted: valid,
			refs: resolved + "; password Secret pw is checked by the speakers (see BGPSessionState)"},
		{name: "peer with password: no report complains",
			peers:    []v1alpha1.BGPPeer{peerObj("p", withPW)},
			sessions: []v1alpha1.BGPSessionState{report("p", "n1", ""), report("p", "n2", "")},
			key:      "BGPPeer/p", accepted: valid,
			refs: resolved + "; no speaker reports a problem with password Secret pw (2 reports)"},
		{name: "peer with password: Secret missing on one node",
			peers:    []v1alpha1.BGPPeer{peerObj("p", withPW)},
			sessions: []v1alpha1.BGPSessionState{report("p", "n1", ""), report("p", "n2", v1alpha1.PasswordSecretMissing)},
			key:      "BGPPeer/p", accepted: valid,
			refs: "false/SecretNotFound: password Secret pw: not found on node n2 (see BGPSessionState)"},
		{name: "peer with password: problems differ by node, the most basic gives the reason",
			peers: []v1alpha1.BGPPeer{peerObj("p", withPW)},
			sessions: []v1alpha1.BGPSessionState{report("p", "n3", v1alpha1.PasswordSecretMissing), report("p", "n2", v1alpha1.PasswordSecretNoKey),
				report("p", "n1", v1alpha1.PasswordSecretMissing), report("p", "n4", v1alpha1.PasswordSecretUnreadable), report("p", "n5", "")},
			key: "BGPPeer/p", accepted: valid,
			refs: `false/SecretNotFound: password Secret pw: not found on nodes n1, n3; no key "password" on node n2; unreadable on node n4 (see BGPSessionState)`},
		{name: "peer with password: no key",
			peers:    []v1alpha1.BGPPeer{peerObj("p", with(func(s *v1alpha1.BGPPeerSpec) { s.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "pw", Key: "md5"} }))},
			sessions: []v1alpha1.BGPSessionState{report("p", "n1", v1alpha1.PasswordSecretNoKey)},
			key:      "BGPPeer/p", accepted: valid,
			refs: `false/SecretKeyNotFound: password Secret pw: no key "md5" on node n1 (see BGPSessionState)`},
		{name: "peer with password: unreadable",
			peers:    []v1alpha1.BGPPeer{peerObj("p", withPW)},
			sessions: []v1alpha1.BGPSessionState{report("p", "n1", v1alpha1.PasswordSecretUnreadable)},
			key:      "BGPPeer/p", accepted: valid,
			refs: "false/SecretUnreadable: password Secret pw: unreadable on node n1 (see BGPSessionState)"},
		{name: "peer with password: many nodes, names bounded",
			peers: []v1alpha1.BGPPeer{peerObj("p", withPW)},
			sessions: []v1alpha1.BGPSessionState{report("p", "n7", "Missing"), report("p", "n6", "Missing"), report("p", "n5", "Missing"),
				report("p", "n4", "Missing"), report("p", "n3", "Missing"), report("p", "n2", "Missing"), report("p", "n1", "Missing")},
			key: "BGPPeer/p", accepted: valid,
			refs: "false/SecretNotFound: password Secret pw: not found on nodes n1, n2, n3, n4, n5 and 2 more (see BGPSessionState)"},
		{name: "peer with password: another peer's report does not count",
			peers:    []v1alpha1.BGPPeer{peerObj("p", withPW), peerObj("q", withPW)},
			sessions: []v1alpha1.BGPSessionState{report("q", "n1", v1alpha1.PasswordSecretMissing)},
			key:      "BGPPeer/p", accepted: valid,
			refs: resolved + "; password Secret pw is checked by the speakers (see BGPSessionState)"},
		{name: "peer without password: a report left from an earlier spec does not count",
			peers:    []v1alpha1.BGPPeer{peerObj("p", peer)},
			sessions: []v1alpha1.BGPSessionState{report("p", "n1", v1alpha1.PasswordSecretMissing)},
			key:      "BGPPeer/p", accepted: valid, refs: resolved},
		{name: "peer with BFD profile", profiles: []v1alpha1.BFDProfile{bfdObj("fast", v1alpha1.BFDProfileSpec{})},
			peers: []v1alpha1.BGPPeer{peerObj("p", with(func(s *v1alpha1.BGPPeerSpec) { s.BFDProfile = "fast" }))},
			key:   "BGPPeer/p", accepted: valid, refs: resolved},
		{name: "peer missing BFD profile",
			peers:    []v1alpha1.BGPPeer{peerObj("p", with(func(s *v1alpha1.BGPPeerSpec) { s.BFDProfile = "fast" }))},
			key:      "BGPPeer/p",
			accepted: `false/MissingReference: bfdProfile "fast" does not exist; ` + kept,
			refs:     `false/MissingReference: bfdProfile "fast" does not exist`},
		{name: "peer invalid BFD profile", profiles: []v1alpha1.BFDProfile{bfdObj("fast", v1alpha1.BFDProfileSpec{EchoMode: yes()})},
			peers:    []v1alpha1.BGPPeer{peerObj("p", with(func(s *v1alpha1.BGPPeerSpec) { s.BFDProfile = "fast" }))},
			key:      "BGPPeer/p",
			accepted: `false/InvalidReference: bfdProfile "fast" is invalid; ` + kept,
			refs:     `false/InvalidReference: bfdProfile "fast" is invalid`},
		{name: "peer invalid itself", peers: []v1alpha1.BGPPeer{peerObj("p", with(func(s *v1alpha1.BGPPeerSpec) { s.PeerAddress = "nope" }))},
			key: "BGPPeer/p", refs: "-",
			accepted: `false/Invalid: peerAddress: "nope" is not an IP address; ` + kept},
		{name: "bfd profile valid", profiles: []v1alpha1.BFDProfile{bfdObj("fast", v1alpha1.BFDProfileSpec{})},
			key: "BFDProfile/fast", accepted: valid, refs: "-"},
		{name: "bfd profile invalid", profiles: []v1alpha1.BFDProfile{bfdObj("fast", v1alpha1.BFDProfileSpec{EchoMode: yes()})},
			key: "BFDProfile/fast", refs: "-", accepted: "false/Invalid: echoMode is not supported (gobgp's BFD has no echo function); " + kept},
		{name: "advertisement resolved", peers: []v1alpha1.BGPPeer{peerObj("p", peer)},
			ads: []v1alpha1.BGPAdvertisement{bgpAdObj("a", v1alpha1.BGPAdvertisementSpec{IPPools: []string{"wan"}, Peers: []string{"p"}})},
			key: "BGPAdvertisement/a", accepted: valid, refs: resolved},
		{name: "advertisement missing pool and peer",
			ads: []v1alpha1.BGPAdvertisement{bgpAdObj("a", v1alpha1.BGPAdvertisementSpec{IPPools: []string{"wan", "gone"}, Peers: []string{"p"}})},
			key: "BGPAdvertisement/a", accepted: valid,
			refs: `false/MissingReference: peer "p" does not exist or is invalid; pool "gone" does not exist or is invalid`},
		{name: "advertisement naming an invalid peer",
			peers: []v1alpha1.BGPPeer{peerObj("p", with(func(s *v1alpha1.BGPPeerSpec) { s.MyASN = 0 }))},
			ads:   []v1alpha1.BGPAdvertisement{bgpAdObj("a", v1alpha1.BGPAdvertisementSpec{Peers: []string{"p"}})},
			key:   "BGPAdvertisement/a", accepted: valid,
			refs: `false/MissingReference: peer "p" does not exist or is invalid`},
		{name: "advertisement invalid", ads: []v1alpha1.BGPAdvertisement{bgpAdObj("a", v1alpha1.BGPAdvertisementSpec{Communities: []v1alpha1.Community{"x"}})},
			key: "BGPAdvertisement/a", refs: "-",
			accepted: `false/Invalid: communities: community "x": want a:b (standard) or a:b:c (large); ` + kept},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := testPools()
			got := Judge(ParseL2Advertisements(tc.l2, ps), ParseBGP(tc.peers, tc.ads, tc.profiles, ps), tc.sessions)
			if want := len(tc.l2) + len(tc.peers) + len(tc.ads) + len(tc.profiles); len(got) != want {
				t.Errorf("%d verdicts for %d objects: %v", len(got), want, got)
			}
			v, ok := got[tc.key]
			if !ok {
				t.Fatalf("no verdict for %s in %v", tc.key, got)
			}
			if s := show(&v.Accepted); s != tc.accepted {
				t.Errorf("Accepted:\n got %s\nwant %s", s, tc.accepted)
			}
			if s := show(v.ResolvedRefs); s != tc.refs {
				t.Errorf("ResolvedRefs:\n got %s\nwant %s", s, tc.refs)
			}
		})
	}
}
