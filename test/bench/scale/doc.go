// Package scale is `make bench-scale`: memory, API server load and busy
// nodes at cluster sizes the other lab tests do not reach, each printed next
// to a baseline measured in the same run.
//
//   - Memory: beacon-speaker --dataplane=full against kube-proxy v1.36.3
//     (nftables mode) on the same API server holding N Services × 5
//     endpoints; beacon-speaker --dataplane=external and off announcing N
//     addresses; beacon-controller holding N LoadBalancer Services. RSS
//     is printed with its anonymous part (RssAnon) and the Go heap in
//     use; BEACON_SPEAKER_BASELINE=path measures another speaker build
//     the same way, after the new one, in every mode.
//
//   - API load: every request the speakers send goes through a counting
//     proxy: watches, requests per minute at steady state, and the requests
//     one Service change causes, per node, in L2 mode.
//
//   - Stopping with reports pending (TestBenchStopPending, run by hand
//     with BEACON_BENCH=stop, SCALE_STOP_SERVICES and
//     BEACON_SPEAKER_BASELINE): how long one speaker announcing N
//     addresses takes to exit on SIGTERM while most of its reports are
//     unwritten.
//
// The controller's backlog against the bare status-patch baseline is
// test/bench/alloc with -services, and the speakers' API load in BGP mode
// (eight speakers) is TestAgentsAPILoadBGP in speaker/agent; the Makefile
// runs all three.
package scale
