package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/speaker/kernelarp"
	"github.com/beaconlb/beacon/speaker/plan"
)

// Reasons of the Events a speaker records on its Node when its kernel
// starts or stops answering ARP/NDP for L2 addresses itself.
const (
	// EventKernelAnswers: the node's kernel answers for L2 addresses that
	// an interface of the node holds (kube-proxy's kube-ipvs0, say), on
	// an interface Beacon announces them on.
	EventKernelAnswers = "KernelAnswersL2Addresses"
	// EventKernelAnswersCleared: it no longer does.
	EventKernelAnswersCleared = "KernelAnswersL2AddressesCleared"
)

// kernelEventInterval is the least time between two kernel-answers
// Events of one speaker: an address that comes and goes would otherwise
// record an Event every sync. A change held back is recorded by a later
// sync, which runs at least every few seconds.
const kernelEventInterval = 30 * time.Second

// ARPSettings is the optional part of Links that reads the effective
// arp_ignore of interfaces (kernelarp.ReadARPIgnore). Without it only
// addresses on an announcing interface itself are found.
type ARPSettings interface {
	ARPIgnore(ifaces []string) (map[string]int, error)
}

// ARPIgnore reads the interfaces' effective arp_ignore.
func (k *KernelLinks) ARPIgnore(ifaces []string) (map[string]int, error) {
	return kernelarp.ReadARPIgnore(ifaces)
}

// kernelWatch remembers what the kernel answered for at the last check
// and which Event was recorded last. Only the sync loop touches it.
type kernelWatch struct {
	gauge *prometheus.GaugeVec
	last  []kernelarp.Answer
	// warned is true when the last Event recorded was the Warning, at
	// eventAt.
	warned  bool
	eventAt time.Time
}

func newKernelWatch() *kernelWatch {
	return &kernelWatch{gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "beacon", Subsystem: "l2", Name: "kernel_answered_addresses",
		Help: "L2 addresses this node's kernel answers ARP or NDP for itself, on an interface Beacon announces them on, because an interface of the node holds them (kube-proxy's kube-ipvs0 without strictARP, say): the node answers whether it was elected or not.",
	}, []string{"family"})}
}

// checkKernel finds the L2 addresses the kernel answers for, from the
// node's interfaces and their arp_ignore, sets the gauge, logs a change
// and returns the Event on the Node to record, if any.
func (a *Agent) checkKernel(known []kernelarp.Address, links []plan.Link, now time.Time) []plan.Event {
	local := map[string][]netip.Addr{}
	for _, l := range links {
		for _, p := range l.Prefixes {
			local[l.Name] = append(local[l.Name], p.Addr())
		}
	}
	ifaces := kernelarp.ARPIgnoreNeeded(known, local)
	var arpIgnore map[string]int
	if s, ok := a.cfg.Links.(ARPSettings); ok && len(ifaces) > 0 {
		var err error
		if arpIgnore, err = s.ARPIgnore(ifaces); err != nil {
			a.cfg.Log.V(1).Info("cannot read arp_ignore", "err", err)
		}
	}
	answers := kernelarp.Answered(known, local, arpIgnore)
	changed, ev := a.kernel.update(a.cfg.Node, answers, now)
	if changed {
		if len(answers) == 0 {
			a.cfg.Log.Info("the kernel answers ARP/NDP for no L2 address any more")
		} else {
			e := answers[0]
			a.cfg.Log.Info("the kernel answers ARP/NDP for L2 addresses itself", "addresses", len(answers),
				"example", e.IP, "interface", e.Interface, "heldOn", e.HeldOn, "arpIgnore", e.ARPIgnore)
		}
	}
	if ev == nil {
		return nil
	}
	return []plan.Event{*ev}
}

// update records the answers of a check in the gauge and returns whether
// they changed since the last check, and the Event to record: a Warning
// when some appear, a Normal one when none are left, at most one every
// kernelEventInterval.
func (k *kernelWatch) update(node string, answers []kernelarp.Answer, now time.Time) (bool, *plan.Event) {
	v4, v6 := kernelarp.Count(answers)
	k.gauge.WithLabelValues("ipv4").Set(float64(v4))
	k.gauge.WithLabelValues("ipv6").Set(float64(v6))
	changed := !slices.Equal(answers, k.last)
	k.last = answers
	affected := len(answers) > 0
	if affected == k.warned || (!k.eventAt.IsZero() && now.Sub(k.eventAt) < kernelEventInterval) {
		return changed, nil
	}
	k.warned, k.eventAt = affected, now
	ev := &plan.Event{Kind: "Node", Name: node, Type: v1.EventTypeNormal, Reason: EventKernelAnswersCleared,
		Message: fmt.Sprintf("node %s: the kernel no longer answers ARP or NDP for any L2 address itself", node)}
	if affected {
		ev.Type, ev.Reason, ev.Message = v1.EventTypeWarning, EventKernelAnswers, kernelMessage(node, answers, v4+v6)
	}
	return changed, ev
}

// kernelMessage words the Warning: how many addresses, one example with
// where it is held and the setting that lets the kernel answer, and the
// fix.
func kernelMessage(node string, answers []kernelarp.Answer, n int) string {
	e := answers[0]
	proto, why := "NDP", "an address on the interface itself is always answered"
	if e.IP.Is4() {
		proto = "ARP"
		why = fmt.Sprintf("effective arp_ignore of %s is %d", e.Interface, e.ARPIgnore)
	}
	where := "interface " + e.HeldOn + " holds it"
	if e.HeldOn == e.Interface {
		where = "it is on " + e.Interface + " itself"
	}
	return fmt.Sprintf("node %s: the kernel answers %s itself for %d L2 address(es) Beacon announces, so this node answers for them even when another node is elected: "+
		"%s on %s (%s; %s). With kube-proxy in ipvs mode set ipvs.strictARP: true in its configuration (it sets net.ipv4.conf.all.arp_ignore=1 and arp_announce=2); otherwise remove the address from %s",
		node, proto, n, e.IP, e.Interface, where, why, e.HeldOn)
}
