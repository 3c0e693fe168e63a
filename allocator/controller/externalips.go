package controller

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/allocator/externalips"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// externalIPsLoop keeps the externalIPs guard's param, an
// ExternalIPsAllowList, equal to the pools with allowExternalIPs. It rewrites
// on every pool change and whenever someone else edits or deletes the object
// (level-triggered: the desired lists are recomputed each time). Errors retry
// with a short back-off.
func (c *Controller) externalIPsLoop(ctx context.Context) {
	name := c.opts.ExternalIPsParam
	inf := c.beacon.ExternalIPsAllowListInformer(name)
	mark := func(any) { c.markExternalIPsDirty() }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: mark, UpdateFunc: func(_, o any) { mark(o) }, DeleteFunc: mark,
	}); err != nil {
		c.log.Error(err, "externalIPs param: cannot watch the ExternalIPsAllowList; writing it on pool changes only")
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { inf.RunWithContext(ctx) })
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.externalIPsDirty:
		}
		if err := c.syncExternalIPs(ctx); err != nil {
			c.log.Error(err, "writing the externalIPs param", "externalipsallowlist", name)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
			c.markExternalIPsDirty()
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

func (c *Controller) markExternalIPsDirty() {
	select {
	case c.externalIPsDirty <- struct{}{}:
	default:
	}
}

func (c *Controller) syncExternalIPs(ctx context.Context) error {
	name := c.opts.ExternalIPsParam
	cidrs, pools := externalips.Data(c.lb.Pools())
	cur := &v1alpha1.ExternalIPsAllowList{}
	err := c.beacon.Get(ctx, client.ExternalIPsAllowLists, name, cur)
	switch {
	case apierrors.IsNotFound(err):
		c.metrics.writes.WithLabelValues("externalips-param").Inc()
		err = c.beacon.Create(ctx, client.ExternalIPsAllowLists, &v1alpha1.ExternalIPsAllowList{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: paramLabels},
			CIDRs:      cidrs, Pools: pools,
		})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		c.log.Info("externalIPs param created", "externalipsallowlist", name, "cidrs", cidrs)
		return nil
	case err != nil:
		return err
	}
	if slices.Equal(cur.CIDRs, cidrs) && slices.Equal(cur.Pools, pools) {
		return nil
	}
	upd := cur.DeepCopy()
	upd.CIDRs, upd.Pools = cidrs, pools
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	maps.Copy(upd.Labels, paramLabels)
	c.metrics.writes.WithLabelValues("externalips-param").Inc()
	if err := c.beacon.Update(ctx, client.ExternalIPsAllowLists, name, upd); err != nil {
		return fmt.Errorf("externalIPs param: %w", err)
	}
	c.log.Info("externalIPs param updated", "externalipsallowlist", name, "cidrs", cidrs)
	return nil
}

var paramLabels = map[string]string{"app.kubernetes.io/managed-by": "beacon-controller"}
