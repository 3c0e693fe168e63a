package lab

// The router (namespace beacon-router, 198.51.100.1 and 2001:db8:100::1 on
// the LAN) is only a LAN station for now. The FRR issue adds, here:
//
//   - a veth from the router to a new client-ext namespace (ClientExt) on
//     ExternalV4/ExternalV6 (192.0.2.0/24, 2001:db8:192::/64), with
//     client-ext's default route via the router;
//   - zebra, bgpd and bfdd started with StartProcess in Netns(Router)
//     (`-N beacon-router`, their own vty/pid directories under StateDir),
//     peering with every node's LAN address;
//   - routes on the nodes back to ExternalV4/ExternalV6 via the router.
//
// Topology.Router already has its stable address and MAC, and the router
// namespace already forwards (routerSysctls).
