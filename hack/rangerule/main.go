// Command rangerule prints the CEL rule that checks an IPPool range's first
// address is not after its last. CEL can neither order IP addresses nor map
// over split() results within the CRD cost budget, so the rule spells out a
// fixed-width expansion of both ends: IPv4 as a number from its four octets,
// IPv6 as 32 hex digits from its eight groups (with "::" filled in), which
// compare as strings. IPv6 written with an embedded IPv4 part is left to the
// controller's own check.
//
// The output is pasted into the XValidation marker of AddressBlock in
// config/v1alpha1; a test there fails when the two differ.
package main

import (
	"fmt"

	"github.com/beaconlb/beacon/config/v1alpha1/rangerule"
)

func main() { fmt.Println(rangerule.Rule()) }
