package agent

import (
	"fmt"
	"net/netip"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/nodeport"
)

// Dirtier is told about every watched change (the dataplane's syncer).
type Dirtier interface{ MarkDirty() }

// errNotSynced is returned before the caches have synced.
var errNotSynced = fmt.Errorf("caches not synced: %w", nodeport.ErrInputNotReady)

// NodeportInput builds the dataplane's desired state from the agent's
// caches, so the node runs one set of watches for both jobs. Only one
// goroutine (the dataplane's sync loop) may call it.
func (a *Agent) NodeportInput(mode nodeport.Mode) (nodeport.Input, error) {
	if a.cfg.Forwarding == nodeport.ModeOff && mode != nodeport.ModeOff {
		return nodeport.Input{}, fmt.Errorf("dataplane mode %s: the caches hold what --dataplane=off reads only", mode)
	}
	if !a.synced.Load() {
		return nodeport.Input{}, errNotSynced
	}
	in := nodeport.Input{Mode: mode, NodeName: a.cfg.Node}
	if mode == nodeport.ModeOff {
		// Programs nothing: converting every Service would only hold
		// memory (about 1 KB per Service and endpoint slice).
		return in, nil
	}
	if o, ok, _ := a.w.nodes.GetStore().GetByKey(a.cfg.Node); ok {
		n := o.(*v1.Node)
		in.NodeAddresses = nodeport.NodeAddressesFromKube(n)
		for _, c := range n.Spec.PodCIDRs {
			if p, err := netip.ParsePrefix(c); err == nil {
				in.PodCIDRs = append(in.PodCIDRs, p)
			}
		}
	}
	in.Services = a.kube.Services(list[v1.Service](a.w.services), list[discoveryv1.EndpointSlice](a.w.slices),
		externalIPAllowed(config.ParsePools(values[v1alpha1.IPPool](a.w.pools))))
	return in, nil
}

// externalIPAllowed admits a spec.externalIPs address only inside a pool
// with allowExternalIPs: anything else could hijack other tenants' traffic.
func externalIPAllowed(ps *config.Pools) func(netip.Addr) bool {
	return func(ip netip.Addr) bool {
		p := ps.ByName[ps.PoolOf(ip)]
		return p != nil && p.AllowExternalIPs
	}
}
