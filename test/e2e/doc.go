// Package e2e holds end-to-end scenarios on the lab (package lab). They
// need root and KUBEBUILDER_ASSETS, and skip with the reason otherwise
// (fail with BEACON_REQUIRE_ENVTEST=1). For now: lab smoke tests.
package e2e
