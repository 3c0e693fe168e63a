// Package externalips computes the address set that Beacon's externalIPs
// admission guard (a ValidatingAdmissionPolicy, CVE-2020-8554) accepts: the
// effective addresses of every valid IPPool with allowExternalIPs, written as
// CIDRs because CEL can test CIDR membership but cannot compare addresses.
//
// The policy cannot read IPPools directly: with paramRef.selector it is
// evaluated once per matching pool and a request passes only if every
// evaluation passes, which is "inside all pools", not "inside any". So the
// controller keeps one aggregated ConfigMap (see Param) that the policy
// binding names as its single param.
package externalips
