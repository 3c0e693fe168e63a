package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// report is what this node announces for one Service.
type report struct {
	namespace, service string
	via                string // "" means L2
	addresses          []netip.Addr
	interfaces         []string
	peers              []string
	conflicts          []v1alpha1.AddressConflict
}

// reportName names a ServiceAnnouncement after its Service and node,
// hashed when that would be too long for an object name.
func reportName(service, node, via string) string {
	n := strings.ToLower(service + "-" + node + "-" + via)
	if len(n) <= 253 {
		return n
	}
	h := sha256.Sum256([]byte(n))
	return n[:200] + "-" + hex.EncodeToString(h[:8])
}

// wantReports hands the latest desired reports to reportLoop, replacing any
// it has not picked up yet.
func (a *Agent) wantReports(r map[string]*report) {
	select {
	case <-a.reportsCh:
	default:
	}
	a.reportsCh <- r
}

// reportLoop writes the latest desired reports, retrying failures every
// second with whatever is latest by then.
func (a *Agent) reportLoop(ctx context.Context) {
	var pending map[string]*report
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case pending = <-a.reportsCh:
		case <-retry.C:
		}
		if pending == nil {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.writeReports(wctx, a.reports, pending)
		cancel()
		if err != nil {
			a.cfg.Log.V(1).Info("writing service announcements, will retry", "err", err)
			retry.Reset(time.Second)
			continue
		}
		pending = nil
	}
}

// writeReports makes this node's ServiceAnnouncements match what it
// announces: one per Service, written only when it differs.
func (a *Agent) writeReports(ctx context.Context, store cache.Store, want map[string]*report) error {
	have := map[string]*v1alpha1.ServiceAnnouncement{}
	for _, o := range store.List() {
		sa := o.(*v1alpha1.ServiceAnnouncement)
		have[sa.Namespace+"/"+sa.Name] = sa
	}
	var errs []string
	for _, r := range want {
		via := r.via
		if via == "" {
			via = v1alpha1.ViaL2
		}
		obj := &v1alpha1.ServiceAnnouncement{
			ObjectMeta: metav1.ObjectMeta{
				Name:      reportName(r.service, a.cfg.Node, via),
				Namespace: r.namespace,
				Labels:    map[string]string{v1alpha1.NodeLabel: a.cfg.Node},
			},
			Service: r.service, Node: a.cfg.Node, Via: via, Interfaces: r.interfaces, Peers: r.peers,
			Conflicts: r.conflicts, Addresses: []string{}, // required, even when every address is in conflict
		}
		for _, ip := range r.addresses {
			obj.Addresses = append(obj.Addresses, ip.String())
		}
		key := obj.Namespace + "/" + obj.Name
		cur, ok := have[key]
		delete(have, key)
		var err error
		switch {
		case !ok:
			err = a.cfg.Beacon.CreateIn(ctx, obj.Namespace, client.ServiceAnnouncements, obj)
		case !slices.Equal(cur.Addresses, obj.Addresses) || !slices.Equal(cur.Interfaces, obj.Interfaces) || !slices.Equal(cur.Peers, obj.Peers) ||
			!slices.Equal(cur.Conflicts, obj.Conflicts):
			obj.ResourceVersion = cur.ResourceVersion
			err = a.cfg.Beacon.UpdateIn(ctx, obj.Namespace, client.ServiceAnnouncements, obj.Name, obj)
		}
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, sa := range have {
		if err := a.cfg.Beacon.DeleteIn(ctx, sa.Namespace, client.ServiceAnnouncements, sa.Name); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("service announcements: %s", strings.Join(errs, "; "))
	}
	return nil
}

// EventL2ConfigInvalid is the reason of the Warning Event on an
// L2Advertisement the speakers cannot use (an invalid selector, say); they
// ignore it until it is fixed.
const EventL2ConfigInvalid = "InvalidL2Advertisement"

// reportL2Config records a Warning Event on each L2Advertisement whose
// problem is new or changed.
func (a *Agent) reportL2Config(l2 *config.L2Advertisements) {
	msgs := map[string]string{}
	for name, err := range l2.Invalid {
		msgs["L2Advertisement/"+name] = "invalid, ignored: " + err.Error()
	}
	a.warnObjects(a.l2warned, msgs, func(string) string { return EventL2ConfigInvalid })
}

// warnObjects records a Warning Event on each configuration object
// ("Kind/name" in msgs) whose problem is new or changed since the last call
// with the same warned map, and forgets objects whose problem went away.
// Each speaker reports what it sees; the API server aggregates the Events.
func (a *Agent) warnObjects(warned, msgs map[string]string, reason func(key string) string) {
	for k, m := range msgs {
		if warned[k] == m {
			continue
		}
		warned[k] = m
		a.cfg.Log.Info("configuration problem", "object", k, "problem", m)
		if a.cfg.Recorder == nil {
			continue
		}
		// Cluster-scoped: no namespace in the reference (the Event itself
		// lands in "default"), and the UID when known, which is what
		// `kubectl describe` matches.
		kind, name, _ := strings.Cut(k, "/")
		ref := &v1.ObjectReference{Kind: kind, APIVersion: v1alpha1.SchemeGroupVersion.String(), Name: name}
		if o, ok := a.lookupObject(kind, name); ok {
			ref.UID = o.GetUID()
		}
		a.cfg.Recorder.Eventf(ref, v1.EventTypeWarning, reason(k), "node %s: %s", a.cfg.Node, m)
	}
	for k := range warned {
		if _, ok := msgs[k]; !ok {
			delete(warned, k)
		}
	}
}

// lookupObject finds a configuration object in the caches.
func (a *Agent) lookupObject(kind, name string) (metav1.Object, bool) {
	var store cache.Store
	switch {
	case kind == "L2Advertisement":
		store = a.l2ads
	case a.bgp == nil:
		return nil, false
	case kind == "BGPPeer":
		store = a.bgp.peers
	case kind == "BGPAdvertisement":
		store = a.bgp.ads
	case kind == "BFDProfile":
		store = a.bgp.profiles
	default:
		return nil, false
	}
	o, ok, _ := store.GetByKey(name)
	if !ok {
		return nil, false
	}
	m, ok := o.(metav1.Object)
	return m, ok
}
