package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGP session states as reported in BGPSessionState.state (the BGP FSM states
// of RFC 4271, plus Configuring while the speaker sets the peer up).
const (
	SessionIdle        = "Idle"
	SessionConnect     = "Connect"
	SessionActive      = "Active"
	SessionOpenSent    = "OpenSent"
	SessionOpenConfirm = "OpenConfirm"
	SessionEstablished = "Established"
	SessionConfiguring = "Configuring"
)

// Why a speaker cannot use a BGPPeer's password Secret, as reported in
// BGPSessionState.passwordSecret.
const (
	PasswordSecretMissing    = "Missing"
	PasswordSecretNoKey      = "NoKey"
	PasswordSecretUnreadable = "Unreadable"
)

// Drain phases of a node, as reported in BGPSessionState.draining.
const (
	// DrainingGracefulShutdown: the node carries the label
	// node.kubernetes.io/exclude-from-external-load-balancers and still sends
	// its routes, with the GRACEFUL_SHUTDOWN community (65535:0), until
	// the speaker's drain delay ends.
	DrainingGracefulShutdown = "GracefulShutdown"
	// DrainingWithdrawn: the node is excluded and its routes are withdrawn.
	DrainingWithdrawn = "Withdrawn"
)

// BGPSessionState reports one node's BGP session with one BGPPeer. The speaker
// of that node writes it (name "<peer>-<node>", label beaconlb.io/node) and
// deletes it when the session is no longer configured; users read it:
//
//	kubectl get bgpsessionstates
//
// It is a report, not configuration: editing it changes nothing.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpss,categories=beacon
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=".node"
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=".peer"
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=".peerAddress"
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=".state"
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=".bfdState"
// +kubebuilder:printcolumn:name="Prefixes",type=integer,JSONPath=".prefixes"
// +kubebuilder:printcolumn:name="Draining",type=string,JSONPath=".draining"
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=".message"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type BGPSessionState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Node is the node whose speaker holds the session.
	Node string `json:"node"`
	// Peer is the BGPPeer's name.
	Peer string `json:"peer"`
	// PeerAddress is the router's address.
	PeerAddress string `json:"peerAddress"`
	// State is the BGP FSM state (Established when up).
	State string `json:"state"`
	// BFDState is Up, Down, Init or AdminDown; empty without BFD.
	// +optional
	BFDState string `json:"bfdState,omitempty"`
	// Prefixes counts the prefixes announced to the peer. A change of the
	// count alone is written within 5 minutes (every node's count changes
	// with each Service); one to or from zero, or with any other field, at
	// once.
	Prefixes int32 `json:"prefixes"`
	// Message explains a session that is not Established (for example a
	// suspected TCP MD5 password mismatch) or a configuration problem.
	// +optional
	Message string `json:"message,omitempty"`
	// PasswordSecret says why the speaker cannot use the peer's password
	// Secret: Missing (not found), NoKey (no such key, or an empty value)
	// or Unreadable (any other error, such as no right to read it). Empty
	// when the peer has no password or the speaker read it; the controller
	// folds it into the BGPPeer's ResolvedRefs condition.
	// +kubebuilder:validation:Enum=Missing;NoKey;Unreadable
	// +optional
	PasswordSecret string `json:"passwordSecret,omitempty"`
	// Since is when the session entered its current state.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// Draining is the node's drain phase: GracefulShutdown while it
	// re-advertises its routes with the GRACEFUL_SHUTDOWN community before
	// withdrawing them, Withdrawn once they are withdrawn; empty when the
	// node is in service.
	// +kubebuilder:validation:Enum=GracefulShutdown;Withdrawn
	// +optional
	Draining string `json:"draining,omitempty"`
}

// BGPSessionStateList is a list of BGPSessions.
//
// +kubebuilder:object:root=true
type BGPSessionStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPSessionState `json:"items"`
}
