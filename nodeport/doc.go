// Package nodeport is the node's Service dataplane: it forwards ClusterIPs,
// NodePorts, LoadBalancer ingress IPs and externalIPs to ready endpoints with
// nftables, one instance per node (it runs inside beacon-speaker; the lab
// has no kube-proxy).
//
// The package is a pure core with a thin IO shell:
//
//   - Build turns plain data (Input: Services with their endpoints, the node
//     name and addresses, the Mode; ServicesFromKube adapts API objects)
//     into a Ruleset, a deterministic model of
//     the tables, chains, rules, sets and verdict maps Beacon wants. The model
//     renders as nft-like text (golden tests) and can be traced: the tests'
//     nodeporttest.Trace runs a synthetic packet through it and reports the
//     possible verdicts, so the forwarding semantics are tested without a
//     kernel. Services are spread
//     over shard tables so that a commit re-validates only the tables it
//     changes. A Builder gives the same result as Build but rebuilds only
//     the Services whose input changed (KubeConverter does the same for the
//     conversion from API objects).
//   - Applier writes a Ruleset through a Batch, one nftables transaction per
//     sync: a full rebuild the first time and after any error, otherwise
//     only the difference (changed service chains and the dispatch-map
//     elements that changed). It also deletes stale UDP conntrack entries
//     for removed endpoints. KernelApplier is the netlink implementation
//     (google/nftables for marshalling, its own batch sender). An
//     Applier's Scope says which tables it owns: the speaker's hand-off
//     table (inet beacon-handoff) is written through the same model and
//     Applier, with a scope of its own.
//   - Syncer is the level-triggered, rate-limited loop around a Builder and
//     the Applier: callers MarkDirty on any change; Run owns the goroutine.
//   - HealthServer answers kube-proxy-compatible health checks on the
//     healthCheckNodePort of externalTrafficPolicy Local Services.
//
// README.md in this directory lists the tables, chains, hooks, priorities
// and marks, and how a packet flows through them.
package nodeport
