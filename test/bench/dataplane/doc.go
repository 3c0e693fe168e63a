// Package dataplane is `make bench-dataplane`: Beacon's nftables dataplane
// and kube-proxy v1.36.3 in nftables mode, side by side in the lab, fed the
// same Services and EndpointSlices from the lab's API server.
//
//   - Beacon's nodeport Syncer runs in this process, programming the
//     namespace of lab node1 (informers, KubeConverter, Builder, Applier:
//     the speaker's path); kube-proxy runs as a process in node2's namespace
//     with the lab's kubeconfig and --hostname-override=node2.
//   - "Programmed" is the end of the sync that wrote the last rule: Beacon's
//     beacon_nodeport_sync_duration_seconds and kube-proxy's
//     kubeproxy_sync_{full,partial}_proxy_rules_duration_seconds (IPv4),
//     both observed after the kernel accepted the transaction. Neither
//     includes the initial List of the informers.
//   - Throughput: from client-lan, to a sink in pod n1-p1 through a
//     LoadBalancer IP that Beacon forwards on node1, against the same sink
//     reached directly, alternating, in the same run.
//
// The test only runs with BEACON_BENCH=dataplane (it takes minutes and holds
// the machine's one lab).
package dataplane
