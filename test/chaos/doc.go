// Package chaos runs Beacon through failures and reports counts (requests
// sent, failed, addresses duplicated, addresses changed) as lines starting
// with "CHAOS" (see `make chaos`):
//
//   - controller churn: two beacon-controller processes against a real API
//     server, 1,000 Services created and deleted in waves while the leader is
//     killed with SIGKILL every few seconds (TestControllerChurn).
//
// The lab scenarios of issue 7 (API server outage, speaker restarts and link
// flaps under traffic) are listed in docs/security.md as still to do.
package chaos
