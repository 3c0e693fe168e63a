// Package bgp runs this node's BGP sessions: the only package that imports
// gobgp (v4). Callers describe the whole desired state (peers and the routes
// each peer receives) with Apply; Run converges the embedded gobgp server
// on the latest desired state and reports session states.
//
// gobgp never listens: it only dials out (ListenPort -1), with a short
// connect retry. Per-peer routes and attributes are one global export
// policy: a statement per (peer, attribute set) matching a neighbor set and
// a prefix set, adding communities and local preference; anything else is
// rejected. Changing what an established peer receives is a soft reset
// out, never a session reset.
package bgp

import (
	"net/netip"
	"time"
)

// Desired is everything the speaker should do.
type Desired struct {
	// ASN and RouterID are the global settings; changing either restarts
	// every session. An invalid RouterID (or no peers) stops BGP.
	ASN      uint32
	RouterID netip.Addr
	Peers    []Peer
}

// Peer is one session and what it receives.
type Peer struct {
	// Name identifies the peer in status and metrics.
	Name    string
	Address netip.Addr
	Port    uint16
	MyASN   uint32
	PeerASN uint32
	// Source is the local address to dial from; zero lets the kernel pick.
	Source netip.Addr
	// HoldTime 0 disables keepalives.
	HoldTime, Keepalive time.Duration
	EBGPMultiHop        bool
	// Password enables TCP MD5. It is never logged.
	Password        string
	GracefulRestart bool
	RestartTime     time.Duration
	// BFD is nil without BFD.
	BFD    *BFD
	Routes []Route
}

// BFD timers.
type BFD struct {
	Receive, Transmit time.Duration
	Multiplier        uint8
}

// Route is a prefix sent with the node's own session address as next hop.
type Route struct {
	Prefix      netip.Prefix
	Communities []Community
	// LocalPref is nil when unset (iBGP peers then get gobgp's 100).
	LocalPref *uint32
}

// Community is a standard (Large false, value in Value[0]) or large BGP
// community.
type Community struct {
	Large bool
	Value [3]uint32
}

// Session is the observed state of one peer.
type Session struct {
	Name    string
	Address netip.Addr
	// State is a BGP FSM state name: Idle, Connect, Active, OpenSent,
	// OpenConfirm, Established.
	State string
	// Since is when State was first seen.
	Since time.Time
	// BFD is Up, Down, Init, AdminDown, or "" without BFD.
	BFD string
	// Prefixes counts the prefixes advertised to the peer.
	Prefixes int
	// UpdatesSent counts UPDATE messages sent on the current session.
	UpdatesSent uint64
	// Message explains a session that does not come up.
	Message string
}

// Established reports whether the session is up.
func (s Session) Established() bool { return s.State == "Established" }
