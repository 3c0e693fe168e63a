// Package slim trims Kubernetes objects before informers store them, so
// that a cache of 10,000 Services or EndpointSlices holds only what Beacon
// reads. Without it, managedFields and the kubectl last-applied annotation
// alone are most of a small object.
//
// Each function is a cache.TransformFunc: it trims its argument in place
// (the informer owns it) and passes other types through unchanged. A field
// dropped here reads as empty everywhere the cache is used: when the
// speaker or controller starts reading a field, keep it here, and extend
// the table of slim_test.go that pins what is kept.
package slim

import (
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LastApplied is the annotation kubectl apply keeps: a full copy of the
// applied object, read by nothing in Beacon.
const LastApplied = v1.LastAppliedConfigAnnotation

// Speaker trims the Services, EndpointSlices and Nodes of the speaker's
// informers (announcement planning, BGP and the nodeport dataplane).
func Speaker(obj any) (any, error) {
	switch o := obj.(type) {
	case *v1.Service:
		meta(&o.ObjectMeta)
	case *discoveryv1.EndpointSlice:
		meta(&o.ObjectMeta)
		for i := range o.Endpoints {
			e := &o.Endpoints[i]
			// Pod references, hostnames, zones and topology hints: the
			// dataplane forwards by address, node and conditions only.
			e.TargetRef, e.Hostname, e.Zone, e.Hints, e.DeprecatedTopology = nil, nil, nil, nil, nil
		}
	case *v1.Node:
		return node(o), nil
	}
	return obj, nil
}

// Controller trims the Services and Namespaces of the controller's
// informers. It keeps every other field: the controller patches Services
// with a diff between two cached copies, so a field dropped from both is
// left alone on the server, but the allocator reads most of the spec.
func Controller(obj any) (any, error) {
	switch o := obj.(type) {
	case *v1.Service:
		meta(&o.ObjectMeta)
	case *v1.Namespace:
		meta(&o.ObjectMeta)
	}
	return obj, nil
}

func meta(m *metav1.ObjectMeta) {
	m.ManagedFields = nil
	if _, ok := m.Annotations[LastApplied]; ok {
		delete(m.Annotations, LastApplied)
		if len(m.Annotations) == 0 {
			m.Annotations = nil
		}
	}
}

// node keeps what election, BGP and the dataplane read: labels (node
// selectors), pod CIDRs, addresses and condition states. Images, capacity,
// node info, volumes and annotations go; of conditions only type and
// status stay, so the timestamps and messages the kubelet rewrites are
// not kept either.
func node(n *v1.Node) *v1.Node {
	out := &v1.Node{
		TypeMeta: n.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Generation: n.Generation,
			Labels: n.Labels, DeletionTimestamp: n.DeletionTimestamp,
		},
		Spec:   v1.NodeSpec{PodCIDR: n.Spec.PodCIDR, PodCIDRs: n.Spec.PodCIDRs},
		Status: v1.NodeStatus{Addresses: n.Status.Addresses},
	}
	if len(n.Status.Conditions) > 0 {
		out.Status.Conditions = make([]v1.NodeCondition, len(n.Status.Conditions))
		for i, c := range n.Status.Conditions {
			out.Status.Conditions[i] = v1.NodeCondition{Type: c.Type, Status: c.Status}
		}
	}
	return out
}

// Same reports whether an informer update changed nothing but the
// resourceVersion of a trimmed Service, EndpointSlice or Node: a kubelet's
// status heartbeat, or a change to a field trimmed away. Handlers skip
// those updates, so that a large cluster's node churn does not replan
// every node. Other types are never the same.
func Same(old, cur any) bool {
	switch o := old.(type) {
	case *v1.Node:
		return sameButVersion(o, cur)
	case *v1.Service:
		return sameButVersion(o, cur)
	case *discoveryv1.EndpointSlice:
		return sameButVersion(o, cur)
	}
	return false
}

func sameButVersion[T any, P interface {
	*T
	metav1.Object
}](old P, cur any) bool {
	c, ok := cur.(P)
	if !ok {
		return false
	}
	// Shallow copies: the cached objects are shared and never written.
	o2, c2 := *old, *c
	P(&o2).SetResourceVersion("")
	P(&c2).SetResourceVersion("")
	return equality.Semantic.DeepEqual(o2, c2)
}
