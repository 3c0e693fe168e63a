// Package member tells each speaker, within a few hundred milliseconds,
// which other speakers are alive, without Node status or Leases (both take
// tens of seconds to notice a dead node).
//
// # Protocol
//
// Each speaker sends a small UDP heartbeat every Interval on a fixed port
// (7946). A peer it watches is alive while its last heartbeat is younger
// than DeadAfter. On a clean shutdown a speaker sends a "leave" message to
// every peer, and receivers mark it dead at once, so a SIGTERM hand-over
// costs one packet's latency rather than DeadAfter. Each message carries
// the sender's incarnation (its start time) and a sequence number, so
// duplicated, reordered or stale packets from an earlier process are
// ignored. With a shared Key, messages carry an HMAC-SHA256 tag and
// unauthenticated ones are dropped.
//
// Messages also carry the sender's State: its interfaces without carrier
// and the sticky addresses it claims (see SetNoCarrier, SetClaims). A
// peer's State belongs to its process: a new incarnation starts without
// one.
//
// Who beats whom depends on Config.Watchers; the speaker's default is 3.
//
// # Watchers (wire version 3)
//
// All-to-all heartbeats cost every node n−1 packets sent and as many
// received per Interval: 33,000 packets/s per node at 1,000 nodes with the
// version 2 timing, each with an HMAC. Instead, each node X beats only its
// k watchers: its known peers in the rendezvous order of WatchScore(X, ·),
// down to the k-th that is alive (dead ones ranked above them keep
// getting beats, so they hear from X when they or a partition come back). A beat carries a watch flag; a receiver expects beats every
// Interval only from the peers whose last beat had it, and a former
// watcher gets beats without the flag for DeadAfter, which release it.
// When a watched peer falls silent for DeadAfter, each of its watchers
// sends a "dead" notice naming the peer's incarnation and last sequence
// number to every alive peer that speaks version 3, twice, one Interval
// apart. A peer this node does not watch stays alive until such a notice
// or its leave.
//
// Only the watched node computes its watchers, so speakers need not agree
// on the peer list or the hash: the flag tells each receiver what to
// expect. Watchers were chosen per node rather than per address (the
// announcer's election successors) so that every node keeps a complete
// view of who is alive, which the election of every address and the
// link and claim states need, with a cost independent of the number of
// addresses.
//
// A notice about a running node is answered by the node itself: it
// beats every peer that speaks version 3 at once (at most once per
// Interval), and a notice older than that beat is stale. A watcher that
// hears from a peer it had declared dead, in the same incarnation (after
// a partition or a long stall), sends the peer the notice, so that the
// peer tells everyone else. A node's state change is sent to every peer
// at once and on the next two ticks.
//
// Costs (make bench-member, 2% loss, the defaults k=3, Interval 32 ms,
// DeadAfter 280 ms): each node sends k/Interval = 94 beats/s and
// receives as many on average; the busiest receives about three times
// that, being among the watchers of more nodes. In steady state no node
// sends more than k/Interval; beyond it go greetings of peers that have
// not answered (a start, a new node), older copies to older speakers,
// beats to dead watchers ranked above the live ones (at most 4k names in
// all), two notices to every node per watched peer that dies, and one
// beat to every node per refutation (at most one per Interval). A
// starting node greets every peer and gets one answer from each (see
// Greetings below).
//
// Detection takes DeadAfter after the last beat, plus one packet for the
// nodes told by a notice. A sender's stall cannot be told from silence
// by its watchers; a 100 ms stall swallows about three of the nine beats
// of a DeadAfter window, so five or six more in a row must be lost too for
// a false death (the simulator at 20% loss fits 5–8·p⁶ per stall and
// watcher: 3–5·10⁻¹⁰ at 2%), and without a stall eight (p⁸). The all-to-all
// default of 240 ms with 60 ms beats fails on a 100 ms stall and two
// losses. A failover without a clean stop takes DeadAfter after the last
// beat, the takeover and the client's next request on top: 280 ms keeps it
// within the L2 target (p50 300 ms) with room to spare, where 35/300 ms,
// about as robust to stalls and loss, measured 290 to 311 ms on the kind
// cluster; the shorter interval costs 8 beats/s more per node.
//
// Failure modes: a node whose k watchers all crash within the same
// DeadAfter is not detected by the nodes that do not watch it. The
// fallback is slow and rests on Kubernetes: the speaker passes the nodes
// whose Node is not ready to SetSuspects (the node lifecycle controller
// marks a silent kubelet's Node after its grace period, 40 to 50 s by
// default), and the nodes among a suspect's 4k watcher candidates that do
// not watch it greet it every Interval; without an answer within
// DeadAfter they declare it dead and send notices, as a watcher does.
// They probe it again every ProbeEvery (10 s) while its Node stays not
// ready, in case it dies with its watchers later. The bound is the grace
// period plus DeadAfter and a notice, or ProbeEvery plus DeadAfter for a
// node already not ready. A suspect whose
// speaker runs answers, so the Node status alone never kills a node, and
// a partition from the API server moves nothing. Only if the 4k
// candidates died too does the node stay alive, a candidate for its
// addresses, until its Node object goes; raise Watchers where correlated
// failures of many nodes are likely. A lost state update
// reaches a non-watcher only with the node's next state change or
// restart (each of the three sends is lost with 2% here, 8·10⁻⁶ in all).
//
// # Greetings and mixed versions
//
// A starting version 3 node greets every peer: a version 3 beat with the
// hello flag. The peer answers with a version 3 beat flagged ack, and from
// then on hears from this node only as its watcher, its notices and its
// state changes. A node greets a peer until it answers or greets it in
// turn (which this node answers): a version 3 peer may otherwise still
// think this process unknown, or dead in its previous incarnation.
//
// Version 1 speakers drop version 2 and 3 messages, and version 2 ones
// drop version 3. So from the second greeting on, a peer not heard
// speaking version 3 also gets version 2 and then version 1 beats (version
// 1 only until it was heard speaking version 2, as the version 2 protocol
// did), in that order, every Interval while it is alive: an older speaker
// gets the all-to-all beats it expects, and is watched, as it beats every
// peer. Greetings go every Interval until DeadAfter after the peer was
// first heard, in older versions only, and stop then; an older speaker
// greets this node when it is upgraded. The window runs from hearing the
// peer, not from the first greeting: a version 3 peer whose version 3
// messages were lost and whose older copies arrived is watched as an
// older speaker, yet stops sending as soon as it hears this node's
// greeting, so one of its answers must arrive before its silence counts.
// In a start among thousands, the first greeting may be long past.
// Sending version 3 first also means a newer receiver learns the version
// before the copies, or, when they arrive the other way round, from the
// version 3 beat however late (Table.Receive). The first greeting is
// version 3 alone: a peer of this version answers within a round trip, so
// a new cluster does not start with a round of older beats; an older peer
// hears from a starting node one Interval later.
//
// A silent peer gets greetings every Interval for DeadAfter after the
// first, then every HelloBackoff. A node greets at most HelloBurst silent
// peers per tick, first greetings first, so that starting among 5,000
// peers (about 20 ticks) does not overflow socket buffers with the
// greetings and their answers; it stays unsettled until DeadAfter after
// its last first greeting.
//
// Watchers set to 0 keeps the version 2 protocol: every peer gets a beat
// every Interval (60 ms, DeadAfter 240 ms by default).
//
// # Why not hashicorp/memberlist
//
// memberlist (SWIM) scales to thousands of nodes by probing a few peers per
// round and gossiping suspicion, but its detection time is several probe
// intervals plus a suspicion timeout that grows with the cluster size:
// about 5–10 s with its LAN defaults, and tuning it below a second fights
// its design. It also needs TCP push/pull and brings a large dependency.
// Fixed watchers that beat every Interval detect a failure within
// DeadAfter, and dead notices spread it in one packet.
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
// A stall of DeadAfter or more is forgiven too, but then the node's
// watchers declared it dead and its addresses moved, which its own view
// does not show. It rejoins (Engine.Rejoining): it is eligible for no
// address until the first watcher that hears from it again says it was
// declared dead, or for DeadAfter if none does, and it judges no peer's
// silence meanwhile. beacon_member_rejoins_total counts such stalls.
//
// # Engine and simulator
//
// Engine is the protocol without IO or goroutines: Run feeds it ticks,
// received messages and the caller's settings, and sends what it returns.
// Package sim drives thousands of engines over an in-memory network with a
// virtual clock, loss and stalls; make bench-member prints its figures.
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
// converges without operator action (with watchers, a node heard again
// after it was declared dead is told so and tells everyone). A heartbeat
// port blocked between nodes that still share the LAN is a partition too:
// both nodes announce, each re-claiming the address at most once per l2
// DefendInterval, until the port is opened; speaker logs and the
// beacon_l2_conflicts_total metric show it.
package member
