package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ConfigStatus is the status the controller writes on L2Advertisements,
// BGPPeers, BGPAdvertisements and BFDProfiles.
type ConfigStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Accepted (the speakers use the object; False with the
	// reason Invalid, MissingReference or InvalidReference when they ignore
	// it) and, on kinds that name other objects, ResolvedRefs (every named
	// pool, peer or BFD profile exists and is valid; on a BGPPeer also its
	// password Secret, as the speakers report it: False with the reason
	// SecretNotFound, SecretKeyNotFound or SecretUnreadable).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of configuration objects.
const (
	ConditionAccepted     = "Accepted"
	ConditionResolvedRefs = "ResolvedRefs"
)
