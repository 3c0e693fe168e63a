package plan

import (
	"net"
	"net/netip"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/announce"
	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
)

// Facts is what one sync knows. New inputs go here as fields.
type Facts struct {
	// Node is this node's name.
	Node string
	// LoadBalancerClass as the controller's: "" = Services without a class.
	LoadBalancerClass string

	Services         []*v1.Service
	EndpointSlices   []*discoveryv1.EndpointSlice
	Nodes            []*v1.Node
	Pools            []v1alpha1.IPPool
	L2Advertisements []v1alpha1.L2Advertisement
	// BGP is nil when BGP mode is off.
	BGP *BGPObjects

	Members Members
	// Links are this node's interfaces; LinksErr is set when they could not
	// be listed.
	Links    []Link
	LinksErr error
	// Namespace is the speaker's own namespace, where BGPPeer password
	// Secrets live ("" when unknown).
	Namespace string
	// Secret reads a password Secret of Namespace by name.
	Secret func(name string) Secret

	// Drain is where this node stands in a drain; the agent keeps its
	// clock (package drain).
	Drain Drain
	// Now is the time of the sync, and HandoffWindow how long a hand-off
	// lasts: a node that started draining within it gets its flows back.
	Now           time.Time
	HandoffWindow time.Duration
	// BGPReporters is how many nodes report each BGP address; 0 means the
	// constant BGPReporters (a benchmark sets every node, its baseline).
	BGPReporters int
}

// Drain is this node's drain phase, and how long its GracefulShutdown
// phase lasts (--drain-delay).
type Drain struct {
	Phase drain.Phase
	Delay time.Duration
}

// BGPObjects are the BGP configuration objects.
type BGPObjects struct {
	Peers          []v1alpha1.BGPPeer
	Advertisements []v1alpha1.BGPAdvertisement
	BFDProfiles    []v1alpha1.BFDProfile
}

// Members is what the member layer says about the other speakers.
type Members struct {
	// Alive and Left (stopped gracefully) by node name. This node is
	// always alive.
	Alive, Left map[string]bool
	// Settled is false until peers have had a chance to be heard.
	Settled bool
	// Rejoining is true while this node, back from a stall its peers took
	// for its death, waits for them to know it lives: it is not eligible
	// for any L2 address meanwhile.
	Rejoining bool
	// NewPeer is true when a node appeared that was never heard from.
	NewPeer bool
	// Reported holds what each node's speaker says in its heartbeats; a
	// node missing from a non-nil map reports nothing (an older speaker),
	// a nil map means no node reports anything.
	Reported map[string]Reported
}

// Reported is what a speaker says about itself in its heartbeats.
type Reported struct {
	// NoCarrier are its interfaces without carrier.
	NoCarrier []election.Link
	// Claims are the sticky addresses it announces (failback: Never).
	Claims []netip.Addr
}

// Link is one of this node's network interfaces.
type Link struct {
	Name string
	// Index and MAC tell an interface from one made again under its name.
	Index    int
	MAC      net.HardwareAddr
	Up       bool // operational state not down
	Loopback bool
	Prefixes []netip.Prefix // connected prefixes (address and mask)
}

// Secret is a Secret as read: its data, or why it could not be read (an
// API error: not found, forbidden, ...).
type Secret struct {
	Data map[string][]byte
	Err  error
}

// State is what the previous sync did: the planner's memory between syncs,
// owned by the agent's sync loop. The zero State is a fresh process.
type State struct {
	// Planned is true once an L2 plan was applied by this process.
	Planned bool
	// Decisions is the last L2 plan (every node's addresses).
	Decisions []announce.Decision
	// Alive is the liveness each node had in the last L2 plan, and Left
	// the nodes that had stopped gracefully then.
	Alive, Left map[string]bool
	// L2 maps each address this node announced to its interfaces.
	L2 map[netip.Addr][]string
	// BGP holds the (Service, address) pairs sent to BGP peers, each
	// true when this node reports it (see BGPReporters).
	BGP map[ServiceIP]bool
	// BGPConfig is the last BGP configuration, so that an object turning
	// invalid keeps its last valid version.
	BGPConfig *config.BGP
	// Passwords is the last password that resolved, per BGPPeer.
	Passwords map[string]string
	// Warned is the last problem sent as an Event, per "Kind/name".
	Warned map[string]string
	// Drain is this node's drain phase at the last sync.
	Drain drain.Phase
	// Draining maps the other nodes seen draining to when this process
	// first saw them (zero: draining already at its first L2 plan); nil
	// before that plan.
	Draining map[string]time.Time
}

// ServiceIP is one address of one Service ("namespace/name").
type ServiceIP struct {
	Service string
	IP      netip.Addr
}
