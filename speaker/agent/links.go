package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/go-logr/logr"
	"github.com/vishvananda/netlink"

	"github.com/beaconlb/beacon/speaker/l2"
	"github.com/beaconlb/beacon/speaker/plan"
)

// KernelLinks is the real Links: ARP/NDP responders on packet sockets and
// interface lookups through netlink. Responders run until the context given
// to Responder ends; Wait waits for them.
type KernelLinks struct {
	log     logr.Logger
	metrics *l2.Metrics

	mu   sync.Mutex
	open map[string]*l2.Responder
	wg   sync.WaitGroup
	// conflicts is signalled when a responder's conflicts change.
	conflicts chan struct{}
}

// NewKernelLinks returns a KernelLinks; it starts nothing.
func NewKernelLinks(log logr.Logger, m *l2.Metrics) *KernelLinks {
	return &KernelLinks{log: log, metrics: m, open: map[string]*l2.Responder{}, conflicts: make(chan struct{}, 1)}
}

// ConflictsChanged is signalled when the conflicts of a responder change.
func (k *KernelLinks) ConflictsChanged() <-chan struct{} { return k.conflicts }

func (k *KernelLinks) conflictsChanged() {
	select {
	case k.conflicts <- struct{}{}:
	default:
	}
}

// Responder returns the interface's responder, starting it on first use.
func (k *KernelLinks) Responder(ctx context.Context, iface string) (Responder, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r, ok := k.open[iface]; ok {
		return r, nil
	}
	link, err := l2.OpenLink(iface, true, true)
	if err != nil {
		return nil, err
	}
	r, err := l2.New(l2.Config{Link: link, Logger: k.log, Metrics: k.metrics, OnConflicts: k.conflictsChanged})
	if err != nil {
		_ = link.Close()
		return nil, fmt.Errorf("responder %s: %w", iface, err)
	}
	k.open[iface] = r
	k.wg.Go(func() {
		if err := r.Run(ctx); err != nil {
			k.log.Error(err, "responder stopped", "interface", iface)
		}
		k.mu.Lock()
		delete(k.open, iface)
		k.mu.Unlock()
	})
	return r, nil
}

// Wait waits for every responder to stop.
func (k *KernelLinks) Wait() { k.wg.Wait() }

// Interfaces lists the interfaces with their connected prefixes.
func (k *KernelLinks) Interfaces() ([]plan.Link, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	byIndex := map[int][]netip.Prefix{}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ok {
			byIndex[a.LinkIndex] = append(byIndex[a.LinkIndex], netip.PrefixFrom(ip.Unmap(), ones))
		}
	}
	out := make([]plan.Link, 0, len(links))
	for _, l := range links {
		at := l.Attrs()
		out = append(out, plan.Link{Name: at.Name, Up: at.OperState != netlink.OperDown,
			Loopback: at.Flags&net.FlagLoopback != 0, Prefixes: byIndex[at.Index]})
	}
	return out, nil
}
