// Package badinput throws malformed and hostile input at a real API server
// (envtest) with a real beacon-controller process, and checks that each
// input is rejected by the API server or reported on the object with a clear
// message, that the controller keeps running, and that existing allocations
// never change. It also tests the chart's externalIPs admission policy
// (CVE-2020-8554) end to end.
package badinput
