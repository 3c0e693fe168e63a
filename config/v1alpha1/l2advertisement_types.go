package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InterfaceName is the name of a network interface as Linux accepts it: 1 to
// 15 bytes, not "." or "..", and no '/', ':' or whitespace.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=15
// +kubebuilder:validation:XValidation:rule="!self.matches('[/:[:space:]]') && self != '.' && self != '..'",messageExpression="'\"' + self + '\" is not a valid interface name (1-15 characters, no \"/\", \":\" or whitespace, not \".\" or \"..\")'"
type InterfaceName string

// L2AdvertisementSpec says which pools are announced on the LAN with ARP
// (IPv4) and NDP (IPv6), from which nodes and through which interfaces.
//
// Pools are selected by ipPools and ipPoolSelector together (their union);
// when both are empty, the advertisement selects every pool.
type L2AdvertisementSpec struct {
	// IPPools names pools to announce. Names of pools that do not exist (yet)
	// are allowed and select nothing until the pool appears.
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

	// NodeSelector limits the nodes that may announce the selected pools'
	// addresses. Unset selects every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// Interfaces names the interfaces that may announce. Empty allows every
	// interface on which the address is on-link (LAN-facing). When several
	// advertisements select the same pool and node, their interfaces add up.
	// +kubebuilder:validation:MaxItems=64
	// +listType=set
	// +optional
	Interfaces []InterfaceName `json:"interfaces,omitempty"`

	// Failback says what happens when the node that announced an address
	// before a failover is eligible again. Immediate (the default) hands the
	// address back to it at once (connections move with the flow hand-off).
	// Never keeps the address on the node that took it over until that node
	// leaves or stops being eligible, so the return causes no second move.
	// When several advertisements select a pool and one of them says Never,
	// the pool's addresses do not fail back.
	// +kubebuilder:validation:Enum=Immediate;Never
	// +kubebuilder:default=Immediate
	// +optional
	Failback Failback `json:"failback,omitempty"`
}

// Failback is when an address returns to its preferred node.
type Failback string

// Failback values.
const (
	FailbackImmediate Failback = "Immediate"
	FailbackNever     Failback = "Never"
)

// L2Advertisement makes Beacon announce the addresses of some pools on the
// local network with ARP and NDP: for each address one eligible node answers
// and sends gratuitous announcements when it takes over.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=l2adv,categories=beacon
// +kubebuilder:printcolumn:name="IPPools",type=string,JSONPath=".spec.ipPools"
// +kubebuilder:printcolumn:name="Pool Selector",type=string,JSONPath=".spec.ipPoolSelector",priority=1
// +kubebuilder:printcolumn:name="Node Selector",type=string,JSONPath=".spec.nodeSelector",priority=1
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=".spec.interfaces"
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].reason"
// +kubebuilder:printcolumn:name="Refs Resolved",type=string,JSONPath=".status.conditions[?(@.type=='ResolvedRefs')].status"
// +kubebuilder:printcolumn:name="Refs Reason",type=string,JSONPath=".status.conditions[?(@.type=='ResolvedRefs')].reason"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec L2AdvertisementSpec `json:"spec,omitempty"`
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisements.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}
