package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Announcement modes.
const (
	ViaL2  = "L2"
	ViaBGP = "BGP"
)

// NodeLabel on a ServiceAnnouncement names the node whose speaker wrote it.
const NodeLabel = "beaconlb.io/node"

// ServiceAnnouncement reports that one node announces addresses of one
// Service. Speakers write them for their own node only (and delete them
// when they stop announcing); users read them:
//
//	kubectl get serviceannouncements -A
//
// In L2 each address has one announcer, and it reports. In BGP every
// eligible node announces (the router spreads flows over them), and only
// the Service's reporters write a ServiceAnnouncement: for each address, the
// first three announcing nodes in an order all speakers agree on (live
// nodes not excluded from load balancers first), so that a Service change
// costs a bounded number of writes whatever the cluster's size.
//
// It lives in the Service's namespace. It is a report, not configuration:
// editing it changes nothing.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=svcann,categories=beacon
// +kubebuilder:printcolumn:name="Service",type=string,JSONPath=".service"
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=".addresses"
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=".node"
// +kubebuilder:printcolumn:name="Via",type=string,JSONPath=".via"
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=".interfaces",priority=1
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=".peers",priority=1
// +kubebuilder:printcolumn:name="Conflicts",type=string,JSONPath=".conflicts[*].address",priority=1
// +kubebuilder:printcolumn:name="Probed",type=string,JSONPath=".probed",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type ServiceAnnouncement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Service is the name of the announced Service (same namespace).
	Service string `json:"service"`
	// Node is the announcing node.
	Node string `json:"node"`
	// Via is L2 or BGP.
	// +kubebuilder:validation:Enum=L2;BGP
	Via string `json:"via"`
	// Addresses are the announced addresses.
	// +listType=atomic
	Addresses []string `json:"addresses"`
	// Interfaces carry the L2 announcements.
	// +listType=atomic
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`
	// Peers are the BGPPeers that receive the BGP announcements.
	// +listType=atomic
	// +optional
	Peers []string `json:"peers,omitempty"`
	// Conflicts are addresses of the Service that a host outside the
	// cluster uses too, as this node found them (L2 only). An address that
	// a probe found in use before it was first announced is not announced
	// and not listed in addresses.
	// +listType=atomic
	// +optional
	Conflicts []AddressConflict `json:"conflicts,omitempty"`
	// Probed are addresses the controller offers the Service that this
	// node probed without announcing them, and no other host answered
	// for (L2 only): no node announces them yet, because no eligible node
	// has a ready endpoint of the Local Service. The controller then
	// writes them into the Service's status.
	// +listType=atomic
	// +optional
	Probed []string `json:"probed,omitempty"`
}

// AddressConflict is an address that another host on the network uses.
type AddressConflict struct {
	// Address in conflict.
	Address string `json:"address"`
	// MAC is the other host's hardware address.
	MAC string `json:"mac"`
	// Interface is where the node saw it.
	Interface string `json:"interface"`
	// Announced is true when the other host claimed the address while
	// this node announced it; the node keeps announcing and defending it.
	// False: a probe found the address in use before it was announced, and
	// the node does not announce it.
	// +optional
	Announced bool `json:"announced,omitempty"`
	// Node is the node that saw it (in IPPool status; a
	// ServiceAnnouncement names its node itself).
	// +optional
	Node string `json:"node,omitempty"`
}

// ServiceAnnouncementList is a list of ServiceAnnouncements.
//
// +kubebuilder:object:root=true
type ServiceAnnouncementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceAnnouncement `json:"items"`
}
