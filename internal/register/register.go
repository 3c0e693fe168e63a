// Package register registers collectors the one way Beacon does: with
// Register, returning the error, so that a wiring mistake (a name
// registered twice) fails a constructor instead of panicking.
package register

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics registers every collector with reg; a nil reg registers none.
func Metrics(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w", err)
		}
	}
	return nil
}
