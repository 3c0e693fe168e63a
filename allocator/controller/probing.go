package controller

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/allocator"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
)

// DefaultProbeTimeout bounds how long a new address of a pool announced in
// L2 waits for a speaker to report it probed before it goes into status
// anyway. A probe takes about half a second; the wait only runs out where
// no speaker announces or probes the address (no node selected, no
// interface on its subnet, no speaker running).
const DefaultProbeTimeout = 3 * time.Second

// EventAddressNotProbed is the reason of the Warning Event on a Service
// whose new address went into status without a speaker reporting it
// probed within the probe timeout.
const EventAddressNotProbed = "AddressNotProbed"

// indexService indexes ServiceAnnouncements by their Service's key.
const indexService = "service"

func announcementService(obj any) ([]string, error) {
	a, ok := obj.(*v1alpha1.ServiceAnnouncement)
	if !ok {
		return nil, nil
	}
	return []string{a.Namespace + "/" + a.Service}, nil
}

// probeVerdict says which of a Service's new addresses still wait for a
// probe.
type probeVerdict struct {
	// waiting are the addresses no speaker has reported yet; retryIn is
	// when the first of them times out.
	waiting []netip.Addr
	retryIn time.Duration
	// unprobed timed out: they go into status unprobed.
	unprobed []netip.Addr
}

// probeState judges the addresses of res that the Service's status
// (current) lacks and that come from pools announced in L2 (see
// judgeProbes), and records when each began to wait. Addresses of other
// pools (BGP only), and every address when no L2Advertisement exists,
// never wait.
func (c *Controller) probeState(k string, current []netip.Addr, res allocator.Result, now time.Time) probeVerdict {
	var fresh []netip.Addr
	for _, ip := range res.IPs {
		if !slices.Contains(current, ip) {
			fresh = append(fresh, ip)
		}
	}
	if len(fresh) == 0 || len(c.config.l2ads.ListKeys()) == 0 {
		return probeVerdict{}
	}
	ads := config.ParseL2Advertisements(items[v1alpha1.L2Advertisement](c.config.l2ads), c.lb.Pools())
	fresh = slices.DeleteFunc(fresh, func(ip netip.Addr) bool {
		p := c.lb.PoolOf(ip)
		return p == "" || !ads.Announced(p)
	})
	answered := c.answered(k)
	c.mu.Lock()
	defer c.mu.Unlock()
	v, started := judgeProbes(fresh, res.Conflicting, answered, c.probing[k], now, c.opts.ProbeTimeout)
	if len(started) > 0 {
		c.probing[k] = started
	}
	return v
}

// judgeProbes decides which fresh addresses still wait for a probe. An
// address is settled once a speaker reported it probed or announced
// (answered), or once the allocation kept it although another host uses
// it (kept: requested, or nothing else free; the Service gets a Warning).
// A conflict the allocation did not know of yet settles nothing: the
// address is about to be replaced, and writing it into status now would
// hand out an address that is known to be taken. Any other address waits
// until timeout after it began to (started), then goes in unprobed. It
// returns the verdict and when each judged address began to wait.
func judgeProbes(fresh, kept []netip.Addr, answered map[netip.Addr]bool, started map[netip.Addr]time.Time, now time.Time, timeout time.Duration) (probeVerdict, map[netip.Addr]time.Time) {
	var v probeVerdict
	next := map[netip.Addr]time.Time{}
	for _, ip := range fresh {
		if slices.Contains(kept, ip) || answered[ip] {
			continue
		}
		start, ok := started[ip]
		if !ok {
			start = now
		}
		if left := timeout - now.Sub(start); left > 0 {
			v.waiting = append(v.waiting, ip)
			if v.retryIn == 0 || left < v.retryIn {
				v.retryIn = left
			}
		} else {
			v.unprobed = append(v.unprobed, ip)
		}
		next[ip] = start
	}
	return v, next
}

// answered lists the addresses that some ServiceAnnouncement of the
// Service reports announced, or probed where no node announces them yet
// (a Local Service without ready endpoints).
func (c *Controller) answered(k string) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	if c.annIndex == nil {
		return out
	}
	objs, err := c.annIndex.ByIndex(indexService, k)
	if err != nil {
		return out
	}
	for _, o := range objs {
		a, ok := o.(*v1alpha1.ServiceAnnouncement)
		if !ok || a.Via != v1alpha1.ViaL2 {
			continue
		}
		for _, s := range append(slices.Clip(a.Addresses), a.Probed...) {
			if ip, err := netip.ParseAddr(s); err == nil {
				out[ip] = true
			}
		}
	}
	return out
}

// probed forgets the Service's wait once its status holds its addresses.
func (c *Controller) probed(k string) {
	c.mu.Lock()
	delete(c.probing, k)
	c.mu.Unlock()
}

func (c *Controller) isProbing(k string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.probing[k]
	return ok
}

// watchProbes re-queues a Service that waits for a probe whenever one of
// its ServiceAnnouncements changes.
func (c *Controller) watchProbes(inf cache.SharedIndexInformer) error {
	requeue := func(obj any) {
		if a, ok := obj.(*v1alpha1.ServiceAnnouncement); ok {
			if k := a.Namespace + "/" + a.Service; c.isProbing(k) {
				c.queue.Add(k)
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: requeue, UpdateFunc: func(_, o any) { requeue(o) },
	}); err != nil {
		return fmt.Errorf("service announcement probe handler: %w", err)
	}
	return nil
}

// setProbing sets the probing annotation to ips, or removes it when ips is
// empty.
func setProbing(svc *v1.Service, ips []netip.Addr) {
	if len(ips) == 0 {
		delete(svc.Annotations, lbservice.AnnotationProbing)
		return
	}
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	parts := make([]string, len(ips))
	for i, ip := range ips {
		parts[i] = ip.String()
	}
	svc.Annotations[lbservice.AnnotationProbing] = strings.Join(parts, ",")
}
