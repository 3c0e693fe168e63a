// Command beacon-migrate converts MetalLB configuration into Beacon's; see
// package migrate/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/beaconlb/beacon/migrate/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
