// Command beacon-echo is the lab pods' echo server (see package lab/echo).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/beaconlb/beacon/lab/echo"
)

func main() {
	var s echo.Server
	flag.StringVar(&s.Pod, "pod", "", "pod name to report")
	flag.StringVar(&s.Node, "node", "", "node name to report")
	flag.IntVar(&s.Port, "port", 5000, "TCP (HTTP) and UDP port")
	get := flag.String("get", "", "do not serve: GET this URL (TLS unverified), print the status and body, exit 1 unless 200")
	lookup := flag.String("lookup", "", "do not serve: resolve this name, print its addresses")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	run := s.Run
	switch {
	case *get != "":
		run = func(ctx context.Context) error { return echo.Fetch(ctx, os.Stdout, *get) }
	case *lookup != "":
		run = func(ctx context.Context) error { return echo.Resolve(ctx, os.Stdout, *lookup) }
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "beacon-echo:", err)
		os.Exit(1)
	}
}
