package controller

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

func TestReportedConflicts(t *testing.T) {
	ann := func(node string, cs ...v1alpha1.AddressConflict) v1alpha1.ServiceAnnouncement {
		return v1alpha1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Service: "web", Node: node, Conflicts: cs}
	}
	got := reportedConflicts([]v1alpha1.ServiceAnnouncement{
		ann("n2", v1alpha1.AddressConflict{Address: "198.51.100.200", MAC: "02:00:00:00:00:02"}),
		ann("n1", v1alpha1.AddressConflict{Address: "198.51.100.200", MAC: "02:00:00:00:00:01", Announced: true},
			v1alpha1.AddressConflict{Address: "not an address"}),
		ann("n3", v1alpha1.AddressConflict{Address: "2001:db8:100::200", MAC: "02:00:00:00:00:03"}),
	})
	if len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	// A probe's finding wins over a claim while announced.
	if c := got[netip.MustParseAddr("198.51.100.200")]; c.Node != "n2" || c.Announced || c.Service != "ns/web" {
		t.Errorf("v4: %+v", c)
	}
	if c := got[netip.MustParseAddr("2001:db8:100::200")]; c.Node != "n3" {
		t.Errorf("v6: %+v", c)
	}
}

func TestMergeConflicts(t *testing.T) {
	a, b := netip.MustParseAddr("198.51.100.200"), netip.MustParseAddr("198.51.100.201")
	c := func(mac string) addressConflict {
		return addressConflict{AddressConflict: v1alpha1.AddressConflict{MAC: mac}}
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	hold := 10 * time.Minute

	known, added, removed := mergeConflicts(nil, map[netip.Addr]addressConflict{a: c("1"), b: c("2")}, t0, hold)
	if !slices.Equal(added, []netip.Addr{a, b}) || removed != nil {
		t.Fatalf("added %v removed %v", added, removed)
	}
	// b is no longer reported (its Service moved): held, not removed.
	known, added, removed = mergeConflicts(known, map[netip.Addr]addressConflict{a: c("1")}, t0.Add(time.Minute), hold)
	if added != nil || removed != nil || len(known) != 2 || known[b].gone != t0.Add(time.Minute) {
		t.Fatalf("during the hold: %v %v %+v", added, removed, known)
	}
	// Still held just before the hold is over; the gone time stays.
	known, _, removed = mergeConflicts(known, map[netip.Addr]addressConflict{a: c("1")}, t0.Add(10*time.Minute), hold)
	if removed != nil || known[b].gone != t0.Add(time.Minute) {
		t.Fatalf("before the end of the hold: %v %+v", removed, known[b])
	}
	known, _, removed = mergeConflicts(known, map[netip.Addr]addressConflict{a: c("1")}, t0.Add(11*time.Minute), hold)
	if !slices.Equal(removed, []netip.Addr{b}) || len(known) != 1 {
		t.Fatalf("after the hold: %v %+v", removed, known)
	}
	// Reported again: the clock restarts.
	known, added, _ = mergeConflicts(known, map[netip.Addr]addressConflict{a: c("1"), b: c("3")}, t0.Add(12*time.Minute), hold)
	if !slices.Equal(added, []netip.Addr{b}) || !known[b].gone.IsZero() {
		t.Fatalf("reported again: %v %+v", added, known[b])
	}
	if conflictsEqual(known, map[netip.Addr]addressConflict{a: c("1"), b: c("2")}) {
		t.Error("another MAC compares equal")
	}
}
