// Package app wires the allocator controller into a process: flags, API
// clients, Events, metrics and health endpoints, and leader election.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/allocator/externalips"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/leader"
	"github.com/beaconlb/beacon/internal/serve"
)

// Options are the controller's settings; every one has a usable default.
type Options struct {
	Kubeconfig        string
	LoadBalancerClass string
	Workers           int
	QPS               float64
	Burst             int
	MetricsAddr       string
	HealthAddr        string
	LeaderElect       bool
	LeaseNamespace    string
	LeaseName         string
	LeaseIdentity     string
	LeaseDuration     time.Duration
	RenewDeadline     time.Duration
	RetryPeriod       time.Duration
	// ExternalIPsParam is the name of the ExternalIPsAllowList kept for the
	// externalIPs admission policy; empty disables it.
	ExternalIPsParam string
	// ConflictHold: see controller.Options.
	ConflictHold time.Duration
	// ProbeTimeout: see controller.Options.
	ProbeTimeout time.Duration

	// RestConfig, when set, is used instead of Kubeconfig (tests).
	RestConfig *rest.Config
	// Ready, when set, is called once the controller serves as leader.
	Ready func(*controller.Controller)
}

// AddFlags registers the options on fs with their defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = "kube-system"
	}
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster configuration when empty")
	fs.StringVar(&o.LoadBalancerClass, "load-balancer-class", "", "handle only Services of this loadBalancerClass; empty handles Services without a class")
	fs.IntVar(&o.Workers, "workers", 16, "Services reconciled in parallel")
	fs.Float64Var(&o.QPS, "kube-api-qps", 200, "client-side API request rate limit")
	fs.IntVar(&o.Burst, "kube-api-burst", 400, "client-side API request burst")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":9471", "address for /metrics; empty or 0 disables")
	fs.StringVar(&o.HealthAddr, "health-addr", ":9472", "address for /healthz and /readyz; empty or 0 disables")
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run only while holding a Lease (needed with more than one replica)")
	fs.StringVar(&o.LeaseNamespace, "leader-elect-namespace", ns, "namespace of the Lease (default: $POD_NAMESPACE or kube-system)")
	fs.StringVar(&o.LeaseName, "leader-elect-name", "beacon-controller", "name of the Lease")
	fs.StringVar(&o.LeaseIdentity, "leader-elect-identity", os.Getenv("POD_NAME"), "identity in the Lease (default: $POD_NAME, else hostname plus a random suffix)")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 4*time.Second, "how long a Lease holds without renewal")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 3*time.Second, "how long the leader retries renewing before giving up")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 500*time.Millisecond, "how often candidates try to take the Lease")
	fs.DurationVar(&o.ConflictHold, "address-conflict-hold", controller.DefaultConflictHold, "how long an address that speakers found in use by another host stays out of automatic allocation after the last report of it")
	fs.DurationVar(&o.ProbeTimeout, "address-probe-timeout", controller.DefaultProbeTimeout, "how long a new address of a pool announced in L2 waits for a speaker to report it probed (ARP probe, DAD) before it goes into Service status unprobed")
	fs.StringVar(&o.ExternalIPsParam, "externalips-param", externalips.DefaultName, "name of the ExternalIPsAllowList listing the CIDRs of pools with allowExternalIPs, read by the chart's externalIPs admission policy; empty disables")
}

// Run runs the controller until ctx ends. It returns leader.ErrLost if
// leadership is lost, so the process can exit and restart cleanly.
func Run(ctx context.Context, log logr.Logger, o Options) error {
	cs, err := cli.NewClients(o.RestConfig, o.Kubeconfig, "beacon-controller", float32(o.QPS), o.Burst)
	if err != nil {
		return err
	}
	kube := cs.Kube
	reg, err := cli.Registry()
	if err != nil {
		return err
	}
	recorder, stopEvents, err := cs.Recorder(ctx, v1.EventSource{Component: "beacon-controller"})
	if err != nil {
		return err
	}
	defer stopEvents()

	if strings.Contains(o.ExternalIPsParam, "/") {
		return fmt.Errorf("--externalips-param %q: want the name of a cluster-scoped ExternalIPsAllowList, not namespace/name", o.ExternalIPsParam)
	}
	ctrl, err := controller.New(log, kube, cs.Beacon, recorder, reg, controller.Options{
		LoadBalancerClass: o.LoadBalancerClass,
		Workers:           o.Workers,
		ExternalIPsParam:  o.ExternalIPsParam,
		ConflictHold:      o.ConflictHold,
		ProbeTimeout:      o.ProbeTimeout,
	})
	if err != nil {
		return err
	}

	// Ready means: a standby waiting for the Lease, or a leader whose
	// caches are synced and state restored.
	var leading, synced atomic.Bool
	serveMetrics, err := serve.Listen(o.MetricsAddr, serve.Metrics(reg))
	if err != nil {
		return err
	}
	serveHealth, err := serve.Listen(o.HealthAddr, serve.Health(func() bool { return !leading.Load() || synced.Load() }))
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(gctx) })
	g.Go(func() error { return serveHealth(gctx) })
	g.Go(func() error {
		run := func(ctx context.Context) error {
			leading.Store(true)
			go func() {
				select {
				case <-ctrl.Ready():
					synced.Store(true)
					if o.Ready != nil {
						o.Ready(ctrl)
					}
				case <-ctx.Done():
				}
			}()
			return ctrl.Run(ctx)
		}
		var err error
		if o.LeaderElect {
			err = leader.Run(gctx, log, kube, leader.Options{
				Namespace: o.LeaseNamespace, Name: o.LeaseName, Identity: o.LeaseIdentity,
				LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
			}, run)
		} else {
			err = run(gctx)
		}
		if err == nil {
			err = errStopped // ends the errgroup so the servers stop too
		}
		return err
	})
	if err := g.Wait(); err != nil && !errors.Is(err, errStopped) {
		return err
	}
	return nil
}

var errStopped = errors.New("controller stopped")
