package agent

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/go-logr/logr"

	"github.com/beaconlb/beacon/speaker/carrier"
	"github.com/beaconlb/beacon/speaker/l2"
	"github.com/beaconlb/beacon/speaker/plan"
)

// KernelLinks is the real Links: ARP/NDP responders on packet sockets and
// interface dumps through netlink. Responders run until the context given
// to Responder ends; Wait waits for them.
type KernelLinks struct {
	log     logr.Logger
	metrics *l2.Metrics

	mu   sync.Mutex
	open map[string]*openResponder
	wg   sync.WaitGroup
	// changes is signalled when a responder's conflicts change or a probe
	// lets it answer for an address.
	changes chan struct{}
}

// NewKernelLinks returns a KernelLinks; it starts nothing.
func NewKernelLinks(log logr.Logger, m *l2.Metrics) *KernelLinks {
	return &KernelLinks{log: log, metrics: m, open: map[string]*openResponder{}, changes: make(chan struct{}, 1)}
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

// openResponder is a running responder and the interface it was opened
// on.
type openResponder struct {
	r      *l2.Responder
	index  int
	mac    net.HardwareAddr
	cancel context.CancelFunc
	done   chan struct{} // closed when r.Run has returned
}

// Responder returns the interface's responder, starting it on first use.
func (k *KernelLinks) Responder(ctx context.Context, iface string) (Responder, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if o, ok := k.open[iface]; ok {
		return o.r, nil
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
	rctx, cancel := context.WithCancel(ctx)
	o := &openResponder{r: r, index: link.Index, mac: link.MAC, cancel: cancel, done: make(chan struct{})}
	k.open[iface] = o
	k.wg.Go(func() {
		defer cancel()
		err := r.Run(rctx)
		close(o.done)
		if err != nil {
			k.log.Error(err, "responder stopped", "interface", iface)
		}
		k.mu.Lock()
		if k.open[iface] == o {
			delete(k.open, iface)
		}
		k.mu.Unlock()
	})
	return r, nil
}

// Retain stops the responders whose interface links (this sync's dump)
// no longer has, or has made again under the same name (another index or
// MAC): their sockets stay bound to the old interface and would answer
// nothing. The next Responder call for a re-made interface opens it anew.
func (k *KernelLinks) Retain(links []plan.Link) {
	byName := make(map[string]plan.Link, len(links))
	for _, l := range links {
		byName[l.Name] = l
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for iface, o := range k.open {
		l, ok := byName[iface]
		if ok && l.Index == o.index && bytes.Equal(l.MAC, o.mac) {
			continue
		}
		if ok {
			k.log.Info("interface made again: restarting its responder", "interface", iface,
				"index", o.index, "newIndex", l.Index, "mac", o.mac.String(), "newMAC", l.MAC.String())
		} else {
			k.log.Info("interface gone: stopping its responder", "interface", iface, "index", o.index)
		}
		// Its metrics carry the interface's name: the old one forgets
		// them before a new one starts.
		o.cancel()
		<-o.done
		delete(k.open, iface)
	}
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
		out = append(out, plan.Link{Name: i.Name, Index: i.Index, MAC: i.MAC, Up: !i.OperDown, Loopback: i.Loopback, Prefixes: i.Prefixes})
	}
	return out, nil
}
