package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/allocator"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// syncStatusLoop writes pool and configuration status at most once per
// interval, and only for objects whose status differs from what the API
// server holds.
func (c *Controller) syncStatusLoop(ctx context.Context) {
	t := time.NewTicker(c.opts.PoolStatusInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.statusDirty:
		}
		if err := errors.Join(append(c.syncPoolStatus(ctx), c.syncConfigStatus(ctx)...)...); err != nil {
			c.log.Error(err, "writing status")
			c.markStatusDirty()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) syncPoolStatus(ctx context.Context) []error {
	pools := c.lb.Pools()
	stats := c.lb.Stats()
	conflicts := c.poolConflicts()
	var errs []error
	for _, obj := range c.pools.List() {
		cur, ok := obj.(*v1alpha1.IPPool)
		if !ok {
			continue
		}
		want := PoolStatus(cur, pools, stats[cur.Name], conflicts[cur.Name])
		if equality.Semantic.DeepEqual(cur.Status, want) {
			continue
		}
		c.metrics.writes.WithLabelValues("pool-status").Inc()
		// Not found: deleted since the cache listed it; nothing to write.
		if err := c.beacon.PatchStatus(ctx, client.IPPools, cur.Name, want); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errs
}

// PoolStatus computes the status a pool should have; conflicts describes
// its addresses that other hosts use. Condition transition times are
// carried over from cur while a condition's status is unchanged, so an
// unchanged pool compares equal and is not rewritten.
func PoolStatus(cur *v1alpha1.IPPool, pools *config.Pools, st allocator.PoolStats, conflicts []v1alpha1.AddressConflict) v1alpha1.IPPoolStatus {
	out := v1alpha1.IPPoolStatus{
		ObservedGeneration: cur.Generation,
		Conditions:         append([]metav1.Condition(nil), cur.Status.Conditions...),
	}
	set := func(typ string, ok bool, reason, msg string) {
		setCondition(&out.Conditions, cur.Generation, typ, ok, reason, msg)
	}
	if err, bad := pools.Invalid[cur.Name]; bad {
		set(v1alpha1.PoolReady, false, "InvalidSpec", err.Error())
		meta.RemoveStatusCondition(&out.Conditions, v1alpha1.PoolConflicting)
		meta.RemoveStatusCondition(&out.Conditions, v1alpha1.PoolExhausted)
		meta.RemoveStatusCondition(&out.Conditions, v1alpha1.PoolAddressConflict)
		return out
	}
	p := pools.ByName[cur.Name]
	if p == nil { // not parsed yet
		return cur.Status
	}
	out.IPv4, out.IPv6 = familyStatus(st.IPv4), familyStatus(st.IPv6)
	out.AddressConflicts = conflicts[:min(len(conflicts), 256)]
	if len(p.Conflicts) > 0 {
		set(v1alpha1.PoolConflicting, true, "Overlap", fmt.Sprintf(
			"overlaps older pool(s) %s; addresses in the overlap are handed out by those pools only", strings.Join(p.Conflicts, ", ")))
	} else {
		set(v1alpha1.PoolConflicting, false, "NoOverlap", "no overlap with older pools")
	}
	if len(conflicts) > 0 {
		set(v1alpha1.PoolAddressConflict, true, "InUseByOtherHosts", conflictMessage(conflicts))
	} else {
		set(v1alpha1.PoolAddressConflict, false, "NoConflict", "no address of this pool is known to be in use by another host")
	}
	if len(p.Ranges) == 0 {
		set(v1alpha1.PoolReady, false, "NoAddresses", "every address of this pool is declared by older pools")
	} else {
		set(v1alpha1.PoolReady, true, "Valid", "addresses can be allocated")
	}
	var empty []string
	for _, f := range []struct {
		name string
		st   *v1alpha1.FamilyStatus
	}{{"IPv4", out.IPv4}, {"IPv6", out.IPv6}} {
		if f.st != nil && f.st.Available == 0 {
			empty = append(empty, f.name)
		}
	}
	if len(empty) > 0 {
		set(v1alpha1.PoolExhausted, true, "NoFreeAddress", "no free "+strings.Join(empty, " or ")+" address")
	} else {
		set(v1alpha1.PoolExhausted, false, "FreeAddresses", "free addresses remain")
	}
	return out
}

func familyStatus(s *allocator.FamilyStats) *v1alpha1.FamilyStatus {
	if s == nil {
		return nil
	}
	return &v1alpha1.FamilyStatus{Total: s.Total, Used: s.Used, Available: s.Total - s.Used - s.Conflicting}
}
