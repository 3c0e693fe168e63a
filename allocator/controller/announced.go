package controller

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
)

// unannounced is one allocated address that no node announces.
type unannounced struct {
	Service string // namespace/name
	IP      netip.Addr
}

// findUnannounced returns the addresses of allocated (Service key ->
// addresses) that no ServiceAnnouncement of that Service lists with a
// node, sorted by Service and address. Speakers write one announcement per
// (Service, node) and delete it when they stop, so an address missing from
// all of them is answered by nobody.
func findUnannounced(allocated map[string][]netip.Addr, anns []v1alpha1.ServiceAnnouncement) []unannounced {
	announced := map[unannounced]bool{}
	for _, a := range anns {
		if a.Node == "" {
			continue
		}
		for _, s := range a.Addresses {
			if ip, err := netip.ParseAddr(s); err == nil {
				announced[unannounced{a.Namespace + "/" + a.Service, ip}] = true
			}
		}
	}
	var out []unannounced
	for svc, ips := range allocated {
		for _, ip := range ips {
			if u := (unannounced{svc, ip}); !announced[u] {
				out = append(out, u)
			}
		}
	}
	slices.SortFunc(out, func(a, b unannounced) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.IP.Compare(b.IP)
	})
	return out
}

// announcementCaches are what the unannounced gauge reads; set once the
// leader's informers exist.
type announcementCaches struct {
	services      corelisters.ServiceLister
	announcements cache.Store
	synced        func() bool
}

// announcementInformer returns an informer of every ServiceAnnouncement (all
// namespaces) and points the unannounced gauge at it and at services.
func (c *Controller) announcementInformer(services corelisters.ServiceLister, servicesSynced cache.InformerSynced) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformer(c.beacon.ListWatch(client.ServiceAnnouncements), &v1alpha1.ServiceAnnouncement{}, 0, cache.Indexers{indexService: announcementService})
	c.announcements.Store(&announcementCaches{
		services:      services,
		announcements: inf.GetStore(),
		synced:        func() bool { return servicesSynced() && inf.HasSynced() },
	})
	return inf
}

// unannouncedCollector computes beacon_addresses_unannounced at scrape
// time from the caches, so it needs no loop of its own. It reports nothing
// until this replica leads and its caches are synced: a standby has no
// view to report.
type unannouncedCollector struct{ c *Controller }

var unannouncedDesc = prometheus.NewDesc("beacon_addresses_unannounced",
	"Addresses allocated to LoadBalancer Services that no node announces (no ServiceAnnouncement lists them).", nil, nil)

func (unannouncedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- unannouncedDesc }

func (u unannouncedCollector) Collect(ch chan<- prometheus.Metric) {
	caches := u.c.announcements.Load()
	if caches == nil || !caches.synced() {
		return
	}
	svcs, err := caches.services.List(labels.Everything())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(unannouncedDesc, err)
		return
	}
	allocated := map[string][]netip.Addr{}
	for _, svc := range svcs {
		if !u.c.handles(svc) || svc.DeletionTimestamp != nil {
			continue
		}
		if ips := lbservice.IngressIPs(svc); len(ips) > 0 {
			allocated[lbservice.Key(svc)] = ips
		}
	}
	var anns []v1alpha1.ServiceAnnouncement
	for _, o := range caches.announcements.List() {
		if a, ok := o.(*v1alpha1.ServiceAnnouncement); ok {
			anns = append(anns, *a)
		}
	}
	ch <- prometheus.MustNewConstMetric(unannouncedDesc, prometheus.GaugeValue, float64(len(findUnannounced(allocated, anns))))
}
