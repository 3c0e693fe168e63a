// Command apiserver starts a throw-away etcd and kube-apiserver (envtest,
// with the binaries from `make testbin`) with Beacon's CRDs, writes an admin
// kubeconfig to the path given by -kubeconfig, and runs until interrupted.
// `make demo` uses it; it is a development tool, not part of Beacon.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/beaconlb/beacon/internal/testenv"
)

func main() {
	out := flag.String("write-kubeconfig", "", "where to write the admin kubeconfig")
	flag.Parse()
	if ok, why := testenv.Available(); !ok {
		fmt.Fprintln(os.Stderr, why)
		os.Exit(2)
	}
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start API server:", err)
		os.Exit(1)
	}
	code := 0
	if b, err := os.ReadFile(env.Kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	} else if err := os.WriteFile(*out, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	} else {
		fmt.Println("ready")
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
		<-ctx.Done()
		stop()
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop:", err)
	}
	os.Exit(code)
}
