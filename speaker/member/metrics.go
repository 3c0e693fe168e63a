package member

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/register"
)

// Metrics of a Member. A nil *Metrics records nothing.
type Metrics struct {
	sentTotal     *prometheus.CounterVec
	receivedTotal *prometheus.CounterVec
	droppedTotal  prometheus.Counter
	sendErrors    prometheus.Counter
	aliveNodes    prometheus.Gauge
	stalls        prometheus.Counter
	rejoins       prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		sentTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "beacon", Subsystem: "member", Name: "messages_sent_total",
			Help: "Liveness messages sent, by kind (beat, leave, dead), one per peer.",
		}, []string{"kind"}),
		receivedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "beacon", Subsystem: "member", Name: "messages_received_total",
			Help: "Well-formed liveness messages received, by kind.",
		}, []string{"kind"}),
		droppedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "beacon", Subsystem: "member", Name: "packets_dropped_total",
			Help: "Received packets dropped as malformed or unauthenticated.",
		}),
		sendErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "beacon", Subsystem: "member", Name: "send_errors_total",
			Help: "Liveness messages that could not be sent.",
		}),
		aliveNodes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "beacon", Subsystem: "member", Name: "alive_nodes",
			Help: "Speakers this node sees alive, itself included.",
		}),
		stalls: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "beacon", Subsystem: "member", Name: "stalls_total",
			Help: "Times this speaker's liveness loop was not scheduled for over two heartbeat intervals; the stall is not counted against peers.",
		}),
		rejoins: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "beacon", Subsystem: "member", Name: "rejoins_total",
			Help: "Stalls of this speaker long enough for its peers to declare it dead; after each it announced nothing until they knew it lived.",
		}),
	}
	if err := register.Metrics(reg, m.sentTotal, m.receivedTotal, m.droppedTotal, m.sendErrors, m.aliveNodes, m.stalls, m.rejoins); err != nil {
		return nil, fmt.Errorf("member: %w", err)
	}
	return m, nil
}

func (m *Metrics) sent(k Kind, n int) {
	if m != nil {
		m.sentTotal.WithLabelValues(k.String()).Add(float64(n))
	}
}

func (m *Metrics) received(k Kind) {
	if m != nil {
		m.receivedTotal.WithLabelValues(k.String()).Inc()
	}
}

func (m *Metrics) dropped() {
	if m != nil {
		m.droppedTotal.Inc()
	}
}

func (m *Metrics) sendError() {
	if m != nil {
		m.sendErrors.Inc()
	}
}

func (m *Metrics) setAlive(n int) {
	if m != nil {
		m.aliveNodes.Set(float64(n))
	}
}

func (m *Metrics) stalled() {
	if m != nil {
		m.stalls.Inc()
	}
}

func (m *Metrics) rejoin() {
	if m != nil {
		m.rejoins.Inc()
	}
}
