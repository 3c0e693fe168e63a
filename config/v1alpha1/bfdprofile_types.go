package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BFDProfileSpec holds BFD (RFC 5880) timers. Intervals are milliseconds.
//
// Beacon's BFD (the one in gobgp v4) implements asynchronous mode only:
// echoMode and passiveMode are refused. Its timers are not adapted to the
// peer's: set the router's profile to the same values.
//
// +kubebuilder:validation:XValidation:rule="!has(self.echoMode) || !self.echoMode",message="echoMode is not supported: Beacon's BFD (gobgp) has no echo function"
// +kubebuilder:validation:XValidation:rule="!has(self.passiveMode) || !self.passiveMode",message="passiveMode is not supported: Beacon's BFD (gobgp) always sends control packets"
type BFDProfileSpec struct {
	// ReceiveInterval is the minimum interval at which this end can receive
	// control packets; default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +optional
	ReceiveInterval *int32 `json:"receiveInterval,omitempty"`
	// TransmitInterval is the minimum interval at which this end wants to
	// send control packets; default 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +optional
	TransmitInterval *int32 `json:"transmitInterval,omitempty"`
	// DetectMultiplier is how many intervals without a packet mean the path
	// is down; default 3.
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	// +optional
	DetectMultiplier *int32 `json:"detectMultiplier,omitempty"`
	// EchoMode is not supported (must be false or unset).
	// +optional
	EchoMode *bool `json:"echoMode,omitempty"`
	// PassiveMode is not supported (must be false or unset).
	// +optional
	PassiveMode *bool `json:"passiveMode,omitempty"`
}

// BFDProfile is a set of BFD timers that BGPPeers refer to by name.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=bfdp,categories=beacon
// +kubebuilder:printcolumn:name="Receive",type=integer,JSONPath=".spec.receiveInterval"
// +kubebuilder:printcolumn:name="Transmit",type=integer,JSONPath=".spec.transmitInterval"
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=".spec.detectMultiplier"
// +kubebuilder:printcolumn:name="Accepted",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].status"
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=".status.conditions[?(@.type=='Accepted')].reason"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec BFDProfileSpec `json:"spec,omitempty"`
	// +optional
	Status ConfigStatus `json:"status,omitempty"`
}

// BFDProfileList is a list of BFDProfiles.
//
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}
