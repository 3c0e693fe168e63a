package provider

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/klog/v2"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
)

// feed keeps a LoadBalancer hosted by a cloud-controller-manager supplied
// with what beacon-controller's loop otherwise gives it: the IPPools, the
// namespaces' labels, and at start the addresses Services already hold.
type feed struct {
	namespaces atomic.Pointer[corelisters.NamespaceLister]
}

func (f *feed) labels(ns string) labels.Set {
	l := f.namespaces.Load()
	if l == nil {
		return nil
	}
	n, err := (*l).Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}

// start fills lb before it returns (pools, then every address held by a
// classless LoadBalancer Service, the ones the upstream service controller
// handles), so that the host's first EnsureLoadBalancer calls cannot hand
// out an address a Service already has; then it follows IPPool changes
// until stop closes.
func (f *feed) start(ctx context.Context, lb *LoadBalancer, cb cloudprovider.ControllerClientBuilder, syncTimeout time.Duration) error {
	cfg, err := cb.Config("beacon-cloud-provider")
	if err != nil {
		return fmt.Errorf("client config: %w", err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	bc, err := client.New(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(kube, 0)
	nsInf := factory.Core().V1().Namespaces()
	lister := nsInf.Lister()
	f.namespaces.Store(&lister)
	svcInf := factory.Core().V1().Services()
	svcLister := svcInf.Lister() // registers the informer before Start
	poolInf := bc.IPPoolInformer()
	setPools := func() {
		var items []v1alpha1.IPPool
		for _, o := range poolInf.GetStore().List() {
			items = append(items, *o.(*v1alpha1.IPPool))
		}
		lb.SetPools(config.ParsePools(items))
	}
	if _, err := poolInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { setPools() },
		UpdateFunc: func(any, any) { setPools() },
		DeleteFunc: func(any) { setPools() },
	}); err != nil {
		return fmt.Errorf("pool event handler: %w", err)
	}
	factory.Start(ctx.Done())
	go poolInf.Run(ctx.Done())
	// The informers live on with ctx; only the wait is bounded.
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), nsInf.Informer().HasSynced, svcInf.Informer().HasSynced, poolInf.HasSynced) {
		return fmt.Errorf("caches not synced: %w", sctx.Err())
	}
	setPools()
	svcs, err := svcLister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list Services: %w", err)
	}
	// The same Services in the same order as beacon-controller restores
	// (its first pass): classless LoadBalancers, the oldest first.
	lbservice.SortForRestore(svcs)
	for _, svc := range svcs {
		ips := lbservice.IngressIPs(svc)
		if !lbservice.Handled(svc, "") || len(ips) == 0 {
			continue
		}
		if err := lb.Restore(svc, ips); err != nil {
			klog.FromContext(ctx).Error(err, "cannot restore a Service's addresses", "service", lbservice.Key(svc), "addresses", ips)
		}
	}
	return nil
}

// initTimeout bounds Initialize: a host that cannot reach the API server
// for this long gets a provider without pools, and a logged error.
const initTimeout = 2 * time.Minute
