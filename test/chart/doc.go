// Package chart tests the Helm chart in charts/beacon: helm lint, golden
// renders of chosen values, install/upgrade/uninstall on a real API server
// with the chart's RBAC checked through ServiceAccount tokens, and (as
// root, in the lab) the real daemons running as the chart's accounts with
// no request denied. Tests need the helm binary that `make testbin` puts
// in $KUBEBUILDER_ASSETS and skip without it (fail with
// BEACON_REQUIRE_ENVTEST=1).
package chart
