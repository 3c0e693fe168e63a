package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/speaker/plan"
)

// reportName names a ServiceAnnouncement after its Service, node and mode,
// hashed when that would be too long for an object name.
func reportName(service, node, via string) string {
	return objectName(service + "-" + node + "-" + via)
}

// wantReports hands the latest desired reports to reportLoop, replacing any
// it has not picked up yet.
func (a *Agent) wantReports(r []plan.Report) {
	select {
	case <-a.reportsCh:
	default:
	}
	a.reportsCh <- r
}

// reportLoop writes the latest desired reports, retrying failures every
// second with whatever is latest by then, and a report held back for a
// create the cache has not shown yet as soon as it may.
func (a *Agent) reportLoop(ctx context.Context) {
	var pending []plan.Report
	created := map[string]createdReport{}
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
		held, err := a.writeReports(wctx, pending, created)
		cancel()
		switch {
		case err != nil:
			a.cfg.Log.V(1).Info("writing service announcements, will retry", "err", err)
			retry.Reset(time.Second)
		case held:
			retry.Reset(heldRetry)
		default:
			pending = nil
		}
	}
}

// createdVisible is how long a report this node created may stay out of
// its cache before it is created again.
const createdVisible = 10 * time.Second

// heldRetry is how soon a report held back for its create is tried
// again; a cache shows a create within milliseconds, and a probe's result
// must reach the controller well within its probe timeout.
const heldRetry = 50 * time.Millisecond

// createdReport is a report this node created and its cache may not show
// yet: when, and as what.
type createdReport struct {
	at  time.Time
	obj *v1alpha1.ServiceAnnouncement
}

// writeReports makes this node's ServiceAnnouncements match what it
// announces: one per Service and mode, written only when it differs.
// created holds the reports this node created that its cache may not
// show yet: the next call, often within milliseconds, would create them
// again. A report that changed since its create is held back until the
// cache shows it (held): it is updated then, not lost.
func (a *Agent) writeReports(ctx context.Context, want []plan.Report, created map[string]createdReport) (held bool, err error) {
	have := map[string]*v1alpha1.ServiceAnnouncement{}
	for _, sa := range list[v1alpha1.ServiceAnnouncement](a.w.reports) {
		have[sa.Namespace+"/"+sa.Name] = sa
	}
	now := time.Now()
	for key, c := range created {
		if _, ok := have[key]; ok || now.Sub(c.at) > createdVisible {
			delete(created, key)
		}
	}
	var errs []error
	for _, r := range want {
		key := r.Namespace + "/" + reportName(r.Service, a.cfg.Node, r.Via)
		cur, ok := have[key]
		delete(have, key)
		if c, pending := created[key]; pending && !ok {
			held = held || !reported(c.obj, r)
			continue // compared once the cache has it
		}
		// Compared before an object is built: at 10,000 Services the
		// objects of every unchanged report would be garbage each call.
		if ok && reported(cur, r) {
			continue
		}
		obj := a.announcement(r)
		var err error
		if !ok {
			if err = a.cfg.Clients.Beacon.CreateIn(ctx, obj.Namespace, client.ServiceAnnouncements, obj); err == nil {
				created[key] = createdReport{at: now, obj: obj}
			}
		} else {
			obj.ResourceVersion = cur.ResourceVersion
			err = a.cfg.Clients.Beacon.UpdateIn(ctx, obj.Namespace, client.ServiceAnnouncements, obj.Name, obj)
		}
		errs = append(errs, err)
	}
	for _, sa := range have {
		errs = append(errs, a.cfg.Clients.Beacon.DeleteIn(ctx, sa.Namespace, client.ServiceAnnouncements, sa.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return held, fmt.Errorf("service announcements: %w", err)
	}
	return held, nil
}

func (a *Agent) announcement(r plan.Report) *v1alpha1.ServiceAnnouncement {
	obj := &v1alpha1.ServiceAnnouncement{
		ObjectMeta: metav1.ObjectMeta{
			Name:      reportName(r.Service, a.cfg.Node, r.Via),
			Namespace: r.Namespace,
			Labels:    map[string]string{v1alpha1.NodeLabel: a.cfg.Node},
		},
		Service: r.Service, Node: a.cfg.Node, Via: r.Via, Interfaces: r.Interfaces, Peers: r.Peers,
		Conflicts: r.Conflicts, Addresses: []string{}, // required, even when every address is in conflict
	}
	for _, ip := range r.Addresses {
		obj.Addresses = append(obj.Addresses, ip.String())
	}
	for _, ip := range r.Probed {
		obj.Probed = append(obj.Probed, ip.String())
	}
	return obj
}

// reported says whether sa already holds what r reports.
func reported(sa *v1alpha1.ServiceAnnouncement, r plan.Report) bool {
	if len(sa.Addresses) != len(r.Addresses) || !slices.Equal(sa.Interfaces, r.Interfaces) || !slices.Equal(sa.Peers, r.Peers) ||
		!slices.Equal(sa.Conflicts, r.Conflicts) {
		return false
	}
	for i, ip := range r.Addresses {
		if sa.Addresses[i] != ip.String() {
			return false
		}
	}
	if len(sa.Probed) != len(r.Probed) {
		return false
	}
	for i, ip := range r.Probed {
		if sa.Probed[i] != ip.String() {
			return false
		}
	}
	return true
}
