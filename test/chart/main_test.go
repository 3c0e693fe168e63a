package chart

import (
	"testing"

	"github.com/beaconlb/beacon/internal/testenv"
)

// env is the package's API server (envtest), nil without the binaries.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }
