package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestGroups: routes of one peer with equal attributes share a statement;
// different attributes or peers do not.
func TestGroups(t *testing.T) {
	lp := uint32(200)
	a := Peer{Name: "a", Address: netip.MustParseAddr("192.0.2.1"), Routes: []Route{
		{Prefix: pfx("203.0.113.1/32"), Communities: []Community{std(65000, 1)}},
		{Prefix: pfx("203.0.113.2/32"), Communities: []Community{std(65000, 1)}},
		{Prefix: pfx("203.0.113.3/32")},
		{Prefix: pfx("203.0.113.4/32"), LocalPref: &lp},
	}}
	b := Peer{Name: "b", Address: netip.MustParseAddr("2001:db8::1"), Routes: []Route{
		{Prefix: pfx("2001:db8:203::1/128"), Communities: []Community{large(1, 2, 3)}},
	}}
	got := renderPolicy(groups(normalize(Desired{Peers: []Peer{b, a}})))
	want := "192.0.2.1||[203.0.113.3/32]\n" +
		"192.0.2.1|65000:1 |[203.0.113.1/32 203.0.113.2/32]\n" +
		"192.0.2.1|lp=200|[203.0.113.4/32]\n" +
		"2001:db8::1|1:2:3 |[2001:db8:203::1/128]\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSamePeer(t *testing.T) {
	base := Peer{Name: "a", Address: netip.MustParseAddr("192.0.2.1"), MyASN: 1, PeerASN: 2, HoldTime: 9 * time.Second,
		BFD: &BFD{Receive: time.Second, Transmit: time.Second, Multiplier: 3}}
	for _, tc := range []struct {
		name string
		mut  func(*Peer)
		same bool
	}{
		{"routes only", func(p *Peer) { p.Routes = []Route{{Prefix: pfx("203.0.113.1/32")}} }, true},
		{"equal BFD copy", func(p *Peer) { p.BFD = &BFD{Receive: time.Second, Transmit: time.Second, Multiplier: 3} }, true},
		{"password", func(p *Peer) { p.Password = "x" }, false},
		{"BFD off", func(p *Peer) { p.BFD = nil }, false},
		{"BFD timers", func(p *Peer) { p.BFD = &BFD{Receive: time.Second, Transmit: time.Second, Multiplier: 4} }, false},
		{"hold time", func(p *Peer) { p.HoldTime = 3 * time.Second }, false},
		{"graceful restart", func(p *Peer) { p.GracefulRestart = true }, false},
	} {
		p := base
		tc.mut(&p)
		if got := samePeer(base, p); got != tc.same {
			t.Errorf("%s: samePeer = %v", tc.name, got)
		}
	}
}

func TestStuckMessage(t *testing.T) {
	p := Peer{Address: netip.MustParseAddr("192.0.2.1"), Port: 179, MyASN: 64512, PeerASN: 64500}
	if m := stuckMessage(p, Session{State: "Active"}, 12*time.Second); !strings.Contains(m, "no BGP connection for 12s") || strings.Contains(m, "passwordSecretRef") {
		t.Errorf("no password: %q", m)
	}
	p.Password = "hunter2"
	m := stuckMessage(p, Session{State: "Connect"}, 12*time.Second)
	if !strings.Contains(m, "TCP MD5") || strings.Contains(m, "hunter2") {
		t.Errorf("password: %q", m)
	}
	if m := stuckMessage(p, Session{State: "OpenSent"}, time.Minute); !strings.Contains(m, "check ASNs (myASN 64512, peerASN 64500)") {
		t.Errorf("open: %q", m)
	}
}
