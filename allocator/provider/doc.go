// Package provider is Beacon's k8s.io/cloud-provider implementation: a cloud
// provider named "beacon" whose LoadBalancer hands out addresses from
// IPPools through the pure allocator.
//
// The LoadBalancer is safe for concurrent use. It never talks to the API
// server: callers feed it pools and namespace labels, and write whatever it
// returns. Beacon's own reconcile loop (package allocator/controller) drives
// it, because the upstream service controller ignores Services with a
// loadBalancerClass and backs off for minutes on errors. The registered
// provider (NewHostedCloud) feeds itself in Initialize, so a
// cloud-controller-manager can host it too.
package provider
