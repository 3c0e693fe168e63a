package e2e

import (
	"os"
	"testing"

	"github.com/beaconlb/beacon/lab/cli"
	"github.com/beaconlb/beacon/lab/labtest"
)

// cliEnv makes this test binary behave as beacon-lab (TestLabCLI).
const cliEnv = "BEACON_LAB_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(cliEnv) == "1" {
		os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	labtest.RemoveBinaries()
	os.Exit(code)
}
