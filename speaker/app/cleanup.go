package app

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/go-logr/logr"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/serve"
	"github.com/beaconlb/beacon/nodeport"
	"github.com/beaconlb/beacon/speaker/agent"
	"github.com/beaconlb/beacon/speaker/handoff"
)

// poolListTimeout bounds the cleaner's one IPPool listing.
const poolListTimeout = 30 * time.Second

// cleanup removes the dataplane's tables, the hand-off state and the
// neighbour entries Beacon's addresses left, all of which outlive the
// speaker on purpose (traffic keeps flowing across restarts), and then
// serves health until ctx ends: a DaemonSet of cleaners is Ready once
// every node is clean, and helm uninstall removes it.
func cleanup(ctx context.Context, log logr.Logger, o Options) error {
	pools := poolRanges(ctx, log, o)
	forgot, err := cleanKernel(log, o, pools)
	if err != nil {
		return err
	}
	log.Info("cleanup done: no Beacon nftables table, hand-off rule or route, nor neighbour entry resolving to this node's own MAC or for a Service or pool address left; waiting to be terminated", "neighbours", forgot, "poolBlocks", len(pools))
	serveHealth, err := serve.Listen(o.HealthAddr, serve.Health(func() bool { return true }))
	if err != nil {
		return err
	}
	return serveHealth(ctx)
}

// cleanKernel cleans the caller's network namespace and returns how many
// neighbour entries it deleted. It reads the addresses the dataplane's
// tables serve before deleting them; pools adds the IPPools' blocks, since
// the documented uninstall releases every Service address (emptying the
// tables) before the cleaners run.
func cleanKernel(log logr.Logger, o Options, pools []config.Range) (int, error) {
	applier, err := nodeport.NewKernelApplier(nodeport.KernelConfig{NoConntrack: true}, log.WithName("nodeport"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = applier.Close() }()
	var errs []error
	served, err := applier.ServedAddrs()
	if err != nil {
		errs = append(errs, fmt.Errorf("read the addresses the dataplane serves: %w", err))
	}
	if _, err := applier.Apply(&nodeport.Ruleset{}); err != nil {
		errs = append(errs, fmt.Errorf("delete the dataplane's tables: %w", err))
	}
	hk := handoff.NewKernel(o.HandoffMark, o.HandoffTable, log.WithName("handoff"))
	defer func() { _ = hk.Close() }()
	if err := hk.Remove(); err != nil {
		errs = append(errs, fmt.Errorf("remove hand-off state: %w", err))
	}
	forgot, err := agent.ForgetNeighbours(beaconAddr(served, pools))
	if err != nil {
		errs = append(errs, err)
	}
	return forgot, errors.Join(errs...)
}

// beaconAddr reports whether an address is one of served or in a block of
// pools.
func beaconAddr(served []netip.Addr, pools []config.Range) func(netip.Addr) bool {
	set := make(map[netip.Addr]bool, len(served))
	for _, a := range served {
		set[a] = true
	}
	return func(a netip.Addr) bool {
		if set[a] {
			return true
		}
		for _, r := range pools {
			if r.Contains(a) {
				return true
			}
		}
		return false
	}
}

// poolRanges returns the blocks every IPPool declares. The kernel cleanup
// must not depend on the API, so without it (or the CRD, or the right to
// list) it logs why and returns none.
func poolRanges(ctx context.Context, log logr.Logger, o Options) []config.Range {
	cs, err := cli.NewClients(o.RestConfig, o.Kubeconfig, "beacon-speaker/"+o.NodeName, 0, 0)
	if err != nil {
		log.Info("cannot list IPPools: only neighbour entries of addresses the dataplane serves are forgotten", "err", err.Error())
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, poolListTimeout)
	defer cancel()
	var list v1alpha1.IPPoolList
	if err := cs.Beacon.List(lctx, "", client.IPPools, &list); err != nil {
		log.Info("cannot list IPPools: only neighbour entries of addresses the dataplane serves are forgotten", "err", err.Error())
		return nil
	}
	var out []config.Range
	for _, p := range config.ParsePools(list.Items).ByName {
		out = append(out, p.Declared...)
	}
	return out
}
