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
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "beacon-echo:", err)
		os.Exit(1)
	}
}
