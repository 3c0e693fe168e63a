package lab

import (
	"context"
	"errors"
	"fmt"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// RunEndpointWriter keeps an EndpointSlice set (DesiredEndpointSlices) for
// every Service with a selector, from the Pods in the API server, until ctx
// ends. It is level-triggered: any Service, Pod or lab EndpointSlice change
// marks it dirty and the next pass recomputes and applies everything.
// It stands in for kube-controller-manager, which the lab does not run.
func RunEndpointWriter(ctx context.Context, cs kubernetes.Interface) error {
	f := informers.NewSharedInformerFactory(cs, 0)
	fs := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.LabelSelector = discoveryv1.LabelManagedBy + "=" + ManagedBy
	}))
	svcs := f.Core().V1().Services()
	pods := f.Core().V1().Pods()
	slices := fs.Discovery().V1().EndpointSlices()

	dirty := make(chan struct{}, 1)
	poke := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcs.Informer(), pods.Informer(), slices.Informer()} {
		if _, err := inf.AddEventHandler(h); err != nil {
			return err
		}
	}
	f.Start(ctx.Done())
	fs.Start(ctx.Done())
	defer f.Shutdown()
	defer fs.Shutdown()
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("lab: endpoint writer: %v cache not synced: %w", typ, ctx.Err())
		}
	}
	for typ, ok := range fs.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("lab: endpoint writer: %v cache not synced: %w", typ, ctx.Err())
		}
	}
	w := &endpointWriter{cs: cs, svcs: svcs.Lister(), pods: pods.Lister(), slices: slices.Lister()}
	retry := time.NewTimer(0)
	<-retry.C
	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-dirty:
		case <-retry.C:
		}
		if err := w.sync(ctx); err != nil && ctx.Err() == nil {
			retry.Reset(300 * time.Millisecond)
		}
	}
}

type endpointWriter struct {
	cs     kubernetes.Interface
	svcs   corelisters.ServiceLister
	pods   corelisters.PodLister
	slices discoverylisters.EndpointSliceLister
}

func (w *endpointWriter) sync(ctx context.Context) error {
	svcs, err := w.svcs.List(labels.Everything())
	if err != nil {
		return err
	}
	pods, err := w.pods.List(labels.Everything())
	if err != nil {
		return err
	}
	existing, err := w.slices.List(labels.Everything())
	if err != nil {
		return err
	}
	cur := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		cur[s.Namespace+"/"+s.Name] = s
	}
	var errs []error
	want := map[string]bool{}
	for _, svc := range svcs {
		for _, d := range DesiredEndpointSlices(svc, pods) {
			key := d.Namespace + "/" + d.Name
			want[key] = true
			if err := w.apply(ctx, cur[key], d); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for key, s := range cur {
		if want[key] {
			continue
		}
		err := w.cs.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func sameSlice(a, b *discoveryv1.EndpointSlice) bool {
	return a.AddressType == b.AddressType &&
		a.Labels[discoveryv1.LabelServiceName] == b.Labels[discoveryv1.LabelServiceName] &&
		a.Labels[discoveryv1.LabelManagedBy] == b.Labels[discoveryv1.LabelManagedBy] &&
		equality.Semantic.DeepEqual(a.Endpoints, b.Endpoints) &&
		equality.Semantic.DeepEqual(a.Ports, b.Ports) &&
		equality.Semantic.DeepEqual(a.OwnerReferences, b.OwnerReferences)
}

func (w *endpointWriter) apply(ctx context.Context, cur, want *discoveryv1.EndpointSlice) error {
	api := w.cs.DiscoveryV1().EndpointSlices(want.Namespace)
	if cur == nil {
		_, err := api.Create(ctx, want, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		// The cache is behind: update what is there.
		if cur, err = api.Get(ctx, want.Name, metav1.GetOptions{}); err != nil {
			return err
		}
	}
	if sameSlice(cur, want) {
		return nil
	}
	upd := cur.DeepCopy()
	if upd.Labels == nil {
		upd.Labels = map[string]string{}
	}
	for k, v := range want.Labels {
		upd.Labels[k] = v
	}
	upd.OwnerReferences = want.OwnerReferences
	upd.AddressType = want.AddressType
	upd.Endpoints = want.Endpoints
	upd.Ports = want.Ports
	_, err := api.Update(ctx, upd, metav1.UpdateOptions{})
	return err
}
