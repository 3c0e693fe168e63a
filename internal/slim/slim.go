// Package slim trims Kubernetes objects before informers store them, so
// that a cache of 10,000 Services or EndpointSlices holds only what Beacon
// reads. Without it, managedFields and the kubectl last-applied annotation
// alone are most of a small object.
//
// Each transform is a cache.TransformFunc: it trims its argument in place
// (the informer owns it) or returns a trimmed copy, and passes other types
// through unchanged. A field
// dropped here reads as empty everywhere the cache is used: when the
// speaker or controller starts reading a field, keep it here, and extend
// the table of slim_test.go that pins what is kept.
package slim

import (
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/lbservice"
)

// LastApplied is the annotation kubectl apply keeps: a full copy of the
// applied object, read by nothing in Beacon.
const LastApplied = v1.LastAppliedConfigAnnotation

// Speaker returns the transform of the speaker's informers (Services,
// EndpointSlices, Nodes). forwarding says whether its nftables dataplane
// forwards Services (--dataplane full or external) and so reads their
// ports, cluster IPs and endpoint addresses; without it (off) announcing
// reads of a Service only its type, class, external traffic policy and
// ingress addresses, and of an endpoint only its node and readiness.
//
// Of a Service's labels and annotations the speaker reads only the
// probing annotation (the addresses it is to probe and announce before they
// go into status). Strings and
// pointers repeated across objects (node names, conditions) are shared,
// which is safe because nothing writes a cached object.
func Speaker(forwarding bool) func(any) (any, error) {
	nodes := &interned{m: map[string]*string{}}
	return func(obj any) (any, error) {
		switch o := obj.(type) {
		case *v1.Service:
			return service(o, forwarding), nil
		case *discoveryv1.EndpointSlice:
			return endpointSlice(o, forwarding, nodes), nil
		case *v1.Node:
			return node(o), nil
		}
		return obj, nil
	}
}

// Reports trims the objects a daemon writes itself and caches to compare
// with what it would write (ServiceAnnouncements, BGPSessionStates): a
// speaker announcing 10,000 addresses caches 10,000 reports. Of the
// metadata only the identity stays (name, namespace, UID,
// resourceVersion); managedFields were most of each.
func Reports(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		m.SetLabels(nil)
		m.SetAnnotations(nil)
		m.SetOwnerReferences(nil)
		m.SetFinalizers(nil)
		m.SetCreationTimestamp(metav1.Time{})
		m.SetGeneration(0)
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

// service keeps the identity (Events name it) and what planning and, when
// forwarding, the dataplane read.
func service(s *v1.Service, forwarding bool) *v1.Service {
	out := &v1.Service{TypeMeta: s.TypeMeta, ObjectMeta: ident(&s.ObjectMeta)}
	if v, ok := s.Annotations[lbservice.AnnotationProbing]; ok {
		out.Annotations = map[string]string{lbservice.AnnotationProbing: v}
	}
	if forwarding {
		out.Spec = s.Spec
		out.Spec.Selector = nil // pods are found through EndpointSlices
	} else {
		out.Spec = v1.ServiceSpec{Type: s.Spec.Type, LoadBalancerClass: s.Spec.LoadBalancerClass,
			ExternalTrafficPolicy: s.Spec.ExternalTrafficPolicy}
	}
	if len(s.Status.LoadBalancer.Ingress) > 0 {
		out.Status.LoadBalancer.Ingress = make([]v1.LoadBalancerIngress, len(s.Status.LoadBalancer.Ingress))
		for i, in := range s.Status.LoadBalancer.Ingress {
			out.Status.LoadBalancer.Ingress[i] = v1.LoadBalancerIngress{IP: in.IP, IPMode: in.IPMode}
		}
	}
	return out
}

// endpointSlice keeps of a slice its owner (the service-name label) and of
// each endpoint its node and conditions, and, when forwarding, the
// addresses and ports. Pod references, hostnames, zones and hints go.
func endpointSlice(s *discoveryv1.EndpointSlice, forwarding bool, nodes *interned) *discoveryv1.EndpointSlice {
	out := &discoveryv1.EndpointSlice{TypeMeta: s.TypeMeta, ObjectMeta: ident(&s.ObjectMeta), AddressType: s.AddressType}
	if name, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: name}
	}
	if forwarding {
		out.Ports = s.Ports
	}
	if forwarding && len(s.Endpoints) > 0 {
		out.Endpoints = make([]discoveryv1.Endpoint, 0, len(s.Endpoints))
	}
	for _, e := range s.Endpoints {
		o := discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: shared(e.Conditions.Ready),
			Serving: shared(e.Conditions.Serving), Terminating: shared(e.Conditions.Terminating)}}
		if e.NodeName != nil {
			o.NodeName = nodes.get(*e.NodeName)
		}
		if forwarding {
			o.Addresses = e.Addresses
		} else if slices.ContainsFunc(out.Endpoints, func(p discoveryv1.Endpoint) bool {
			return p.NodeName == o.NodeName && p.Conditions == o.Conditions // interned and shared pointers
		}) {
			// Without addresses, endpoints with the same node and
			// conditions are one: announcing asks only whether a node
			// has a ready endpoint (externalTrafficPolicy Local).
			continue
		}
		out.Endpoints = append(out.Endpoints, o)
	}
	if cap(out.Endpoints) > len(out.Endpoints) {
		out.Endpoints = slices.Clone(out.Endpoints) // the cache keeps no spare capacity
	}
	return out
}

// ident is the part of an object's metadata that names it.
func ident(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp}
}

var yes, no = true, false

// shared returns a pointer to a shared true or false (nil stays nil).
func shared(b *bool) *bool {
	switch {
	case b == nil:
		return nil
	case *b:
		return &yes
	}
	return &no
}

// interned shares one string per node name among all endpoints.
type interned struct {
	mu sync.Mutex
	m  map[string]*string
}

func (in *interned) get(s string) *string {
	in.mu.Lock()
	defer in.mu.Unlock()
	p, ok := in.m[s]
	if !ok {
		p = &s
		in.m[s] = p
	}
	return p
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
