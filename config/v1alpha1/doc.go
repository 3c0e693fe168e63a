// Package v1alpha1 holds the beaconlb.io/v1alpha1 API: the custom resources
// users write to configure Beacon. All kinds are cluster-scoped.
//
// Single-object rules are enforced by the API server through CEL validation
// generated from the markers here; rules that span objects (overlapping pools)
// are checked by the controller and reported as conditions.
//
// +kubebuilder:object:generate=true
// +groupName=beaconlb.io
package v1alpha1
