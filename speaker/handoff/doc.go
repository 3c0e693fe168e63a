// Package handoff keeps connections alive when an address moves between
// nodes while both nodes are up: a graceful speaker stop (SIGTERM, a
// rolling update) or a speaker coming back and taking its addresses back.
//
// Clients switch to the new announcer at once (gratuitous ARP / unsolicited
// NA), including for TCP connections the old node is serving. The new node
// has no conntrack entry for those flows, so its dataplane would pick the
// next segment up as a new flow and send it to some endpoint, which answers
// with a reset. Instead, for a window after taking an address over, the new
// node routes TCP segments that are not SYNs and belong to no flow it knows
// back to the previous announcer, whose kernel still holds their state (the
// speaker process stops, the node's conntrack and nftables rules stay).
//
// Tracker is the pure part: which addresses are handed off, to which node,
// until when. Kernel programs it: an nftables table (beacon-handoff) that
// marks such segments, keeps them out of every later dstnat chain with an
// identity DNAT and carries the mark on their conntrack entry, and a policy
// rule (fwmark → a routing table holding one route per address via the
// previous announcer). The table is written the way the dataplane's are:
// Ruleset builds it in nodeport's model (golden tests in testdata/), and a
// nodeport Applier scoped to this one table programs it.
//
// Only a node that is alive or left gracefully receives handed-off flows:
// one that vanished (link cut, power loss) cannot serve them, and a reset
// tells the client sooner than a black hole would.
package handoff
