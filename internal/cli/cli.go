// Package cli is the common body of Beacon's daemons: flags (with klog's),
// a logger, and a context that ends on SIGINT or SIGTERM.
package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"github.com/beaconlb/beacon/internal/version"
)

// Main parses flags into what addFlags registered, runs run until it
// returns or a signal arrives, and exits non-zero on error.
func Main(name string, addFlags func(*flag.FlagSet), run func(context.Context, logr.Logger) error) {
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	klog.InitFlags(fs)
	addFlags(fs)
	printVersion := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if *printVersion {
		fmt.Println(version.Get().String(name))
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	log := klog.NewKlogr().WithName(name)
	if limit, err := SetMemoryLimit(); err != nil {
		log.Error(err, "no soft memory limit")
	} else if limit > 0 {
		log.Info("soft memory limit from the container's", "bytes", limit)
	}
	err := run(ctx, log)
	stop()
	if err != nil {
		log.Error(err, "exiting")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}
