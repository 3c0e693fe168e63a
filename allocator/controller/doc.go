// Package controller is Beacon's allocator controller: a level-triggered
// reconcile loop that turns LoadBalancer Services into calls on the
// cloud-provider LoadBalancer (package allocator/provider), writes
// status.loadBalancer with the cleanup finalizer and the
// allocated-from-pool annotation in one patch, records Events, and keeps
// IPPool status and the Accepted/ResolvedRefs conditions of the L2 and BGP
// configuration kinds current.
//
// Why not the upstream cloud-provider service controller: it ignores
// Services that set a loadBalancerClass, writes four times per Service,
// backs plain errors off for up to five minutes, and its leader election
// takes about 15 s to fail over. This loop writes once per Service, retries
// Services waiting for an address as soon as one frees up, and is meant to
// run under a short Lease (package leader).
//
// Start-up order is what keeps addresses stable across restarts and
// failovers: caches are filled from a fresh list after leadership is won,
// every address found in Service status is restored into the allocator, and
// only then do workers start handing out new addresses.
package controller
