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
// second with whatever is latest by then.
func (a *Agent) reportLoop(ctx context.Context) {
	var pending []plan.Report
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
		err := a.writeReports(wctx, pending)
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
// announces: one per Service and mode, written only when it differs.
func (a *Agent) writeReports(ctx context.Context, want []plan.Report) error {
	have := map[string]*v1alpha1.ServiceAnnouncement{}
	for _, sa := range list[v1alpha1.ServiceAnnouncement](a.w.reports) {
		have[sa.Namespace+"/"+sa.Name] = sa
	}
	var errs []error
	for _, r := range want {
		obj := a.announcement(r)
		key := obj.Namespace + "/" + obj.Name
		cur, ok := have[key]
		delete(have, key)
		var err error
		switch {
		case !ok:
			err = a.cfg.Clients.Beacon.CreateIn(ctx, obj.Namespace, client.ServiceAnnouncements, obj)
		case !slices.Equal(cur.Addresses, obj.Addresses) || !slices.Equal(cur.Interfaces, obj.Interfaces) || !slices.Equal(cur.Peers, obj.Peers) ||
			!slices.Equal(cur.Conflicts, obj.Conflicts):
			obj.ResourceVersion = cur.ResourceVersion
			err = a.cfg.Clients.Beacon.UpdateIn(ctx, obj.Namespace, client.ServiceAnnouncements, obj.Name, obj)
		}
		errs = append(errs, err)
	}
	for _, sa := range have {
		errs = append(errs, a.cfg.Clients.Beacon.DeleteIn(ctx, sa.Namespace, client.ServiceAnnouncements, sa.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("service announcements: %w", err)
	}
	return nil
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
	return obj
}
