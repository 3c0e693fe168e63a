package l2

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/register"
)

// Metrics of the responders, labelled by interface and family ("ipv4" for
// ARP, "ipv6" for NDP). One Metrics serves every responder of a process; a
// nil *Metrics records nothing.
type Metrics struct {
	requests   *prometheus.CounterVec
	replies    *prometheus.CounterVec
	gratuitous *prometheus.CounterVec
	conflicts  *prometheus.CounterVec
	errors     *prometheus.CounterVec
	probes     *prometheus.CounterVec
	announced  *prometheus.GaugeVec
	// conflicting counts addresses in conflict with another host.
	conflicting *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	labels := []string{"interface", "family"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "beacon", Subsystem: "l2", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		requests:   counter("requests_received_total", "Valid ARP requests and Neighbor Solicitations received, for any address."),
		replies:    counter("replies_sent_total", "ARP replies and solicited Neighbor Advertisements sent for announced addresses."),
		gratuitous: counter("gratuitous_sent_total", "Gratuitous ARP packets and unsolicited Neighbor Advertisements sent."),
		conflicts:  counter("conflicts_total", "Packets in which another host or speaker claimed an address this node announces or probes for."),
		probes:     counter("probes_sent_total", "ARP Probes and Duplicate Address Detection solicitations sent before announcing an address."),
		errors:     counter("errors_total", "Malformed packets received and packets that could not be sent."),
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "beacon", Subsystem: "l2", Name: "announced_ips",
			Help: "Addresses this node currently answers for.",
		}, labels),
		conflicting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "beacon", Subsystem: "l2", Name: "conflicting_ips",
			Help: "Addresses of this node that a host outside the cluster uses too (found by a probe, or claimed while announced).",
		}, labels),
	}
	if err := register.Metrics(reg, m.requests, m.replies, m.gratuitous, m.conflicts, m.errors, m.probes, m.announced, m.conflicting); err != nil {
		return nil, fmt.Errorf("l2: %w", err)
	}
	return m, nil
}

// counter is one of the counters, by what it counts.
type counter int

const (
	cRequest counter = iota
	cReply
	cGratuitous
	cConflict
	cError
	cProbe
)

func (m *Metrics) inc(c counter, iface, family string) {
	if m == nil {
		return
	}
	v := [...]*prometheus.CounterVec{cRequest: m.requests, cReply: m.replies, cGratuitous: m.gratuitous, cConflict: m.conflicts, cError: m.errors, cProbe: m.probes}[c]
	v.WithLabelValues(iface, family).Inc()
}

func (m *Metrics) setAnnounced(iface string, v4, v6 int) {
	if m != nil {
		m.announced.WithLabelValues(iface, "ipv4").Set(float64(v4))
		m.announced.WithLabelValues(iface, "ipv6").Set(float64(v6))
	}
}

func (m *Metrics) setConflicting(iface string, v4, v6 int) {
	if m != nil {
		m.conflicting.WithLabelValues(iface, "ipv4").Set(float64(v4))
		m.conflicting.WithLabelValues(iface, "ipv6").Set(float64(v6))
	}
}

// forget drops an interface's series when its responder stops.
func (m *Metrics) forget(iface string) {
	if m != nil {
		m.announced.DeletePartialMatch(prometheus.Labels{"interface": iface})
		m.conflicting.DeletePartialMatch(prometheus.Labels{"interface": iface})
	}
}
