// Package app wires the speaker into a process: flags, API clients, member
// liveness, the agent (L2, BGP and flow hand-off), the nftables dataplane,
// metrics and health endpoints.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/register"
	"github.com/beaconlb/beacon/internal/serve"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/agent"
	"github.com/beaconlb/beacon/speaker/bgp"
	"github.com/beaconlb/beacon/speaker/carrier"
	"github.com/beaconlb/beacon/speaker/drain"
	"github.com/beaconlb/beacon/speaker/election"
	"github.com/beaconlb/beacon/speaker/handoff"
	"github.com/beaconlb/beacon/speaker/l2"
	"github.com/beaconlb/beacon/speaker/member"
)

// Options are the speaker's settings; every one but the node name has a
// usable default.
type Options struct {
	Kubeconfig        string
	NodeName          string
	LoadBalancerClass string
	MetricsAddr       string
	HealthAddr        string
	MemberPort        int
	MemberKeyFile     string
	MemberInterval    time.Duration
	MemberDeadAfter   time.Duration
	MemberWatchers    int
	Dataplane         string
	HandoffWindow     time.Duration
	HandoffMark       uint32
	HandoffTable      int
	BGP               string
	Namespace         string
	DrainDelay        time.Duration
	Cleanup           bool

	// RestConfig, when set, is used instead of Kubeconfig (tests).
	RestConfig *rest.Config
}

// AddFlags registers the options on fs with their defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file; in-cluster configuration when empty")
	fs.StringVar(&o.NodeName, "node-name", os.Getenv("NODE_NAME"), "this node's name (default: $NODE_NAME)")
	fs.StringVar(&o.LoadBalancerClass, "load-balancer-class", "", "announce only Services of this loadBalancerClass; empty: Services without a class")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", ":9473", "address for /metrics; empty or 0 disables")
	fs.StringVar(&o.HealthAddr, "health-addr", ":9474", "address for /healthz and /readyz; empty or 0 disables")
	fs.IntVar(&o.MemberPort, "member-port", 7946, "UDP port for speaker heartbeats (same on every node)")
	fs.IntVar(&o.MemberWatchers, "member-watchers", member.DefaultWatchers, "peers that watch each speaker's heartbeats and tell the others when it goes silent; 0 beats every peer (the protocol of speakers before version 3 of the wire)")
	fs.DurationVar(&o.MemberInterval, "member-interval", 0, "time between heartbeats (default 32ms, or 60ms with --member-watchers=0)")
	fs.DurationVar(&o.MemberDeadAfter, "member-dead-after", 0, "silence after which a watched peer speaker is dead, at least twice the interval (default 280ms, or 240ms with --member-watchers=0)")
	fs.StringVar(&o.MemberKeyFile, "member-key-file", "", "file holding a shared key that authenticates heartbeats (recommended)")
	fs.StringVar(&o.BGP, "bgp", "auto", "BGP mode: auto (sessions open when BGPPeers select this node; needs the BGP CRDs) or off")
	fs.StringVar(&o.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the speaker's namespace, holding BGPPeer password Secrets (default: $POD_NAMESPACE)")
	fs.StringVar(&o.Dataplane, "dataplane", "external", "Service forwarding in nftables: full (replaces kube-proxy), external (LoadBalancer and externalIPs only), off")
	fs.DurationVar(&o.HandoffWindow, "handoff-window", handoff.DefaultWindow, "after taking an address over from a live node, send that node the address's TCP flows this node does not know, for this long; 0 disables")
	o.HandoffMark = handoff.DefaultMark
	fs.Func("handoff-mark", fmt.Sprintf("packet-mark bit for handed-off flows (default %#x); must be free on the node", handoff.DefaultMark), func(v string) error {
		m, err := strconv.ParseUint(v, 0, 32)
		if err != nil || m == 0 || m&(m-1) != 0 {
			return fmt.Errorf("want one bit, such as 0x200000")
		}
		o.HandoffMark = uint32(m)
		return nil
	})
	fs.DurationVar(&o.DrainDelay, "drain-delay", drain.DefaultDelay, "when this node is labelled "+election.ExcludeLabel+", send its BGP routes with the GRACEFUL_SHUTDOWN community (65535:0) for this long before withdrawing them; 0 withdraws at once")
	fs.IntVar(&o.HandoffTable, "handoff-table", handoff.DefaultRouting, "routing table id for handed-off flows")
	fs.BoolVar(&o.Cleanup, "cleanup", false, "remove what the speaker leaves in the node's kernel (nftables tables beacon*, hand-off rules and routes, neighbour entries resolving to the node's own MACs or for an address the tables served or an IPPool holds), announce nothing, and wait until terminated (for uninstalling)")
}

// Run runs the speaker until ctx ends.
func Run(ctx context.Context, log logr.Logger, o Options) error {
	if o.Cleanup {
		return cleanup(ctx, log, o)
	}
	if o.NodeName == "" {
		return errors.New("node name unknown: pass --node-name or set NODE_NAME")
	}
	mode, err := nodeport.ParseMode(o.Dataplane)
	if err != nil {
		return err
	}
	cs, err := cli.NewClients(o.RestConfig, o.Kubeconfig, "beacon-speaker/"+o.NodeName, 0, 0)
	if err != nil {
		return err
	}
	reg, err := cli.Registry()
	if err != nil {
		return err
	}
	l2m, err := l2.NewMetrics(reg)
	if err != nil {
		return err
	}
	mem, err := newMember(log, reg, o)
	if err != nil {
		return err
	}
	speaker, err := newBGP(ctx, log, reg, cs.Beacon, o.BGP)
	if err != nil {
		return err
	}
	recorder, stopEvents, err := cs.Recorder(ctx, v1.EventSource{Component: "beacon-speaker", Host: o.NodeName})
	if err != nil {
		return err
	}
	defer stopEvents()

	links := agent.NewKernelLinks(log.WithName("l2"), l2m)
	var ag *agent.Agent
	dp, applier, err := newDataplane(log.WithName("nodeport"), reg, func() (nodeport.Input, error) { return ag.NodeportInput(mode) })
	if err != nil {
		return fmt.Errorf("dataplane (--dataplane=%s): %w", mode, err)
	}
	defer func() { _ = applier.Close() }()
	hk := handoff.NewKernel(o.HandoffMark, o.HandoffTable, log.WithName("handoff"))
	defer func() { _ = hk.Close() }()
	acfg := agent.Config{
		Node: o.NodeName, Clients: *cs, Liveness: mem, Links: links,
		Recorder: recorder, Log: log.WithName("agent"), MemberPort: uint16(o.MemberPort),
		LoadBalancerClass: o.LoadBalancerClass, Registerer: reg, Dataplane: dp, Namespace: o.Namespace,
		HandoffWindow: o.HandoffWindow, DrainDelay: o.DrainDelay, Forwarding: mode,
	}
	if acfg.Handoff, err = useHandoff(log, reg, hk, o.HandoffWindow); err != nil {
		return err
	}
	if speaker != nil {
		acfg.BGP = speaker
	}
	if ag, err = agent.New(acfg); err != nil {
		return err
	}

	serveMetrics, err := serve.Listen(o.MetricsAddr, serve.Metrics(reg))
	if err != nil {
		return err
	}
	serveHealth, err := serve.Listen(o.HealthAddr, serve.Health(ag.Ready))
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveMetrics(gctx) })
	g.Go(func() error { return serveHealth(gctx) })
	g.Go(func() error { return mem.Run(gctx) })
	g.Go(func() error { return carrier.New(log.WithName("carrier"), mem.SetNoCarrier).Run(gctx) })
	g.Go(func() error { return dp.Run(gctx) })
	if speaker != nil {
		g.Go(func() error { return speaker.Run(gctx) })
	}
	g.Go(func() error {
		err := ag.Run(gctx)
		links.Wait()
		return err
	})
	return g.Wait()
}

// newMember builds the member layer (speaker liveness).
func newMember(log logr.Logger, reg prometheus.Registerer, o Options) (*member.Member, error) {
	var key []byte
	if o.MemberKeyFile != "" {
		var err error
		if key, err = os.ReadFile(o.MemberKeyFile); err != nil {
			return nil, fmt.Errorf("member key: %w", err)
		}
	}
	mm, err := member.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	return member.New(member.Config{
		Name:          o.NodeName,
		ListenAddress: fmt.Sprintf(":%d", o.MemberPort),
		Interval:      o.MemberInterval,
		DeadAfter:     o.MemberDeadAfter,
		Watchers:      o.MemberWatchers,
		Key:           key,
		Logger:        log.WithName("member"),
		Metrics:       mm,
	})
}

// newBGP returns the BGP speaker, or nil when BGP mode is off (--bgp=off,
// or auto without the BGP kinds served to this speaker).
func newBGP(ctx context.Context, log logr.Logger, reg prometheus.Registerer, c *client.Client, mode string) (*bgp.Speaker, error) {
	switch mode {
	case "auto":
		if !bgpServed(ctx, log, c) {
			return nil, nil
		}
		return bgp.New(bgp.Config{Log: log.WithName("bgp"), Registerer: reg})
	case "off":
		return nil, nil
	}
	return nil, fmt.Errorf("--bgp=%s: want auto or off", mode)
}

// useHandoff returns the hand-off to use, or nil (hand-off disabled, and
// any rules an earlier run left removed).
func useHandoff(log logr.Logger, reg prometheus.Registerer, hk *handoff.Kernel, window time.Duration) (agent.Handoff, error) {
	if window <= 0 {
		if err := hk.Remove(); err != nil {
			log.Error(err, "cannot remove hand-off rules left by an earlier run")
		}
		return nil, nil
	}
	if err := register.Metrics(reg, hk); err != nil {
		return nil, fmt.Errorf("hand-off: %w", err)
	}
	return hk, nil
}

// bgpServed reports whether the API server serves the BGP kinds to this
// speaker: without their CRDs or RBAC (an older chart) the speaker runs L2
// only instead of waiting forever for caches that cannot sync.
func bgpServed(ctx context.Context, log logr.Logger, c *client.Client) bool {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := c.List(lctx, "", client.BGPPeers, &v1alpha1.BGPPeerList{})
	switch {
	case apierrors.IsNotFound(err):
		log.Info("BGP mode off: the API server does not serve bgppeers.beaconlb.io (install the BGP CRDs)")
		return false
	case apierrors.IsForbidden(err):
		log.Info("BGP mode off: this speaker may not list bgppeers.beaconlb.io (RBAC)", "err", err.Error())
		return false
	}
	return true
}

// newDataplane builds the nftables syncer. Its rules stay in the kernel when
// the speaker stops, so traffic keeps flowing across restarts.
func newDataplane(log logr.Logger, reg prometheus.Registerer, input func() (nodeport.Input, error)) (*nodeport.Syncer, *nodeport.KernelApplier, error) {
	applier, err := nodeport.NewKernelApplier(nodeport.KernelConfig{}, log)
	if err != nil {
		return nil, nil, err
	}
	var s *nodeport.Syncer
	health := nodeport.NewHealthServer(nodeport.HealthConfig{Log: log, Healthy: func() bool { return s.Healthy() }})
	s, err = nodeport.NewSyncer(nodeport.SyncerConfig{
		Input: input, Applier: applier, Health: health, Registerer: reg, Log: log,
	})
	if err != nil {
		_ = applier.Close()
		return nil, nil, err
	}
	return s, applier, nil
}
