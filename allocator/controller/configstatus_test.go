package controller_test

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

func TestConfigStatusKeepsTransitionTimes(t *testing.T) {
	old := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	valid := config.Verdict{
		Accepted:     config.Check{OK: true, Reason: config.ReasonValid, Message: "valid"},
		ResolvedRefs: &config.Check{OK: true, Reason: config.ReasonResolved, Message: "resolved"},
	}
	cur := v1alpha1.ConfigStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{
		{Type: v1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: config.ReasonValid, Message: "valid", ObservedGeneration: 1, LastTransitionTime: old},
		{Type: v1alpha1.ConditionResolvedRefs, Status: metav1.ConditionTrue, Reason: config.ReasonResolved, Message: "resolved", ObservedGeneration: 1, LastTransitionTime: old},
	}}
	for _, tc := range []struct {
		name       string
		generation int64
		verdict    config.Verdict
		unchanged  bool
		// acceptedMoved says whether Accepted's transition time changes;
		// refs is ResolvedRefs' status, "" when absent.
		acceptedMoved bool
		refs          metav1.ConditionStatus
	}{
		{name: "same verdict, same generation: equal, not rewritten", generation: 1, verdict: valid, unchanged: true, refs: metav1.ConditionTrue},
		{name: "new generation, same verdict: time kept", generation: 2, verdict: valid, refs: metav1.ConditionTrue},
		{name: "rejected: time moves", generation: 2, verdict: config.Verdict{
			Accepted: config.Check{Reason: config.ReasonMissingReference, Message: "gone"}, ResolvedRefs: &config.Check{Reason: config.ReasonMissingReference, Message: "gone"},
		}, acceptedMoved: true, refs: metav1.ConditionFalse},
		{name: "invalid: ResolvedRefs dropped", generation: 2, verdict: config.Verdict{
			Accepted: config.Check{Reason: config.ReasonInvalid, Message: "bad"},
		}, acceptedMoved: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := cur.DeepCopy()
			got := controller.ConfigStatus(in, tc.generation, tc.verdict)
			if !equality.Semantic.DeepEqual(*in, cur) {
				t.Fatal("input status modified")
			}
			if eq := equality.Semantic.DeepEqual(got, cur); eq != tc.unchanged {
				t.Errorf("equal to current: %v, want %v\n%+v", eq, tc.unchanged, got)
			}
			if got.ObservedGeneration != tc.generation {
				t.Errorf("observedGeneration %d, want %d", got.ObservedGeneration, tc.generation)
			}
			a := meta.FindStatusCondition(got.Conditions, v1alpha1.ConditionAccepted)
			if a == nil || a.Reason != tc.verdict.Accepted.Reason || a.ObservedGeneration != tc.generation {
				t.Fatalf("Accepted %+v", a)
			}
			if moved := !a.LastTransitionTime.Equal(&old); moved != tc.acceptedMoved {
				t.Errorf("Accepted transition time moved: %v, want %v (%v)", moved, tc.acceptedMoved, a.LastTransitionTime)
			}
			r := meta.FindStatusCondition(got.Conditions, v1alpha1.ConditionResolvedRefs)
			switch {
			case tc.refs == "" && r != nil:
				t.Errorf("ResolvedRefs kept: %+v", r)
			case tc.refs != "" && (r == nil || r.Status != tc.refs):
				t.Errorf("ResolvedRefs %+v, want status %s", r, tc.refs)
			}
		})
	}
}
