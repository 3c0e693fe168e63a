package nodeport

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/register"
)

// RulesetApplier is what the Syncer needs of an Applier.
type RulesetApplier interface {
	Apply(rs *Ruleset) (ApplyStats, error)
}

// SyncerConfig configures NewSyncer.
type SyncerConfig struct {
	// Input returns the current desired state; it is called once per sync
	// from the sync goroutine and should read from informer caches.
	Input func() (Input, error)
	// Applier writes rulesets; required.
	Applier RulesetApplier
	// Health, when set, serves the health-check node ports the rulesets
	// ask for. Run closes it on return.
	Health *HealthServer
	// MinInterval is the least time between two syncs; 0 means 50 ms.
	MinInterval time.Duration
	// Resync is the period of syncs without any change, which repair
	// tables changed behind Beacon's back; 0 means one minute.
	Resync time.Duration
	// MaxBackoff bounds the retry delay after failed syncs; 0 means 10 s.
	MaxBackoff time.Duration
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// Syncer is the level-triggered loop: every change calls MarkDirty; Run
// builds the whole desired Ruleset (through a Builder, which rebuilds only
// the Services whose input changed) and applies it, at most once per
// MinInterval, retrying with backoff after a failure.
type Syncer struct {
	cfg     SyncerConfig
	builder *Builder // rebuilds only the Services that changed
	dirty   chan struct{}
	healthy atomic.Bool
	synced  atomic.Bool
	m       metrics
}

type metrics struct {
	duration  *prometheus.HistogramVec
	failures  prometheus.Counter
	rules     prometheus.Gauge
	elements  prometheus.Gauge
	written   *prometheus.CounterVec
	conntrack prometheus.Counter
	warnings  prometheus.Gauge
}

// Metric names.
const (
	MetricSyncDuration     = "beacon_nodeport_sync_duration_seconds"
	MetricSyncFailures     = "beacon_nodeport_sync_failures_total"
	MetricRules            = "beacon_nodeport_rules"
	MetricElements         = "beacon_nodeport_set_elements"
	MetricWritten          = "beacon_nodeport_written_total"
	MetricConntrackDeleted = "beacon_nodeport_conntrack_deleted_total"
	MetricWarnings         = "beacon_nodeport_ruleset_warnings"
)

func newMetrics(reg prometheus.Registerer) (metrics, error) {
	m := metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricSyncDuration,
			Help:    "Time to build and apply the Service dataplane, by kind (full rebuild or partial update).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"kind"}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: MetricSyncFailures, Help: "Failed dataplane syncs."}),
		rules:     prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricRules, Help: "nftables rules in the last applied ruleset."}),
		elements:  prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricElements, Help: "nftables set and map elements in the last applied ruleset."}),
		written:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: MetricWritten, Help: "nftables objects written, by object (chain, rule, element)."}, []string{"object"}),
		conntrack: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricConntrackDeleted, Help: "Stale UDP conntrack entries deleted."}),
		warnings:  prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricWarnings, Help: "Destinations claimed by more than one Service in the last ruleset."}),
	}
	if err := register.Metrics(reg, m.duration, m.failures, m.rules, m.elements, m.written, m.conntrack, m.warnings); err != nil {
		return m, fmt.Errorf("nodeport: %w", err)
	}
	return m, nil
}

// NewSyncer checks the configuration and registers the metrics.
func NewSyncer(cfg SyncerConfig) (*Syncer, error) {
	if cfg.Input == nil || cfg.Applier == nil {
		return nil, errors.New("nodeport syncer: Input and Applier are required")
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = 50 * time.Millisecond
	}
	if cfg.Resync == 0 {
		cfg.Resync = time.Minute
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Syncer{cfg: cfg, builder: NewBuilder(), dirty: make(chan struct{}, 1), m: m}, nil
}

// MarkDirty asks for a sync; calls coalesce.
func (s *Syncer) MarkDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// Healthy reports whether the last sync succeeded.
func (s *Syncer) Healthy() bool { return s.healthy.Load() }

// Synced reports whether a sync has ever succeeded (readiness).
func (s *Syncer) Synced() bool { return s.synced.Load() }

// Run syncs until ctx ends. It syncs once at start.
func (s *Syncer) Run(ctx context.Context) error {
	if s.cfg.Health != nil {
		defer func() { _ = s.cfg.Health.Close() }()
	}
	resync := time.NewTicker(s.cfg.Resync)
	defer resync.Stop()
	retry := time.NewTimer(0) // the initial sync
	defer retry.Stop()
	var last time.Time
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.dirty:
		case <-resync.C:
		case <-retry.C:
		}
		if wait := s.cfg.MinInterval - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		select { // changes during the wait are part of this sync
		case <-s.dirty:
		default:
		}
		last = time.Now()
		if err := s.SyncOnce(); err != nil {
			failures++
			backoff := min(s.cfg.MinInterval<<min(failures, 20), s.cfg.MaxBackoff)
			if errors.Is(err, ErrInputNotReady) {
				s.cfg.Log.V(1).Info("nodeport input not ready; retrying", "in", backoff, "reason", err.Error())
			} else {
				s.cfg.Log.Error(err, "nodeport sync failed; retrying", "in", backoff, "failures", failures)
			}
			retry.Reset(backoff)
			continue
		}
		failures = 0
	}
}

// ErrInputNotReady is what Input returns (wrapped or not) while its source
// is still starting, for example before its caches have synced: the syncer
// retries as after any failure, but this is not worth an error in the log.
var ErrInputNotReady = errors.New("input not ready yet")

// SyncOnce builds and applies the desired state now. Run calls it; it is
// exported for callers that drive syncs themselves (tests, benchmarks).
func (s *Syncer) SyncOnce() error {
	start := time.Now()
	in, err := s.cfg.Input()
	if err != nil {
		s.m.failures.Inc()
		s.healthy.Store(false)
		return fmt.Errorf("nodeport input: %w", err)
	}
	rs := s.builder.Build(in)
	st, err := s.cfg.Applier.Apply(rs)
	kind := "partial"
	if st.Full {
		kind = "full"
	}
	s.m.written.WithLabelValues("chain").Add(float64(st.Chains))
	s.m.written.WithLabelValues("rule").Add(float64(st.Rules))
	s.m.written.WithLabelValues("element").Add(float64(st.Elements))
	s.m.conntrack.Add(float64(st.ConntrackDeleted))
	s.healthy.Store(err == nil)
	if err == nil && !s.synced.Swap(true) {
		// The first sync writes the whole ruleset: its netlink messages
		// are garbage the size of the ruleset, which the runtime would
		// return to the kernel over minutes.
		debug.FreeOSMemory()
	}
	var herr error
	if s.cfg.Health != nil {
		herr = s.cfg.Health.Sync(rs.Health)
	}
	if err != nil {
		s.m.failures.Inc()
		return errors.Join(err, herr)
	}
	d := time.Since(start)
	s.m.duration.WithLabelValues(kind).Observe(d.Seconds())
	rules, elements := rs.Counts()
	s.m.rules.Set(float64(rules))
	s.m.elements.Set(float64(elements))
	s.m.warnings.Set(float64(len(rs.Warnings)))
	for _, w := range rs.Warnings {
		s.cfg.Log.V(1).Info("conflicting Service destination", "warning", w)
	}
	if st.Full || st.Chains+st.Rules+st.Elements > 0 {
		s.cfg.Log.V(1).Info("nodeport synced", "kind", kind, "duration", d, "commit", st.Commit,
			"chains", st.Chains, "rules", st.Rules, "elements", st.Elements, "conntrackDeleted", st.ConntrackDeleted)
	}
	if herr != nil {
		// The dataplane is right; a port that failed to open is retried
		// at the next sync, which a resync guarantees.
		s.cfg.Log.Error(herr, "health check node ports")
	}
	return nil
}
