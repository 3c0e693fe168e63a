// Command beacon-speaker announces LoadBalancer addresses from one node and
// forwards Service traffic on it.
package main

import (
	"context"

	"github.com/go-logr/logr"

	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/speaker/app"
)

func main() {
	var o app.Options
	cli.Main("beacon-speaker", o.AddFlags, func(ctx context.Context, log logr.Logger) error { return app.Run(ctx, log, o) })
}
