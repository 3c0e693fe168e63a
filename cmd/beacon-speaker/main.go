// Command beacon-speaker announces LoadBalancer addresses from one node.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/beaconlb/beacon/speaker/app"
)

func main() {
	var o app.Options
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	klog.InitFlags(fs)
	o.AddFlags(fs)
	_ = fs.Parse(os.Args[1:])

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := klog.NewKlogr().WithName("beacon-speaker")
	if err := app.Run(ctx, log, o); err != nil {
		log.Error(err, "exiting")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}
