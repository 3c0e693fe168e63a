// Package kind holds end-to-end tests that run against the kind cluster of
// `make kind-up` (hack/kind): Beacon installed by its Helm chart as users
// install it, an FRR router on the nodes' LAN and a client behind it.
//
// The tests read the KEY=value lines kind-up wrote to
// $XDG_CACHE_HOME/beacon/kind/cluster/env (or the file named by
// BEACON_KIND_ENV) and skip, saying so, when there is no such cluster, so
// that `go test ./...` does not need one. Each test works in its own
// namespace and deletes it when done, also after a failure.
package kind
