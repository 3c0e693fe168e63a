// Package metallb converts MetalLB configuration into Beacon's: the
// metallb.io CRDs (IPAddressPool, L2Advertisement, BGPAdvertisement,
// BGPPeer, BFDProfile, Community, the deprecated AddressPool), the legacy
// ConfigMap format (the
// "config" key with address-pools, peers, bgp-communities and
// bfd-profiles) and Services' metallb.universe.tf/* and metallb.io/*
// annotations.
//
// Convert is pure: it takes decoded objects and returns Beacon objects plus
// Findings, one for every field or object it could not carry over exactly,
// so nothing is dropped silently. The MetalLB shapes are local structs
// holding only the fields of MetalLB's documented API; a field this package
// does not know is reported as a Finding too.
//
// Services are returned as partial objects holding only their name,
// namespace and the Beacon annotations, meant for a server-side apply
// (kubectl apply --server-side): that adds the annotations and leaves the
// rest of each Service, including its MetalLB annotations, untouched.
package metallb
