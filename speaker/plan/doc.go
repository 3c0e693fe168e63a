// Package plan is the speaker's decision core on one node, without IO: from
// what the informers hold (Services, EndpointSlices, Nodes, IPPools,
// L2Advertisements, BGPPeers, BGPAdvertisements, BFDProfiles), which
// speakers are alive, this node's interfaces, and what the previous sync
// did (State), Make returns everything the node must do next (Result):
//
//   - L2: which node announces each address (package announce elects it),
//     the addresses each of this node's ARP/NDP responders answers for, and
//     the hand-off claims for addresses taken over from another node;
//   - BGP: the sessions and routes to hand to the BGP speaker (package
//     bgpplan plans them) and the BGPSessionState rows to report;
//   - a drain (the node's phase is a Fact, kept in time by the agent with
//     package drain): routes with GRACEFUL_SHUTDOWN, then withdrawn, the
//     draining column of the BGPSessionState rows, and the hand-off of a
//     draining peer's moved flows back to it (drain.go);
//   - the ServiceAnnouncement reports and the Events: Announcing and
//     Withdrawn on Services, Draining, Drained and DrainEnded on this
//     node's Node, warnings on invalid configuration objects.
//
// So "which node announces 198.51.100.200, and which Events say so" is
// answered here: l2.go elects and announces, events.go words the Events,
// withdraw.go explains each withdrawal. Package agent gathers Facts from
// its caches and the kernel, calls Make once per sync, and applies the
// Result (responders, hand-off, gobgp, API writes).
//
// # API writes that do not grow with the cluster
//
// What a speaker writes must not grow with the number of nodes for each
// Service change. In L2 one node announces an address and reports it. In
// BGP every eligible node announces, so reports come from reporters only
// (reporters.go): per address, the first BGPReporters announcing nodes on
// a hash ring of node names, live and not excluded ones first, computed
// alike by every speaker; they also record the Service's Announcing and
// Withdrawn Events. One new Service then costs BGPReporters
// ServiceAnnouncements and as many Events in the whole cluster, and
// `kubectl get serviceannouncements -A` still shows, per address, nodes
// that announce it and to which peers; the controller's
// beacon_addresses_unannounced and probe settling need only one. One
// aggregated object per node was the other choice: each Service change
// would still update every node's object, and 10,000 Services would not
// fit in one. Until the member layer settles, reporters are unknown and
// new Events wait. The agent bounds the rest: Events on Services per sync
// (BoundServiceEvents), and BGPSessionState prefix counts, which change on
// every node with each Service, written at most every few minutes unless
// they reach or leave zero.
//
// The only thing Make reads from outside its arguments is a BGPPeer's
// password Secret, through Facts.Secret, because which Secrets matter is
// known only once the BGP configuration is planned.
package plan
