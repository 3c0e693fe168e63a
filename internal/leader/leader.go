// Package leader runs a function only while this process holds a Lease.
//
// Timings are short (default lease 4 s, renew 3 s, retry 500 ms) so a
// standby takes over within seconds of a crash, and the Lease is released
// on shutdown only after the function has returned, so a successor never
// overlaps with writes still in flight.
package leader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Options name the Lease and set its timings; zero values take defaults.
type Options struct {
	Namespace, Name string
	// Identity defaults to hostname_random.
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// ErrLost is returned when leadership is lost before ctx ends: the caller
// should exit so that it restarts with clean state.
var ErrLost = errors.New("leadership lost")

// Run blocks until ctx ends or leadership is lost, calling run while leading.
func Run(ctx context.Context, log logr.Logger, kube kubernetes.Interface, o Options, run func(context.Context) error) error {
	if o.Identity == "" {
		host, _ := os.Hostname()
		o.Identity = host + "_" + rand.String(6)
	}
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 4 * time.Second
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = 3 * time.Second
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = 500 * time.Millisecond
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: o.Namespace, Name: o.Name},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: o.Identity},
	}
	// The elector's context ends only after run has returned (or, when not
	// leading, with ctx), so the Lease is released after the last write.
	leCtx, leCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer leCancel()
	var leading atomic.Bool
	stopWatch := context.AfterFunc(ctx, func() {
		if !leading.Load() {
			leCancel()
		}
	})
	defer stopWatch()

	done := make(chan struct{})
	var runErr error
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		Name:            o.Name,
		LeaseDuration:   o.LeaseDuration,
		RenewDeadline:   o.RenewDeadline,
		RetryPeriod:     o.RetryPeriod,
		ReleaseOnCancel: true,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(lctx context.Context) {
				defer close(done)
				defer leCancel()
				leading.Store(true)
				rctx, cancel := context.WithCancel(lctx)
				defer cancel()
				stop := context.AfterFunc(ctx, cancel)
				defer stop()
				log.Info("became leader", "lease", o.Namespace+"/"+o.Name, "identity", o.Identity)
				runErr = run(rctx)
			},
			OnStoppedLeading: func() {},
			OnNewLeader: func(id string) {
				if id != o.Identity {
					log.Info("following leader", "identity", id)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	le.Run(leCtx)
	if leading.Load() {
		<-done
	}
	switch {
	case runErr != nil:
		return runErr
	case ctx.Err() == nil:
		return ErrLost
	}
	return nil
}
