package metallb

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group is MetalLB's API group. BGPPeer is served as v1beta1 and v1beta2;
// both decode into BGPPeerSpec (v1beta1 lacks some fields, and its node
// selectors have the LabelSelector shape).
const Group = "metallb.io"

// IPAddressPoolSpec is MetalLB's IPAddressPool spec.
type IPAddressPoolSpec struct {
	Addresses         []string           `json:"addresses,omitempty"`
	AutoAssign        *bool              `json:"autoAssign,omitempty"`
	AvoidBuggyIPs     bool               `json:"avoidBuggyIPs,omitempty"`
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation is MetalLB's IPAddressPool spec.serviceAllocation.
type ServiceAllocation struct {
	Priority           int                    `json:"priority,omitempty"`
	Namespaces         []string               `json:"namespaces,omitempty"`
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`
	ServiceSelectors   []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// AddressPoolSpec is the spec of MetalLB's deprecated AddressPool kind
// (v1beta1, the CRD form of a legacy ConfigMap pool).
type AddressPoolSpec struct {
	Protocol          string                     `json:"protocol,omitempty"`
	Addresses         []string                   `json:"addresses,omitempty"`
	AutoAssign        *bool                      `json:"autoAssign,omitempty"`
	AvoidBuggyIPs     bool                       `json:"avoidBuggyIPs,omitempty"`
	BGPAdvertisements []AddressPoolAdvertisement `json:"bgpAdvertisements,omitempty"`
}

// AddressPoolAdvertisement is one of an AddressPool's bgpAdvertisements.
type AddressPoolAdvertisement struct {
	AggregationLength   *int32   `json:"aggregationLength,omitempty"`
	AggregationLengthV6 *int32   `json:"aggregationLengthV6,omitempty"`
	LocalPref           uint32   `json:"localPref,omitempty"`
	Communities         []string `json:"communities,omitempty"`
}

// L2AdvertisementSpec is MetalLB's L2Advertisement spec.
type L2AdvertisementSpec struct {
	IPAddressPools         []string               `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Interfaces             []string               `json:"interfaces,omitempty"`
}

// BGPAdvertisementSpec is MetalLB's BGPAdvertisement spec.
type BGPAdvertisementSpec struct {
	AggregationLength      *int32                 `json:"aggregationLength,omitempty"`
	AggregationLengthV6    *int32                 `json:"aggregationLengthV6,omitempty"`
	LocalPref              uint32                 `json:"localPref,omitempty"`
	Communities            []string               `json:"communities,omitempty"`
	IPAddressPools         []string               `json:"ipAddressPools,omitempty"`
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Peers                  []string               `json:"peers,omitempty"`
}

// BGPPeerSpec is MetalLB's BGPPeer spec (v1beta2, a superset of v1beta1).
type BGPPeerSpec struct {
	MyASN                  uint32                 `json:"myASN,omitempty"`
	PeerASN                uint32                 `json:"peerASN,omitempty"`
	DynamicASN             string                 `json:"dynamicASN,omitempty"`
	PeerAddress            string                 `json:"peerAddress,omitempty"`
	Interface              string                 `json:"interface,omitempty"`
	SourceAddress          string                 `json:"sourceAddress,omitempty"`
	PeerPort               uint16                 `json:"peerPort,omitempty"`
	HoldTime               *metav1.Duration       `json:"holdTime,omitempty"`
	KeepaliveTime          *metav1.Duration       `json:"keepaliveTime,omitempty"`
	ConnectTime            *metav1.Duration       `json:"connectTime,omitempty"`
	RouterID               string                 `json:"routerID,omitempty"`
	NodeSelectors          []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	Password               string                 `json:"password,omitempty"`
	PasswordSecret         *SecretReference       `json:"passwordSecret,omitempty"`
	BFDProfile             string                 `json:"bfdProfile,omitempty"`
	EnableGracefulRestart  bool                   `json:"enableGracefulRestart,omitempty"`
	EBGPMultiHop           bool                   `json:"ebgpMultiHop,omitempty"`
	VRF                    string                 `json:"vrf,omitempty"`
	DisableMP              bool                   `json:"disableMP,omitempty"`
	DualStackAddressFamily bool                   `json:"dualStackAddressFamily,omitempty"`
}

// SecretReference names a Secret (MetalLB's passwordSecret).
type SecretReference struct {
	Name      string `json:"name,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// BFDProfileSpec is MetalLB's BFDProfile spec (intervals in milliseconds).
type BFDProfileSpec struct {
	ReceiveInterval  *uint32 `json:"receiveInterval,omitempty"`
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`
	EchoInterval     *uint32 `json:"echoInterval,omitempty"`
	EchoMode         *bool   `json:"echoMode,omitempty"`
	PassiveMode      *bool   `json:"passiveMode,omitempty"`
	MinimumTTL       *uint32 `json:"minimumTtl,omitempty"`
}

// CommunitySpec is MetalLB's Community spec: named community values that
// BGPAdvertisements may use instead of the values.
type CommunitySpec struct {
	Communities []CommunityAlias `json:"communities,omitempty"`
}

// CommunityAlias is one name of a Community object.
type CommunityAlias struct {
	Name  string `json:"name,omitempty"`
	Value string `json:"value,omitempty"`
}

// LegacyConfig is the YAML under the "config" key of MetalLB's ConfigMap
// (releases before 0.13). Its keys are dashed.
type LegacyConfig struct {
	Peers          []LegacyPeer      `json:"peers,omitempty"`
	BGPCommunities map[string]string `json:"bgp-communities,omitempty"`
	AddressPools   []LegacyPool      `json:"address-pools,omitempty"`
	BFDProfiles    []LegacyBFD       `json:"bfd-profiles,omitempty"`
}

// LegacyPeer is one entry of the legacy peers list.
type LegacyPeer struct {
	MyASN         uint32               `json:"my-asn,omitempty"`
	PeerASN       uint32               `json:"peer-asn,omitempty"`
	PeerAddress   string               `json:"peer-address,omitempty"`
	SourceAddress string               `json:"source-address,omitempty"`
	PeerPort      uint16               `json:"peer-port,omitempty"`
	HoldTime      string               `json:"hold-time,omitempty"`
	KeepaliveTime string               `json:"keepalive-time,omitempty"`
	RouterID      string               `json:"router-id,omitempty"`
	NodeSelectors []LegacyNodeSelector `json:"node-selectors,omitempty"`
	Password      string               `json:"password,omitempty"`
	BFDProfile    string               `json:"bfd-profile,omitempty"`
	EBGPMultiHop  bool                 `json:"ebgp-multihop,omitempty"`
}

// LegacyNodeSelector is a label selector with dashed keys.
type LegacyNodeSelector struct {
	MatchLabels      map[string]string         `json:"match-labels,omitempty"`
	MatchExpressions []LegacySelectorCondition `json:"match-expressions,omitempty"`
}

// LegacySelectorCondition is one match-expressions entry.
type LegacySelectorCondition struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// LegacyPool is one entry of the legacy address-pools list.
type LegacyPool struct {
	Name              string                   `json:"name"`
	Protocol          string                   `json:"protocol"`
	Addresses         []string                 `json:"addresses,omitempty"`
	AvoidBuggyIPs     bool                     `json:"avoid-buggy-ips,omitempty"`
	AutoAssign        *bool                    `json:"auto-assign,omitempty"`
	BGPAdvertisements []LegacyBGPAdvertisement `json:"bgp-advertisements,omitempty"`
}

// LegacyBGPAdvertisement is one entry of a legacy pool's bgp-advertisements.
type LegacyBGPAdvertisement struct {
	AggregationLength   *int32   `json:"aggregation-length,omitempty"`
	AggregationLengthV6 *int32   `json:"aggregation-length-v6,omitempty"`
	LocalPref           *uint32  `json:"localpref,omitempty"`
	Communities         []string `json:"communities,omitempty"`
}

// LegacyBFD is one entry of the legacy bfd-profiles list.
type LegacyBFD struct {
	Name             string  `json:"name"`
	ReceiveInterval  *uint32 `json:"receive-interval,omitempty"`
	TransmitInterval *uint32 `json:"transmit-interval,omitempty"`
	DetectMultiplier *uint32 `json:"detect-multiplier,omitempty"`
	EchoInterval     *uint32 `json:"echo-interval,omitempty"`
	EchoMode         *bool   `json:"echo-mode,omitempty"`
	PassiveMode      *bool   `json:"passive-mode,omitempty"`
	MinimumTTL       *uint32 `json:"minimum-ttl,omitempty"`
}
