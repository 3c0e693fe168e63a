package nodeport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/beaconlb/beacon/internal/metricstest"
)

type fakeApplier struct {
	mu      sync.Mutex
	applied []*Ruleset
	fail    int // fail this many applies first
	calls   chan struct{}
}

func (f *fakeApplier) Apply(rs *Ruleset) (ApplyStats, error) {
	f.mu.Lock()
	defer func() {
		f.mu.Unlock()
		f.calls <- struct{}{}
	}()
	if f.fail > 0 {
		f.fail--
		return ApplyStats{}, errors.New("boom")
	}
	f.applied = append(f.applied, rs)
	return ApplyStats{Full: len(f.applied) == 1, Rules: 3}, nil
}

func (f *fakeApplier) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

func waitCall(t *testing.T, c chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(5 * time.Second):
		t.Fatal("no sync")
	}
}

func startSyncer(t *testing.T, cfg SyncerConfig) (*Syncer, context.CancelFunc) {
	t.Helper()
	s, err := NewSyncer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return")
		}
	})
	return s, cancel
}

func TestSyncerCoalescesAndRateLimits(t *testing.T) {
	fa := &fakeApplier{calls: make(chan struct{}, 100)}
	var mu sync.Mutex
	inputs := 0
	reg := prometheus.NewRegistry()
	s, _ := startSyncer(t, SyncerConfig{
		Input: func() (Input, error) {
			mu.Lock()
			defer mu.Unlock()
			inputs++
			return fixture(), nil
		},
		Applier:     fa,
		MinInterval: 200 * time.Millisecond,
		Resync:      time.Hour,
		Registerer:  reg,
		Log:         testr.New(t),
	})
	waitCall(t, fa.calls) // the initial sync
	eventually(t, 5*time.Second, "synced", func() error {
		if !s.Synced() || !s.Healthy() {
			return errors.New("not synced after the first sync")
		}
		return nil
	})
	start := time.Now()
	for range 10 {
		s.MarkDirty()
	}
	waitCall(t, fa.calls)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("second sync after %s, want the minimum interval", d)
	}
	// Ten marks made one sync (maybe two if the first landed mid-way).
	select {
	case <-fa.calls:
		select {
		case <-fa.calls:
			t.Error("ten MarkDirty calls made three syncs")
		case <-time.After(400 * time.Millisecond):
		}
	case <-time.After(400 * time.Millisecond):
	}
	if got := metric(t, reg, MetricSyncDuration, "full"); got.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("full syncs %v", got)
	}
	if got := metric(t, reg, MetricSyncDuration, "partial"); got.GetHistogram().GetSampleCount() < 1 {
		t.Errorf("partial syncs %v", got)
	}
	rules, _ := Build(fixture()).Counts()
	if got := metric(t, reg, MetricRules, "").GetGauge().GetValue(); got != float64(rules) {
		t.Errorf("rules gauge %v, want %d", got, rules)
	}
	if got := metric(t, reg, MetricWritten, "rule").GetCounter().GetValue(); got < 6 {
		t.Errorf("rules written %v", got)
	}
}

func TestSyncerRetriesFailures(t *testing.T) {
	fa := &fakeApplier{calls: make(chan struct{}, 100), fail: 2}
	reg := prometheus.NewRegistry()
	s, _ := startSyncer(t, SyncerConfig{
		Input:       func() (Input, error) { return fixture(), nil },
		Applier:     fa,
		MinInterval: 10 * time.Millisecond,
		Resync:      time.Hour,
		Registerer:  reg,
		Log:         testr.New(t),
	})
	waitCall(t, fa.calls)
	if s.Synced() {
		t.Error("synced after a failed sync")
	}
	// No MarkDirty: the failure alone brings the retries.
	waitCall(t, fa.calls)
	waitCall(t, fa.calls)
	eventually(t, 5*time.Second, "healthy after the retries", func() error {
		if fa.count() != 1 || !s.Healthy() {
			return fmt.Errorf("applied %d, healthy %v", fa.count(), s.Healthy())
		}
		return nil
	})
	if got := metric(t, reg, MetricSyncFailures, "").GetCounter().GetValue(); got != 2 {
		t.Errorf("failures %v", got)
	}
}

func TestSyncerResyncsPeriodically(t *testing.T) {
	fa := &fakeApplier{calls: make(chan struct{}, 100)}
	startSyncer(t, SyncerConfig{
		Input:       func() (Input, error) { return fixture(), nil },
		Applier:     fa,
		MinInterval: time.Millisecond,
		Resync:      20 * time.Millisecond,
		Log:         testr.New(t),
	})
	for range 3 {
		waitCall(t, fa.calls)
	}
}

func TestSyncerServesHealthChecks(t *testing.T) {
	l := &loopbackListen{addrs: map[string]string{}}
	fa := &fakeApplier{calls: make(chan struct{}, 100)}
	var s *Syncer
	h := NewHealthServer(HealthConfig{Log: testr.New(t), Listen: l.listen, Healthy: func() bool { return s.Healthy() }})
	s, cancel := startSyncer(t, SyncerConfig{
		Input:   func() (Input, error) { return fixture(), nil },
		Applier: fa,
		Health:  h,
		Resync:  time.Hour,
		Log:     testr.New(t),
	})
	waitCall(t, fa.calls)
	eventually(t, 5*time.Second, "health port", func() error {
		if len(h.Ports()) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	eventually(t, 5*time.Second, "health check 200", func() error {
		if code, r, _ := getHealth(t, l.url("32000")); code != 200 || r.Service.Name != "dns-local" {
			return fmt.Errorf("%d %+v", code, r)
		}
		return nil
	})
	cancel()
	eventually(t, 5*time.Second, "health closed", func() error {
		if len(h.Ports()) != 0 {
			return errors.New("still open")
		}
		return nil
	})
}

func TestNewSyncerValidates(t *testing.T) {
	if _, err := NewSyncer(SyncerConfig{}); err == nil {
		t.Error("want an error without Input and Applier")
	}
	reg := prometheus.NewRegistry()
	cfg := SyncerConfig{Input: func() (Input, error) { return Input{}, nil }, Applier: &fakeApplier{}, Registerer: reg}
	if _, err := NewSyncer(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSyncer(cfg); err == nil {
		t.Error("want an error registering the metrics twice")
	}
}

// metric returns the series of the named family with the given label
// value ("" for an unlabelled metric); the label's name is implied.
func metric(t *testing.T, reg *prometheus.Registry, name, label string) *dto.Metric {
	t.Helper()
	labels := map[string]string{}
	switch {
	case label == "":
	case name == MetricSyncDuration:
		labels["kind"] = label
	default:
		labels["object"] = label
	}
	m := metricstest.Find(t, reg, name, labels)
	if m == nil {
		t.Fatalf("no metric %s{%s}", name, label)
	}
	return m
}

func TestSyncerWaitsForInputWithoutErrors(t *testing.T) {
	fa := &fakeApplier{calls: make(chan struct{}, 100)}
	var mu sync.Mutex
	var lines []string
	log := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, args)
	}, funcr.Options{Verbosity: 1})
	notReady := 2
	var inputs sync.Mutex
	startSyncer(t, SyncerConfig{
		Input: func() (Input, error) {
			inputs.Lock()
			defer inputs.Unlock()
			if notReady > 0 {
				notReady--
				return Input{}, fmt.Errorf("caches: %w", ErrInputNotReady)
			}
			return fixture(), nil
		},
		Applier:     fa,
		MinInterval: 10 * time.Millisecond,
		Resync:      time.Hour,
		Registerer:  prometheus.NewRegistry(),
		Log:         log,
	})
	// No MarkDirty: the not-ready input alone brings the retries.
	waitCall(t, fa.calls)
	mu.Lock()
	defer mu.Unlock()
	retries := 0
	for _, l := range lines {
		if strings.Contains(l, `"error"=`) {
			t.Errorf("logged an error while the input was not ready: %s", l)
		}
		if strings.Contains(l, "nodeport input not ready") {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("%d not-ready retries logged at V(1), want 2 (log: %q)", retries, lines)
	}
}
