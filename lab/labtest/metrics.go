package labtest

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Metric returns the value of one series, written as it appears in the
// Prometheus text format (`name{label="v"}`, labels in the exporter's
// order), from an exporter's reply; false if the series is not there.
func Metric(r io.Reader, series string) (float64, bool, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil, err
		}
	}
	return 0, false, sc.Err()
}
