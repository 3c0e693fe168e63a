// Command beacon-controller hands out LoadBalancer addresses from IPPools.
package main

import (
	"context"

	"github.com/go-logr/logr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/internal/cli"
)

func main() {
	var o app.Options
	cli.Main("beacon-controller", o.AddFlags, func(ctx context.Context, log logr.Logger) error { return app.Run(ctx, log, o) })
}
