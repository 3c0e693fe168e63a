package v1alpha1

import (
	"os"
	"strings"
	"testing"

	"github.com/beaconlb/beacon/config/v1alpha1/rangerule"
)

// The range-order rule is too long to edit by hand: it must be exactly what
// hack/rangerule prints.
func TestRangeRuleMarkerIsGenerated(t *testing.T) {
	src, err := os.ReadFile("ippool_types.go")
	if err != nil {
		t.Fatal(err)
	}
	want := `rule="` + rangerule.Rule() + `",messageExpression="'range \"' + self + '\" has its first address after its last'"`
	if !strings.Contains(string(src), want) {
		t.Fatal("the range-order XValidation marker differs from `go run ./hack/rangerule`; paste its output into ippool_types.go")
	}
}
