// Package election chooses, for each LoadBalancer address announced on the
// LAN, the one node that answers ARP/NDP for it.
//
// Every speaker evaluates the same pure function over the same inputs (the
// address and the set of eligible nodes), so they agree without talking to
// each other or to the API server: there are no per-Service leases.
//
// The choice is rendezvous (highest-random-weight) hashing: each eligible
// node gets the score Score(ip, node) and the highest score wins, ties going
// to the smaller name. Two properties follow:
//   - stability: an address moves only when its announcer stops being
//     eligible (or a new node outscores it); removing one node moves only
//     that node's addresses, each to its own runner-up;
//   - spread: announcers are spread evenly over nodes, because scores are
//     independent per (address, node) pair.
//
// The score is part of the wire contract between speakers of different
// versions during a rolling upgrade: it is fmix64 (MurmurHash3's 64-bit
// finaliser) of FNV-1a-64 over the 16-byte form of the address (IPv4 as
// IPv4-mapped IPv6) followed by the node name. Do not change it without a
// migration plan, or two versions will announce the same address.
package election
