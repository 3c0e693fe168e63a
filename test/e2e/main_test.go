package e2e

import (
	"os"
	"testing"

	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab/cli"
)

// cliEnv makes this test binary behave as beacon-lab (TestLabCLI).
const cliEnv = "BEACON_LAB_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	testenv.RemoveBuilt()
	os.Exit(code)
}
