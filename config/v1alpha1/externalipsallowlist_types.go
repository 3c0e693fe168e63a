package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExternalIPsAllowList is the parameter of the chart's externalIPs guard (a
// ValidatingAdmissionPolicy against CVE-2020-8554): the CIDRs that cover
// exactly the addresses of the pools with allowExternalIPs. The controller
// writes the one object the policy binding names (beacon-externalips) and
// re-creates it if it is deleted; users read it:
//
//	kubectl get externalipsallowlists
//
// It is a report, not configuration: edits are overwritten. The guard takes
// its parameter from a Beacon kind rather than a ConfigMap because
// kube-apiserver stops its ConfigMap parameter informer for good once no
// policy binding uses ConfigMap parameters, as after an uninstall, and a
// later install then has every Service write refused until it restarts.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=eipal,categories=beacon
// +kubebuilder:printcolumn:name="CIDRs",type=string,JSONPath=".cidrs"
// +kubebuilder:printcolumn:name="Pools",type=string,JSONPath=".pools"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type ExternalIPsAllowList struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// CIDRs Services may use in spec.externalIPs, IPv4 first. Ranges are
	// written as CIDRs because CEL can test CIDR membership but cannot
	// order addresses. Empty: no pool allows externalIPs.
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:MaxLength=43
	// +listType=atomic
	// +optional
	CIDRs []string `json:"cidrs,omitempty"`
	// Pools names the pools the CIDRs come from, for messages and humans.
	// +kubebuilder:validation:MaxItems=4096
	// +kubebuilder:validation:items:MaxLength=253
	// +listType=atomic
	// +optional
	Pools []string `json:"pools,omitempty"`
}

// ExternalIPsAllowListList is a list of ExternalIPsAllowLists.
//
// +kubebuilder:object:root=true
type ExternalIPsAllowListList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExternalIPsAllowList `json:"items"`
}
