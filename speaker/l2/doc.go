// Package l2 announces load-balancer addresses on the local network: it
// answers ARP requests (IPv4) and Neighbor Solicitations (IPv6) for the
// addresses this node was elected to announce, with the interface's MAC,
// and sends gratuitous ARP / unsolicited Neighbor Advertisements when it
// takes an address over, so that clients and switches move to this node
// without waiting for their caches to expire.
//
// # Shape
//
// One Responder serves one interface. Its I/O is a Link: raw sockets behind
// the small Conn and Groups interfaces, opened for real by OpenLink and
// faked by NewFakeLink in tests. New opens and starts nothing; Run owns
// every goroutine and the Link, and stops when its context is done.
// SetAnnounced swaps the answered set atomically at any time.
//
// ARP packets are decoded and built by mdlayher/arp and NDP messages by
// mdlayher/ndp. What those leave out is done here: the Ethernet header (the
// responder reads and writes whole frames on packet sockets shared with
// the kernel, rather than through arp.Client, which would own its socket),
// the check that an ARP packet is IPv4 over Ethernet, and the IPv6 header
// and checksum around NDP. Every parser is fuzzed.
//
// # Why the kernel stays quiet
//
// Announced addresses are not assigned to any interface, so the kernel
// neither answers ARP for them nor sends Neighbor Advertisements (nor does
// it answer when the node's proxy_arp / proxy_ndp are off, their default).
// For IPv6 the responder joins each address's solicited-node multicast
// group, otherwise the NIC would drop the solicitations; the kernel then
// sees solicitations for targets it does not own and ignores them. See
// OpenLink for why NDP uses packet sockets rather than an ICMPv6 socket.
//
// # Gratuitous announcements
//
// When an address becomes announced, the responder sends a round of
// gratuitous packets at each offset of Config.Gratuitous (by default 0,
// 100 ms, 500 ms and 1 s). For IPv4 a round is an ARP Announcement (a
// request with sender = target, RFC 5227) and a gratuitous reply (target
// MAC = sender MAC, which Linux requires to override a recent entry); for
// IPv6 it is an unsolicited advertisement to all nodes with the override
// flag. Neighbours update existing cache entries; by default (arp_accept=0,
// accept_untracked_na=0) they do not create new ones, which is fine since a
// neighbour without an entry asks and gets this node's answer.
//
// When another host claims an announced address (a gratuitous packet or an
// answer with another MAC), the responder counts a conflict and sends a new
// burst, at most once per DefendInterval, so that after a brief
// disagreement between speakers the elected node has the last word.
//
// # Address conflicts
//
// Announce can ask for an address to be probed before it is answered for:
// ARP Probes (RFC 5227: sender address 0.0.0.0) or Duplicate Address
// Detection solicitations (RFC 4862: from ::), Config.ProbeCount of them.
// A host that uses the address answers; the responder then does not
// announce it and lists it in Conflicts with the host's MAC, and probes
// again every ReprobeInterval until nobody answers. A host that claims an
// address while it is announced is probed for at once, and a conflict too
// if it answers; that address stays announced and defended, since it
// already carries traffic.
//
// Every frame a speaker sends carries a mark after its payload, where
// receivers ignore it (the Ethernet padding of ARP, bytes after the IPv6
// payload). A claim with the mark comes from another speaker: an election
// disagreement, never a conflict. Most are hand-overs between live nodes,
// where both answer for a moment until the old announcer stops, so such a
// claim is defended only if this node still announces the address after
// SpeakerClaimGrace; a defence at once would pull neighbours back to the
// node that is letting go. Claims without the mark come from hosts outside
// the cluster and are defended at once.
package l2
