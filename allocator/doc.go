// Package allocator is Beacon's pure IP allocation core: it decides which
// addresses of which IPPools each LoadBalancer Service holds. It has no
// Kubernetes client, goroutines, global state, metrics or logging: plain data
// in, plain data out. An Allocator is not safe for concurrent use; the caller
// serialises calls (holds a lock).
//
// # Pools
//
// SetPools takes the model from config.ParsePools, whose pools have
// non-overlapping effective Ranges. Each pool and family keeps its free
// addresses as a B-tree of intervals, so the lowest free address, taking one
// and giving one back cost O(log n) even for an IPv6 /64; counts saturate at
// MaxInt64. With avoidBuggyIPs, IPv4 addresses ending in .0 or .255 are left
// out of the free intervals and of Total.
//
// # Automatic choice
//
// A pool is eligible for a Service's family when it has addresses of the
// family, serves the Service (namespaces, namespaceSelector,
// serviceSelector), and either has autoAssign or is the pool the Service
// names (beaconlb.io/pool; then only that pool). Pools are tried in
// config.Pools.Sorted order and the lowest free address of the first pool
// that has one is taken, so choice is deterministic. With a sharing key, the
// lowest address already held under that key in an eligible pool and
// compatible with its holders comes first.
//
// # Requested addresses
//
// A requested address must lie in a pool's effective Ranges, in the named
// pool if any; its pool must serve the Service (a namespace cannot use a
// pool it is not admitted to, autoAssign or not), and it must not be one
// that avoidBuggyIPs skips (refused with ReasonIPNotInPool: the pool never
// hands such an address out, however asked). If other Services hold it, the
// sharing rules must allow one more. Families without a requested address
// are chosen automatically.
//
// # Sharing
//
// Several Services may hold one address iff all have the same non-empty
// sharing key, their (protocol, port) sets are disjoint, and, if any of them
// is externalTrafficPolicy Local, all have the same pod selector. A holder
// of a shared address without a sharing key on either side is
// ReasonIPInUse; both sharing but disagreeing is ReasonSharingConflict.
//
// # Allocate: keeping, replacing, failing
//
// Allocate is atomic: on error nothing changes, so the caller keeps the
// Service's old status. Errors about the request itself (malformed, unknown
// pool, a requested address that cannot be had) always fail the call, also
// for PreferDualStack. Capacity and eligibility problems of automatically
// chosen families (ReasonPoolExhausted, ReasonNoPool) fail the call when the
// Service requires all its families or gets no family at all; otherwise they
// become Result.Warnings.
//
// An address the key holds is kept while it is still valid: right family,
// in a pool that serves the Service (autoAssign does not matter, so turning
// it off never renumbers running Services), in the named pool if any, equal
// to the requested address if any, not skipped by avoidBuggyIPs, and still
// shareable with its other holders under the request's current ports and
// selector. An address that is no longer valid is replaced only once a valid
// one is held (make before break). When no replacement is available the old
// address is kept, listed in Result.Stale with a Warning saying why, and
// keeps the sharing attributes it was valid with; a later Allocate moves it
// once space exists. Stale addresses count as obtained. Families no longer
// wanted are released; a newly wanted family is added to what is kept.
//
// # Restore and orphans
//
// Restore records what a Service already holds (from its status, at
// start-up) without checking pools, so addresses that left every pool stay
// held ("orphans"): Owners lists them, no pool counts them, and Release just
// drops them. An address that moved to another pool is counted there.
// Restore only refuses malformed input and records that would break the
// sharing rules with what is already recorded.
package allocator
