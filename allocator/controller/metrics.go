package controller

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/allocator/provider"
	"github.com/beaconlb/beacon/internal/register"
)

// metrics are registered on the registry the caller injects.
type metrics struct {
	failures  *prometheus.CounterVec
	reconcile prometheus.Histogram
	pending   prometheus.Gauge
	writes    *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, lb *provider.LoadBalancer) (*metrics, error) {
	m := &metrics{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_allocation_failures_total",
			Help: "Allocation attempts that failed, by reason.",
		}, []string{"reason"}),
		reconcile: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "beacon_service_reconcile_duration_seconds",
			Help:    "Time to reconcile one Service, API writes included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "beacon_services_pending",
			Help: "LoadBalancer Services waiting for an address.",
		}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "beacon_api_writes_total",
			Help: "Writes to the API server, by kind.",
		}, []string{"kind"}),
	}
	return m, register.Metrics(reg, m.failures, m.reconcile, m.pending, m.writes, poolCollector{lb})
}

// poolCollector reads pool counts at scrape time, so deleted pools vanish
// from the metrics instead of lingering as stale series.
type poolCollector struct{ lb *provider.LoadBalancer }

var (
	poolTotalDesc = prometheus.NewDesc("beacon_pool_addresses",
		"Addresses a pool can hand out, by family (saturates for huge IPv6 pools).", []string{"pool", "family"}, nil)
	poolUsedDesc = prometheus.NewDesc("beacon_pool_addresses_in_use",
		"Addresses of a pool held by Services, by family.", []string{"pool", "family"}, nil)
)

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolTotalDesc
	ch <- poolUsedDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, st := range c.lb.Stats() {
		if st.IPv4 != nil {
			ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(st.IPv4.Total), name, "IPv4")
			ch <- prometheus.MustNewConstMetric(poolUsedDesc, prometheus.GaugeValue, float64(st.IPv4.Used), name, "IPv4")
		}
		if st.IPv6 != nil {
			ch <- prometheus.MustNewConstMetric(poolTotalDesc, prometheus.GaugeValue, float64(st.IPv6.Total), name, "IPv6")
			ch <- prometheus.MustNewConstMetric(poolUsedDesc, prometheus.GaugeValue, float64(st.IPv6.Used), name, "IPv6")
		}
	}
}
