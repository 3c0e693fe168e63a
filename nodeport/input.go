package nodeport

import (
	"fmt"
	"net/netip"
	"time"
)

// Mode says which destinations the dataplane forwards.
type Mode string

const (
	// ModeFull forwards ClusterIPs, NodePorts, LoadBalancer ingress IPs and
	// externalIPs: the node has no other Service proxy. The empty Mode means
	// ModeFull.
	ModeFull Mode = "full"
	// ModeExternal forwards only LoadBalancer ingress IPs and externalIPs,
	// next to another proxy (kube-proxy) that owns ClusterIPs and NodePorts.
	ModeExternal Mode = "external"
	// ModeOff programs nothing and removes Beacon's tables.
	ModeOff Mode = "off"
)

// ParseMode accepts "full", "external" and "off".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeFull, ModeExternal, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("nodeport mode %q: want %s, %s or %s", s, ModeFull, ModeExternal, ModeOff)
}

// Protocol is an IP protocol number Services use.
type Protocol uint8

// Protocols a Service port may use.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case SCTP:
		return "sctp"
	}
	return fmt.Sprintf("proto-%d", uint8(p))
}

// DefaultMasqueradeMark is the packet-mark bit that asks the postrouting
// hook to masquerade; the same bit kube-proxy uses, with the same meaning.
const DefaultMasqueradeMark uint32 = 0x4000

// Input is everything Build needs, as plain data.
type Input struct {
	Mode Mode
	// NodeName decides which endpoints are local (Endpoint.NodeName).
	NodeName string
	// NodeAddresses are the destinations on which NodePorts are served.
	// With none, NodePorts are not served.
	NodeAddresses []netip.Addr
	// PodCIDRs, when known, let pods that reach an externalTrafficPolicy
	// Local Service through its external address use any endpoint, as
	// kube-proxy's detect-local does. Optional.
	PodCIDRs []netip.Prefix
	// MasqueradeMark is the mark bit requesting masquerade; zero means
	// DefaultMasqueradeMark.
	MasqueradeMark uint32
	// AffinityLimit is the number of clients remembered per endpoint of a
	// session-affinity Service (the size of its dynamic set); clients
	// beyond it are forwarded without stickiness. Each set costs the
	// kernel a hash table sized for the limit, zeroed at creation (about
	// 0.5 ms per 8,192 entries). Zero means DefaultAffinityLimit.
	AffinityLimit uint32
	// Shards is the number of tables per family the Services are spread
	// over (by a hash of namespace/name): a commit re-validates only the
	// tables it changes. Zero means DefaultShards; at most MaxShards.
	Shards   int
	Services []Service
}

// Service is one Kubernetes Service with its endpoints, already reduced to
// what the dataplane needs. Addresses of both families may be mixed; each
// family is programmed in its own table.
type Service struct {
	Namespace, Name string
	// ClusterIPs are forwarded in ModeFull; NodePorts are served in the
	// families of the ClusterIPs.
	ClusterIPs []netip.Addr
	// LoadBalancerIPs are the status.loadBalancer.ingress IPs.
	LoadBalancerIPs []netip.Addr
	// ExternalIPs are the spec.externalIPs the caller allows (those an IPPool
	// with allowExternalIPs covers).
	ExternalIPs []netip.Addr
	// SourceRanges is loadBalancerSourceRanges: when set, LoadBalancer-IP
	// traffic from other sources is dropped. A family with no range of its
	// own drops all LoadBalancer-IP traffic.
	SourceRanges []netip.Prefix
	// ExternalLocal is externalTrafficPolicy Local: NodePort, LoadBalancer
	// and external-IP traffic goes only to local endpoints, unmasqueraded.
	ExternalLocal bool
	// InternalLocal is internalTrafficPolicy Local for ClusterIP traffic.
	InternalLocal bool
	// AffinityTimeout > 0 is sessionAffinity ClientIP with that timeout.
	AffinityTimeout     time.Duration
	HealthCheckNodePort uint16
	Ports               []Port
	Endpoints           []Endpoint
}

// Port is one Service port.
type Port struct {
	Name     string
	Protocol Protocol
	Port     uint16
	NodePort uint16
}

// Endpoint is one endpoint address from the Service's EndpointSlices.
type Endpoint struct {
	Addr     netip.Addr
	NodeName string
	// Ready, Serving and Terminating are the EndpointSlice conditions (with
	// unset Ready and Serving meaning true, as the API says).
	Ready, Serving, Terminating bool
	// Ports are the slice's ports: a Service port uses the one with its
	// name and protocol, which carries the resolved target port.
	Ports []EndpointPort
}

// EndpointPort is one port of an EndpointSlice.
type EndpointPort struct {
	Name     string
	Protocol Protocol
	Port     uint16
}

func (in *Input) mark() uint32 {
	if in.MasqueradeMark == 0 {
		return DefaultMasqueradeMark
	}
	return in.MasqueradeMark
}

func (in *Input) mode() Mode {
	if in.Mode == "" {
		return ModeFull
	}
	return in.Mode
}

func (in *Input) affinityLimit() uint32 {
	if in.AffinityLimit == 0 {
		return DefaultAffinityLimit
	}
	return in.AffinityLimit
}

func (in *Input) shards() int {
	if in.Shards <= 0 {
		return DefaultShards
	}
	return min(in.Shards, MaxShards)
}
