package agent

import (
	"cmp"
	"fmt"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/slim"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/plan"
)

// watches are the agent's watches, by what they hold. The BGP ones are
// nil without BGP.
type watches struct {
	factory                 informers.SharedInformerFactory
	services, slices, nodes cache.SharedIndexInformer
	pools, l2ads            cache.SharedIndexInformer
	// reports are this node's ServiceAnnouncements.
	reports                       cache.SharedIndexInformer
	bgpPeers, bgpAds, bfdProfiles cache.SharedIndexInformer
	// sessions are this node's BGPSessionStates.
	sessions cache.SharedIndexInformer
}

// newWatches creates the informers; Run starts them.
func (a *Agent) newWatches() *watches {
	f := informers.NewSharedInformerFactoryWithOptions(cmp.Or(a.cfg.Clients.Informers.Kube, a.cfg.Clients.Kube), 0,
		informers.WithTransform(slim.Speaker(a.cfg.Forwarding != nodeport.ModeOff)))
	b := cmp.Or(a.cfg.Clients.Informers.Beacon, a.cfg.Clients.Beacon)
	inf := &watches{
		factory:  f,
		services: f.Core().V1().Services().Informer(),
		slices:   f.Discovery().V1().EndpointSlices().Informer(),
		nodes:    f.Core().V1().Nodes().Informer(),
		pools:    b.IPPoolInformer(),
		l2ads:    b.L2AdvertisementInformer(),
		reports:  b.ServiceAnnouncementInformer(a.cfg.Node),
	}
	if a.cfg.BGP != nil {
		inf.bgpPeers, inf.bgpAds, inf.bfdProfiles = b.BGPPeerInformer(), b.BGPAdvertisementInformer(), b.BFDProfileInformer()
		inf.sessions = b.BGPSessionStateInformer(a.cfg.Node)
	}
	for _, r := range []cache.SharedIndexInformer{inf.reports, inf.sessions} {
		if r != nil {
			_ = r.SetTransform(slim.Reports) // fails only once started
		}
	}
	return inf
}

// planned are the informers whose changes the plan depends on; the
// agent's own reports are not among them.
func (i *watches) planned() []cache.SharedIndexInformer {
	out := []cache.SharedIndexInformer{i.services, i.slices, i.nodes, i.pools, i.l2ads}
	if i.bgpPeers != nil {
		out = append(out, i.bgpPeers, i.bgpAds, i.bfdProfiles)
	}
	return out
}

// own are the informers outside the factory, which Run runs itself.
func (i *watches) own() []cache.SharedIndexInformer {
	out := []cache.SharedIndexInformer{i.pools, i.l2ads, i.reports}
	if i.bgpPeers != nil {
		out = append(out, i.bgpPeers, i.bgpAds, i.bfdProfiles, i.sessions)
	}
	return out
}

func (i *watches) onChange(f func()) error {
	mark := cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { f() },
		UpdateFunc: func(old, cur any) {
			if !slim.Same(old, cur) {
				f()
			}
		},
		DeleteFunc: func(any) { f() },
	}
	for _, inf := range i.planned() {
		if _, err := inf.AddEventHandler(mark); err != nil {
			return fmt.Errorf("event handler: %w", err)
		}
	}
	return nil
}

func list[T any](inf cache.SharedIndexInformer) []*T {
	objs := inf.GetStore().List()
	out := make([]*T, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*T))
	}
	return out
}

func values[T any](inf cache.SharedIndexInformer) []T {
	objs := inf.GetStore().List()
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		out = append(out, *o.(*T))
	}
	return out
}

// facts fills the planner's view of the cluster from the caches.
func (i *watches) facts(f *plan.Facts) {
	f.Services = list[v1.Service](i.services)
	f.EndpointSlices = list[discoveryv1.EndpointSlice](i.slices)
	f.Nodes = list[v1.Node](i.nodes)
	f.Pools = values[v1alpha1.IPPool](i.pools)
	f.L2Advertisements = values[v1alpha1.L2Advertisement](i.l2ads)
	if i.bgpPeers != nil {
		f.BGP = &plan.BGPObjects{
			Peers:          values[v1alpha1.BGPPeer](i.bgpPeers),
			Advertisements: values[v1alpha1.BGPAdvertisement](i.bgpAds),
			BFDProfiles:    values[v1alpha1.BFDProfile](i.bfdProfiles),
		}
	}
}

// object returns what an Event is recorded on: a Service from the cache
// (none when it is gone: its deletion says why), a reference to a Node in
// the cache, or a reference to a
// cluster-scoped configuration object, with its UID when known (what
// `kubectl describe` matches; the Event itself lands in "default").
func (i *watches) object(e plan.Event) (runtime.Object, bool) {
	if e.Kind == "Service" {
		o, ok, _ := i.services.GetStore().GetByKey(e.Namespace + "/" + e.Name)
		if !ok {
			return nil, false
		}
		return o.(*v1.Service), true
	}
	if e.Kind == "Node" {
		o, ok, _ := i.nodes.GetStore().GetByKey(e.Name)
		if !ok {
			return nil, false
		}
		n := o.(*v1.Node)
		return &v1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: n.Name, UID: n.UID}, true
	}
	ref := &v1.ObjectReference{Kind: e.Kind, APIVersion: v1alpha1.SchemeGroupVersion.String(), Name: e.Name}
	var inf cache.SharedIndexInformer
	switch e.Kind {
	case "L2Advertisement":
		inf = i.l2ads
	case "BGPPeer":
		inf = i.bgpPeers
	case "BGPAdvertisement":
		inf = i.bgpAds
	case "BFDProfile":
		inf = i.bfdProfiles
	}
	if inf != nil {
		if o, ok, _ := inf.GetStore().GetByKey(e.Name); ok {
			if m, ok := o.(metav1.Object); ok {
				ref.UID = m.GetUID()
			}
		}
	}
	return ref, true
}
