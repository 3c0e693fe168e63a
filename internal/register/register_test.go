package register

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "beacon_test_total", Help: "h"})
	if err := Metrics(reg, c); err != nil {
		t.Fatal(err)
	}
	if err := Metrics(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "beacon_test_total", Help: "h"})); err == nil {
		t.Error("a name registered twice gave no error")
	}
	if err := Metrics(nil, c); err != nil {
		t.Errorf("nil registerer: %v", err)
	}
}
