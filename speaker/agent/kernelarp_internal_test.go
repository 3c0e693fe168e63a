package agent

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/metricstest"
	"github.com/beaconlb/beacon/speaker/kernelarp"
)

// TestKernelWatch follows the gauge and the Events of one speaker through
// checks: a Warning when answers appear, a Normal Event when they are gone,
// never two Events within kernelEventInterval, and a change held back is
// recorded by a later check.
func TestKernelWatch(t *testing.T) {
	ip := netip.MustParseAddr
	ipvs := []kernelarp.Answer{{IP: ip("198.51.100.200"), Interface: "eth0", HeldOn: "kube-ipvs0"}}
	more := append(ipvs, kernelarp.Answer{IP: ip("2001:db8:100::200"), Interface: "eth0", HeldOn: "eth0"})
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	steps := []struct {
		at      time.Duration
		answers []kernelarp.Answer
		changed bool
		event   string // reason, "" for none
		v4, v6  float64
	}{
		{at: 0, changed: false},
		{at: time.Second, answers: ipvs, changed: true, event: EventKernelAnswers, v4: 1},
		{at: 2 * time.Second, answers: ipvs, v4: 1},
		{at: 3 * time.Second, answers: more, changed: true, v4: 1, v6: 1},
		{at: 10 * time.Second, changed: true},                    // cleared, but too soon
		{at: 20 * time.Second},                                   // still too soon
		{at: 31 * time.Second, event: EventKernelAnswersCleared}, // held back, recorded now
		{at: 40 * time.Second, answers: ipvs, changed: true, v4: 1},
		{at: 62 * time.Second, answers: ipvs, event: EventKernelAnswers, v4: 1},
	}
	k := newKernelWatch()
	reg := prometheus.NewRegistry()
	reg.MustRegister(k.gauge)
	gauge := func(family string) float64 {
		m := metricstest.Find(t, reg, "beacon_l2_kernel_answered_addresses", map[string]string{"family": family})
		if m == nil {
			t.Fatalf("no beacon_l2_kernel_answered_addresses{family=%q}", family)
		}
		return m.GetGauge().GetValue()
	}
	for _, s := range steps {
		changed, ev := k.update("n2", s.answers, t0.Add(s.at))
		reason := ""
		if ev != nil {
			reason = ev.Reason
			if ev.Kind != "Node" || ev.Name != "n2" {
				t.Errorf("at %v: Event on %s %s, want Node n2", s.at, ev.Kind, ev.Name)
			}
		}
		if changed != s.changed || reason != s.event {
			t.Errorf("at %v: changed %v, Event %q; want %v, %q", s.at, changed, reason, s.changed, s.event)
		}
		if v4, v6 := gauge("ipv4"), gauge("ipv6"); v4 != s.v4 || v6 != s.v6 {
			t.Errorf("at %v: gauge ipv4 %v ipv6 %v, want %v %v", s.at, v4, v6, s.v4, s.v6)
		}
	}
}

func TestKernelMessage(t *testing.T) {
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		answers []kernelarp.Answer
		want    []string
	}{
		{
			answers: []kernelarp.Answer{{IP: ip("198.51.100.200"), Interface: "eth0", HeldOn: "kube-ipvs0"}, {IP: ip("198.51.100.201"), Interface: "eth0", HeldOn: "kube-ipvs0"}},
			want:    []string{"node n2:", "answers ARP", "2 L2 address(es)", "198.51.100.200 on eth0", "interface kube-ipvs0 holds it", "effective arp_ignore of eth0 is 0", "ipvs.strictARP: true"},
		},
		{
			answers: []kernelarp.Answer{{IP: ip("2001:db8:100::200"), Interface: "eth0", HeldOn: "eth0"}},
			want:    []string{"answers NDP", "1 L2 address(es)", "it is on eth0 itself", "remove the address from eth0"},
		},
	} {
		v4, v6 := kernelarp.Count(tc.answers)
		msg := kernelMessage("n2", tc.answers, v4+v6)
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("message %q lacks %q", msg, w)
			}
		}
	}
}
