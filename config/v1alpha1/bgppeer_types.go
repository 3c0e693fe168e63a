package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ASN is a BGP autonomous system number (4-byte ASNs allowed; 0 and
// AS_TRANS 23456 are reserved).
//
// +kubebuilder:validation:Minimum=1
// +kubebuilder:validation:Maximum=4294967295
// +kubebuilder:validation:XValidation:rule="self != 23456",message="AS 23456 is AS_TRANS, reserved for 2-byte compatibility"
type ASN int64

// SecretKeyRef names a key of a Secret in the speaker's own namespace (the
// namespace the beacon-speaker DaemonSet runs in).
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Key in the Secret's data; default "password".
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Key string `json:"key,omitempty"`
}

// GracefulRestart configures BGP graceful restart (RFC 4724) towards a
// peer: when the speaker restarts, the router keeps its routes (and keeps
// forwarding) for up to restartTime while the session comes back.
type GracefulRestart struct {
	// Enabled turns graceful restart on. The router must enable it too
	// (FRR: "bgp graceful-restart").
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// RestartTime is how long the router keeps the routes of a restarting
	// speaker; default 120s, at most 4095s. A speaker that never comes back
	// keeps its routes this long.
	// +optional
	RestartTime *metav1.Duration `json:"restartTime,omitempty"`
}

// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || duration(self.holdTime) == duration('0s') || duration(self.holdTime) >= duration('3s')",message="holdTime must be 0 or at least 3s"
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || duration(self.holdTime) <= duration('65535s')",message="holdTime must be at most 65535s"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || duration(self.keepaliveTime) >= duration('0s')",message="keepaliveTime must not be negative"
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTime) || duration(self.keepaliveTime) < duration(has(self.holdTime) ? self.holdTime : '90s') || (has(self.holdTime) && duration(self.holdTime) == duration('0s'))",message="keepaliveTime must be shorter than holdTime"
// +kubebuilder:validation:XValidation:rule="!has(self.gracefulRestart) || !has(self.gracefulRestart.restartTime) || (duration(self.gracefulRestart.restartTime) >= duration('1s') && duration(self.gracefulRestart.restartTime) <= duration('4095s'))",message="gracefulRestart.restartTime must be between 1s and 4095s"

// BGPPeerSpec describes a BGP session from the selected nodes to a router.
//
// +kubebuilder:validation:XValidation:rule="!has(self.sourceAddress) || !isIP(self.sourceAddress) || !isIP(self.peerAddress) || ip(self.sourceAddress).family() == ip(self.peerAddress).family()",message="sourceAddress and peerAddress must be of the same family"
type BGPPeerSpec struct {
	// MyASN is the speaker's AS number on this session.
	MyASN ASN `json:"myASN"`
	// PeerASN is the router's AS number. Equal to myASN makes the session
	// iBGP, otherwise eBGP.
	PeerASN ASN `json:"peerASN"`
	// PeerAddress is the router's IPv4 or IPv6 address.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="peerAddress must be an IP address"
	PeerAddress string `json:"peerAddress"`
	// PeerPort is the router's TCP port; default 179. The speaker only
	// dials out: it never listens for BGP.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	PeerPort int32 `json:"peerPort,omitempty"`
	// SourceAddress, if set, is the local address the session is opened
	// from; it must exist on the node. Unset lets the kernel choose.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="sourceAddress must be an IP address"
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`
	// RouterID is the BGP identifier (an IPv4 address). Default: the node's
	// first IPv4 InternalIP. All peers of one node must agree on it.
	// +kubebuilder:validation:MaxLength=15
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="routerID must be an IPv4 address"
	// +optional
	RouterID string `json:"routerID,omitempty"`
	// HoldTime is the BGP hold time: 0 (no keepalives) or at least 3s;
	// default 90s.
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`
	// KeepaliveTime is the time between keepalives; default a third of the
	// hold time. Must be shorter than holdTime.
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`
	// EBGPMultiHop allows an eBGP router that is not directly connected
	// (TTL 255).
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`
	// PasswordSecretRef enables TCP MD5 (RFC 2385) with the password held
	// in this Secret, in the speaker's namespace. A mismatch leaves the
	// session down; the speaker's BGPSessionState report says so.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
	// NodeSelector limits the nodes that open this session. Unset selects
	// every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// GracefulRestart configures graceful restart.
	// +optional
	GracefulRestart *GracefulRestart `json:"gracefulRestart,omitempty"`
	// BFDProfile names a BFDProfile: BFD then watches the path to the
	// router and drops the session within milliseconds of a failure.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`
}

// BGPPeer makes the selected nodes' speakers open a BGP session to one
// router and announce LoadBalancer addresses to it (see BGPAdvertisement).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bgpp,categories=beacon
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=".spec.peerAddress"
// +kubebuilder:printcolumn:name="My ASN",type=integer,JSONPath=".spec.myASN"
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=".spec.peerASN"
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=".spec.bfdProfile"
// +kubebuilder:printcolumn:name="Node Selector",type=string,JSONPath=".spec.nodeSelector",priority=1
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].reason"
// +kubebuilder:printcolumn:name="Refs Resolved",type=string,JSONPath=".status.conditions[?(@.type=='ResolvedRefs')].status"
// +kubebuilder:printcolumn:name="Refs Reason",type=string,JSONPath=".status.conditions[?(@.type=='ResolvedRefs')].reason"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BGPPeerSpec `json:"spec"`
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeers.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}
