package scale

import (
	"os"
	"testing"

	"github.com/beaconlb/beacon/internal/testenv"
)

// TestMain deletes the binaries testenv.BuildOnce built.
func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBuilt()
	os.Exit(code)
}
