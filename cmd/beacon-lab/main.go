// Command beacon-lab builds, inspects and removes the network-namespace lab
// (package lab): beacon-lab up|down|status|exec. See package lab/cli.
package main

import (
	"os"

	"github.com/beaconlb/beacon/lab/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
