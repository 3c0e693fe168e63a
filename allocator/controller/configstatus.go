package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// configStores are the caches of the configuration objects that get an
// Accepted condition, and of the speakers' session reports, which tell
// whether a peer's password Secret is usable.
type configStores struct {
	l2ads, peers, bgpAds, profiles, sessions cache.Store
}

// syncConfigStatus judges every L2Advertisement and BGP object with the
// parse functions the speakers use and writes the status of those whose
// status differs from what the API server holds.
func (c *Controller) syncConfigStatus(ctx context.Context) []error {
	s := c.config
	pools := c.lb.Pools()
	verdicts := config.Judge(
		config.ParseL2Advertisements(items[v1alpha1.L2Advertisement](s.l2ads), pools),
		config.ParseBGP(items[v1alpha1.BGPPeer](s.peers), items[v1alpha1.BGPAdvertisement](s.bgpAds), items[v1alpha1.BFDProfile](s.profiles), pools),
		items[v1alpha1.BGPSessionState](s.sessions))
	var errs []error
	for _, kind := range []struct {
		name, resource string
		store          cache.Store
	}{
		{"L2Advertisement", client.L2Advertisements, s.l2ads},
		{"BGPPeer", client.BGPPeers, s.peers},
		{"BGPAdvertisement", client.BGPAdvertisements, s.bgpAds},
		{"BFDProfile", client.BFDProfiles, s.profiles},
	} {
		for _, o := range kind.store.List() {
			obj, cur, ok := configStatusOf(o)
			if !ok {
				continue
			}
			v, ok := verdicts[kind.name+"/"+obj.GetName()]
			if !ok {
				continue
			}
			want := ConfigStatus(cur, obj.GetGeneration(), v)
			if equality.Semantic.DeepEqual(*cur, want) {
				continue
			}
			c.metrics.writes.WithLabelValues("config-status").Inc()
			// Not found: deleted since the cache listed it; nothing to write.
			if err := c.beacon.PatchStatus(ctx, kind.resource, obj.GetName(), want); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// ConfigStatus computes the status a configuration object should have from
// its verdict, keeping transition times of unchanged conditions so that an
// unchanged object compares equal and is not rewritten.
func ConfigStatus(cur *v1alpha1.ConfigStatus, generation int64, v config.Verdict) v1alpha1.ConfigStatus {
	out := v1alpha1.ConfigStatus{
		ObservedGeneration: generation,
		Conditions:         append([]metav1.Condition(nil), cur.Conditions...),
	}
	setCondition(&out.Conditions, generation, v1alpha1.ConditionAccepted, v.Accepted.OK, v.Accepted.Reason, v.Accepted.Message)
	if r := v.ResolvedRefs; r != nil {
		setCondition(&out.Conditions, generation, v1alpha1.ConditionResolvedRefs, r.OK, r.Reason, r.Message)
	} else {
		meta.RemoveStatusCondition(&out.Conditions, v1alpha1.ConditionResolvedRefs)
	}
	return out
}

// setCondition sets a True or False condition, keeping its transition time
// while its status is unchanged.
func setCondition(conds *[]metav1.Condition, generation int64, typ string, ok bool, reason, msg string) {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: generation,
	})
}

// items copies the objects of a cache into a list for the parse functions.
func items[T any](store cache.Store) []T {
	objs := store.List()
	out := make([]T, 0, len(objs))
	for _, o := range objs {
		if t, ok := o.(*T); ok {
			out = append(out, *t)
		}
	}
	return out
}

// configStatusOf returns a configuration object and its status.
func configStatusOf(o any) (metav1.Object, *v1alpha1.ConfigStatus, bool) {
	switch t := o.(type) {
	case *v1alpha1.L2Advertisement:
		return t, &t.Status, true
	case *v1alpha1.BGPPeer:
		return t, &t.Status, true
	case *v1alpha1.BGPAdvertisement:
		return t, &t.Status, true
	case *v1alpha1.BFDProfile:
		return t, &t.Status, true
	}
	return nil, nil, false
}

// watchConfig makes any change of a configuration object's spec (or its
// appearance or removal) trigger a status sync; status-only updates are
// our own writes.
func (c *Controller) watchConfig(inf cache.SharedIndexInformer) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.markStatusDirty() },
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(metav1.Object)
			n, ok2 := obj.(metav1.Object)
			if ok1 && ok2 && o.GetGeneration() == n.GetGeneration() {
				return
			}
			c.markStatusDirty()
		},
		DeleteFunc: func(any) { c.markStatusDirty() },
	})
	if err != nil {
		return fmt.Errorf("configuration handler: %w", err)
	}
	return nil
}

// watchSessions makes a change of what a speaker reports about a password
// Secret trigger a status sync; the session's state, which changes far
// more often, does not.
func (c *Controller) watchSessions(inf cache.SharedIndexInformer) error {
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { c.markStatusDirty() },
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*v1alpha1.BGPSessionState)
			n, ok2 := obj.(*v1alpha1.BGPSessionState)
			if ok1 && ok2 && o.PasswordSecret == n.PasswordSecret && o.Peer == n.Peer && o.Node == n.Node {
				return
			}
			c.markStatusDirty()
		},
		DeleteFunc: func(any) { c.markStatusDirty() },
	})
	if err != nil {
		return fmt.Errorf("session report handler: %w", err)
	}
	return nil
}
