// Package member tells each speaker, within a few hundred milliseconds,
// which other speakers are alive, without Node status or Leases (both take
// tens of seconds to notice a dead node).
//
// # Protocol
//
// Every speaker sends a small UDP heartbeat to every known peer every
// Interval (60 ms by default) on a fixed port (7946). A peer is alive while
// its last heartbeat is younger than DeadAfter (240 ms, four beats). On a
// clean shutdown a speaker sends a "leave" message, and receivers mark it
// dead at once, so a SIGTERM hand-over costs one packet's latency rather
// than DeadAfter. Each message carries the sender's incarnation (its start
// time) and a sequence number, so duplicated, reordered or stale packets
// from an earlier process are ignored. With a shared Key, messages carry an
// HMAC-SHA256 tag and unauthenticated ones are dropped.
//
// Version 2 messages also carry the sender's State: its interfaces without
// carrier and the sticky addresses it claims (see SetNoCarrier, SetClaims).
// A peer's State belongs to its process: a new incarnation starts without
// one. Version 1 speakers drop version 2 messages, so each peer gets a
// version 1 beat too until a version 2 message of its current incarnation
// has arrived (State reports ok=false for such a peer).
//
// Peers (node name → address) come from the caller, typically from the
// Node objects' InternalIPs, so there is no discovery protocol to attack.
//
// # Why not hashicorp/memberlist
//
// memberlist (SWIM) scales to thousands of nodes by probing a few peers per
// round and gossiping suspicion, but its detection time is several probe
// intervals plus a suspicion timeout that grows with the cluster size:
// about 5–10 s with its LAN defaults, and tuning it below a second fights
// its design. It also needs TCP push/pull and brings a large dependency.
// Direct all-to-all heartbeats are trivially correct and detect failures
// within DeadAfter; their cost is n−1 packets of about 40 bytes per node per
// Interval, i.e. 1,000 packets/s sent and received per node at 100 nodes,
// which is fine for the clusters a LAN announcer serves. Beyond a few
// hundred nodes, raise Interval (and DeadAfter) or restrict the peer set.
//
// # Busy nodes
//
// A speaker that is not scheduled for a while (a CPU-starved node, a long
// garbage-collection pause) hears nothing meanwhile, yet its peers' beats
// wait in the socket buffer. The loop wakes at least every Interval, so a
// longer gap is a stall of this process: it is not counted against any
// peer's silence (Table.Stalled), and queued beats are read before anyone
// is expired. beacon_member_stalls_total counts such stalls. A stalled
// sender is indistinguishable from a dead one; DeadAfter covers the
// stalls it allows.
//
// # Startup
//
// Until DeadAfter has passed since Run started, silence from a peer does
// not yet mean it is dead: Settled reports false and the caller must not
// take over addresses, or a restarting speaker would briefly claim them all.
//
// # Split brain
//
// The view is local: there is no quorum. If the node network partitions,
// each side sees the other side dead and elects its own announcer for
// every address, so an address can be announced from two nodes at once.
// Clients on each side keep working with their side's announcer; a client
// that can reach both sees duplicate ARP/NDP answers and uses whichever it
// processed last (the last gratuitous announcement wins). When the
// partition heals, heartbeats resume within one Interval and every speaker
// computes the same announcer again: the losers stop answering, the winner
// defends its addresses against the losers' claims, and the speaker
// re-announces when peers come back (l2.Responder.Reannounce), so the LAN
// converges without operator action. A heartbeat port blocked between
// nodes that still share the LAN is a partition too: both nodes announce,
// each re-claiming the address at most once per l2 DefendInterval, until the
// port is opened; speaker logs and the beacon_l2_conflicts_total metric
// show it.
package member
