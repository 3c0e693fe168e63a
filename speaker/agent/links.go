package agent

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-logr/logr"

	"github.com/beaconlb/beacon/speaker/carrier"
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
	// changes is signalled when a responder's conflicts change or a probe
	// lets it answer for an address.
	changes chan struct{}
}

// NewKernelLinks returns a KernelLinks; it starts nothing.
func NewKernelLinks(log logr.Logger, m *l2.Metrics) *KernelLinks {
	return &KernelLinks{log: log, metrics: m, open: map[string]*l2.Responder{}, changes: make(chan struct{}, 1)}
}

// ResponderChanges is signalled when the conflicts of a responder change
// or a probe lets it answer for an address.
func (k *KernelLinks) ResponderChanges() <-chan struct{} { return k.changes }

func (k *KernelLinks) responderChanged() {
	select {
	case k.changes <- struct{}{}:
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
	r, err := l2.New(l2.Config{Link: link, Logger: k.log, Metrics: k.metrics, OnChange: k.responderChanged})
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
	ifaces, err := carrier.List()
	if err != nil {
		return nil, err
	}
	out := make([]plan.Link, 0, len(ifaces))
	for _, i := range ifaces {
		out = append(out, plan.Link{Name: i.Name, Up: !i.OperDown, Loopback: i.Loopback, Prefixes: i.Prefixes})
	}
	return out, nil
}
