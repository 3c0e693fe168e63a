package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,5}:[0-9]{1,5}$') ? self.split(':').all(x, int(x) <= 65535) : (self.matches('^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && self.split(':').all(x, int(x) <= 4294967295))",messageExpression="'\"' + self + '\" is neither a standard community (0-65535:0-65535) nor a large community (0-4294967295:0-4294967295:0-4294967295)'"

// Community is a BGP community: standard "65000:100" (two 16-bit numbers)
// or large "65000:1:2" (three 32-bit numbers, RFC 8092).
//
// +kubebuilder:validation:MinLength=3
// +kubebuilder:validation:MaxLength=32
type Community string

// BGPAdvertisementSpec says which pools are announced by BGP, to which
// peers, from which nodes, with which attributes.
//
// Pools are selected by ipPools and ipPoolSelector together (their union);
// when both are empty, the advertisement selects every pool.
type BGPAdvertisementSpec struct {
	// IPPools names pools to announce. Names of pools that do not exist
	// (yet) are allowed; the speaker reports them.
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	IPPools []string `json:"ipPools,omitempty"`

	// IPPoolSelector selects pools to announce by their labels, in addition
	// to those named in ipPools.
	// +optional
	IPPoolSelector *metav1.LabelSelector `json:"ipPoolSelector,omitempty"`

	// Peers names the BGPPeers that receive the announcements; empty means
	// every peer of the node.
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`

	// NodeSelector limits the nodes that announce. Unset selects every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// Communities are attached to the announced routes: standard
	// ("65000:100") and large ("65000:1:2") may be mixed.
	// +kubebuilder:validation:MaxItems=32
	// +listType=set
	// +optional
	Communities []Community `json:"communities,omitempty"`

	// LocalPref sets LOCAL_PREF on routes sent to iBGP peers. eBGP peers
	// never receive it (RFC 4271); the speaker reports a localPref that
	// would only reach eBGP peers.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	LocalPref *int64 `json:"localPref,omitempty"`

	// AggregationLength is the prefix length announced for IPv4 addresses:
	// 32 (default) announces each address; shorter announces the covering
	// prefix of each address instead (for example 24), once.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	// +optional
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is the same for IPv6 addresses; default 128.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	// +optional
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`
}

// BGPAdvertisement makes Beacon announce the addresses of some pools by BGP:
// each selected node announces them to its selected peers with itself as
// next hop, so the routers spread traffic over the nodes by ECMP.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=beacon
// +kubebuilder:printcolumn:name="IPPools",type=string,JSONPath=".spec.ipPools"
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=".spec.peers"
// +kubebuilder:printcolumn:name="Communities",type=string,JSONPath=".spec.communities"
// +kubebuilder:printcolumn:name="Pool Selector",type=string,JSONPath=".spec.ipPoolSelector",priority=1
// +kubebuilder:printcolumn:name="Node Selector",type=string,JSONPath=".spec.nodeSelector",priority=1
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].reason"
// +kubebuilder:printcolumn:name="Refs Resolved",type=string,JSONPath=".status.conditions[?(@.type=='ResolvedRefs')].status"
// +kubebuilder:printcolumn:name="Refs Reason",type=string,JSONPath=".status.conditions[?(@.type=='ResolvedRefs')].reason"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec BGPAdvertisementSpec `json:"spec,omitempty"`
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisements.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}
