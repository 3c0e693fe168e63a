// Package drain decides where a node stands in a graceful drain: the pure
// part of taking a node out of service without dropping connections.
//
// A node drains while it carries the label
// node.kubernetes.io/exclude-from-external-load-balancers. That label is
// the trigger because every speaker sees the same Node object, so L2
// elections agree on it without talking to each other, and because it says
// what the operator means. A cordon alone is not a drain: nodes are cordoned
// for reasons that have nothing to do with traffic (scheduling, autoscalers,
// single-node clusters), and taking them out of load balancing surprised
// users elsewhere. kubectl drain is a cordon plus evictions of the
// workload's pods; it does not evict DaemonSet pods, so the speaker keeps
// running and nothing on the Node object tells it apart from a cordon.
// Evictions change Beacon's work through the endpoints they remove (for
// externalTrafficPolicy Local), not through the node.
//
// In BGP mode a draining node first re-advertises its routes with the
// GRACEFUL_SHUTDOWN community (RFC 8326, 65535:0), so that routers prefer the
// other nodes while this one still forwards, and withdraws them after a
// delay. In L2 mode the addresses move at once, and the flow hand-off keeps
// the connections the node holds (package handoff).
package drain
