// Package chaos runs Beacon through failures and reports counts (requests
// sent, failed, addresses duplicated, addresses changed) as lines starting
// with "CHAOS" (see `make chaos`):
//
//   - controller churn: two beacon-controller processes against a real API
//     server, 1,000 Services created and deleted in waves while the leader is
//     killed with SIGKILL every few seconds (TestControllerChurn);
//   - API server outage: the API server stopped for 60 s while clients on
//     the LAN and behind the router send requests to an L2 and a BGP
//     Service (TestAPIServerOutage, in the lab);
//   - speaker and link faults: the announcing speaker SIGKILLed and
//     restarted, and its LAN cable pulled, under traffic
//     (TestSpeakerRestartsAndLinkFlaps, in the lab).
package chaos
