package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/allocator/externalips"
)

// externalIPsLoop keeps the externalIPs guard's param ConfigMap equal to the
// pools with allowExternalIPs. It rewrites on every pool change and whenever
// someone else edits or deletes the ConfigMap (level-triggered: the desired
// data is recomputed each time). Errors retry with a short back-off.
func (c *Controller) externalIPsLoop(ctx context.Context) {
	ref := c.opts.ExternalIPsParam
	factory := informers.NewSharedInformerFactoryWithOptions(c.kube, 0,
		informers.WithNamespace(ref.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", ref.Name).String()
		}))
	inf := factory.Core().V1().ConfigMaps().Informer()
	mark := func(any) { c.markExternalIPsDirty() }
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: mark, UpdateFunc: func(_, o any) { mark(o) }, DeleteFunc: mark,
	}); err != nil {
		c.log.Error(err, "externalIPs param: cannot watch the ConfigMap; writing it on pool changes only")
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.externalIPsDirty:
		}
		if err := c.syncExternalIPs(ctx); err != nil {
			c.log.Error(err, "writing the externalIPs param", "configmap", ref.String())
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
	ref := c.opts.ExternalIPsParam
	want := externalips.Data(c.lb.Pools())
	cms := c.kube.CoreV1().ConfigMaps(ref.Namespace)
	cur, err := cms.Get(ctx, ref.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		c.metrics.writes.WithLabelValues("externalips-param").Inc()
		_, err = cms.Create(ctx, &v1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace, Labels: paramLabels},
			Data:       want,
		}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create %s: %w", ref, err)
		}
		c.log.Info("externalIPs param created", "configmap", ref.String(), "cidrs", want[externalips.KeyCIDRs])
		return nil
	case err != nil:
		return fmt.Errorf("get %s: %w", ref, err)
	}
	if maps.Equal(cur.Data, want) && len(cur.BinaryData) == 0 {
		return nil
	}
	upd := cur.DeepCopy()
	upd.Data, upd.BinaryData = want, nil
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	maps.Copy(upd.Labels, paramLabels)
	c.metrics.writes.WithLabelValues("externalips-param").Inc()
	if _, err := cms.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s: %w", ref, err)
	}
	c.log.Info("externalIPs param updated", "configmap", ref.String(), "cidrs", want[externalips.KeyCIDRs])
	return nil
}

var paramLabels = map[string]string{"app.kubernetes.io/managed-by": "beacon-controller"}
