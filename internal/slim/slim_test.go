package slim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lbservice"
)

func managed() []metav1.ManagedFieldsEntry {
	return []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
		FieldsV1: metav1.NewFieldsV1(`{"f:spec":{}}`)}}
}

func TestSpeakerAndController(t *testing.T) {
	svcMeta := func(m []metav1.ManagedFieldsEntry, ann map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1", ResourceVersion: "7",
			Labels: map[string]string{"app": "web"}, Annotations: ann, ManagedFields: m, Finalizers: []string{"f"}}
	}
	svcSpec := v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal,
		Ports: []v1.ServicePort{{Port: 80}}}
	svcStatus := v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: "198.51.100.200"}}}}
	ep := discoveryv1.Endpoint{
		Addresses:  []string{"198.18.1.5"},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
		NodeName:   ptr.To("node1"),
	}
	notReady := ep
	notReady.Addresses = []string{"198.18.1.6"}
	notReady.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}
	onNode2 := ep
	onNode2.Addresses, onNode2.NodeName = []string{"198.18.1.7"}, ptr.To("node2")
	fullEp := ep
	fullEp.Hostname, fullEp.Zone = ptr.To("p1"), ptr.To("z1")
	fullEp.TargetRef = &v1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p1", UID: "u2"}
	fullEp.Hints = &discoveryv1.EndpointHints{ForZones: []discoveryv1.ForZone{{Name: "z1"}}}
	ident := metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: "u1", ResourceVersion: "7"}
	withSelector := func(s v1.ServiceSpec) v1.ServiceSpec {
		s.Selector = map[string]string{"app": "web"}
		return s
	}
	sliceMeta := metav1.ObjectMeta{Namespace: "ns", Name: "web-a", ResourceVersion: "3", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}}
	fullSliceMeta := sliceMeta
	fullSliceMeta.ManagedFields = managed()
	fullSliceMeta.Labels = map[string]string{discoveryv1.LabelServiceName: "web", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"}
	fullSliceMeta.OwnerReferences = []metav1.OwnerReference{{Kind: "Service", Name: "web"}}
	port := []discoveryv1.EndpointPort{{Name: ptr.To("http"), Protocol: ptr.To(v1.ProtocolTCP), Port: ptr.To[int32](8080)}}
	addrs := []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.11"}, {Type: v1.NodeHostName, Address: "node1"}}
	nodeLabels := map[string]string{"kubernetes.io/hostname": "node1"}
	now := metav1.Now()
	fullNode := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "u3", ResourceVersion: "9", Labels: nodeLabels, ManagedFields: managed(),
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		Spec: v1.NodeSpec{PodCIDR: "198.18.1.0/24", PodCIDRs: []string{"198.18.1.0/24"}, ProviderID: "x",
			Taints: []v1.Taint{{Key: "k", Effect: v1.TaintEffectNoSchedule}}},
		Status: v1.NodeStatus{
			Addresses: addrs,
			Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "ok", LastHeartbeatTime: now},
				{Type: v1.NodeNetworkUnavailable, Status: v1.ConditionFalse, LastTransitionTime: now}},
			Images:   []v1.ContainerImage{{Names: []string{"registry.example/app:1"}, SizeBytes: 1}},
			NodeInfo: v1.NodeSystemInfo{KubeletVersion: "v1.36.3"},
			Capacity: v1.ResourceList{v1.ResourceCPU: {}},
		},
	}
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{"team": "a"}, ManagedFields: managed(),
		Annotations: map[string]string{LastApplied: "{}"}}}
	tomb := cache.DeletedFinalStateUnknown{Key: "ns/web", Obj: "anything"}

	tests := []struct {
		name      string
		transform func(any) (any, error)
		in, want  any
	}{{
		name:      "speaker Service: labels, annotations and all metadata but the identity go; the selector goes",
		transform: Speaker(true),
		in: &v1.Service{ObjectMeta: svcMeta(managed(), map[string]string{LastApplied: "{...}", "beaconlb.io/ips": "198.51.100.200"}),
			Spec: withSelector(svcSpec), Status: svcStatus},
		want: &v1.Service{ObjectMeta: ident, Spec: svcSpec, Status: svcStatus},
	}, {
		name:      "speaker Service: of the annotations only the offer to probe stays, forwarding or not",
		transform: Speaker(false),
		in: &v1.Service{ObjectMeta: svcMeta(nil, map[string]string{"beaconlb.io/ips": "198.51.100.200", lbservice.AnnotationProbing: "198.51.100.201"}),
			Spec: withSelector(svcSpec), Status: svcStatus},
		want: &v1.Service{ObjectMeta: withAnnotations(ident, map[string]string{lbservice.AnnotationProbing: "198.51.100.201"}),
			Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal}, Status: svcStatus},
	}, {
		name:      "speaker Service, not forwarding: type, class, policy and ingress addresses",
		transform: Speaker(false),
		in:        &v1.Service{ObjectMeta: svcMeta(nil, nil), Spec: withSelector(svcSpec), Status: svcStatus},
		want: &v1.Service{ObjectMeta: ident, Spec: v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: v1.ServiceExternalTrafficPolicyLocal}, Status: svcStatus},
	}, {
		name:      "speaker EndpointSlice: addresses, conditions, node and ports stay; other labels go",
		transform: Speaker(true),
		in: &discoveryv1.EndpointSlice{ObjectMeta: fullSliceMeta, AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{fullEp}, Ports: port},
		want: &discoveryv1.EndpointSlice{ObjectMeta: sliceMeta, AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{ep}, Ports: port},
	}, {
		name:      "speaker EndpointSlice, not forwarding: nodes and conditions only, once per node and conditions",
		transform: Speaker(false),
		in: &discoveryv1.EndpointSlice{ObjectMeta: fullSliceMeta, AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{fullEp, ep, notReady, fullEp, onNode2}, Ports: port},
		want: &discoveryv1.EndpointSlice{ObjectMeta: sliceMeta, AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{Conditions: ep.Conditions, NodeName: ep.NodeName},
				{Conditions: notReady.Conditions, NodeName: ep.NodeName}, {Conditions: ep.Conditions, NodeName: onNode2.NodeName}}},
	}, {
		name:      "reports: only the identity stays of the metadata",
		transform: Reports,
		in: &v1alpha1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", UID: "u4", ResourceVersion: "5",
			Labels: nodeLabels, ManagedFields: managed(), CreationTimestamp: now, Generation: 2}, Node: "node1", Addresses: []string{"198.51.100.200"}},
		want: &v1alpha1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", UID: "u4", ResourceVersion: "5"},
			Node: "node1", Addresses: []string{"198.51.100.200"}},
	}, {
		name:      "speaker Node: labels, pod CIDRs, addresses and condition states",
		transform: Speaker(false),
		in:        fullNode,
		want: &v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "u3", ResourceVersion: "9", Labels: nodeLabels},
			Spec:       v1.NodeSpec{PodCIDR: "198.18.1.0/24", PodCIDRs: []string{"198.18.1.0/24"}},
			Status: v1.NodeStatus{Addresses: addrs, Conditions: []v1.NodeCondition{
				{Type: v1.NodeReady, Status: v1.ConditionTrue}, {Type: v1.NodeNetworkUnavailable, Status: v1.ConditionFalse}}},
		},
	}, {
		name:      "speaker: other types and tombstones pass through",
		transform: Speaker(true),
		in:        tomb, want: tomb,
	}, {
		name:      "controller Service: only managedFields and last-applied go",
		transform: Controller,
		in:        &v1.Service{ObjectMeta: svcMeta(managed(), map[string]string{LastApplied: "{...}", "beaconlb.io/pool": "lan"}), Spec: svcSpec, Status: svcStatus},
		want:      &v1.Service{ObjectMeta: svcMeta(nil, map[string]string{"beaconlb.io/pool": "lan"}), Spec: svcSpec, Status: svcStatus},
	}, {
		name:      "controller Namespace: labels stay",
		transform: Controller,
		in:        ns,
		want:      &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{"team": "a"}}},
	}, {
		name:      "controller: Nodes are not its business",
		transform: Controller,
		in:        fullNode.DeepCopy(), want: fullNode,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.transform(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
			// Informers may hand an object back (relists): trimming twice
			// changes nothing.
			again, _ := tt.transform(got)
			if d := cmp.Diff(got, again); d != "" {
				t.Errorf("second pass (-first +second):\n%s", d)
			}
		})
	}
}

func TestSame(t *testing.T) {
	node := func(rv string, ready v1.ConditionStatus) *v1.Node {
		n, _ := Speaker(true)(&v1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: "node1", ResourceVersion: rv},
			Status: v1.NodeStatus{Conditions: []v1.NodeCondition{{Type: v1.NodeReady, Status: ready,
				LastHeartbeatTime: metav1.Unix(int64(len(rv)), 0)}}},
		})
		return n.(*v1.Node)
	}
	svc := func(rv, ip string) *v1.Service {
		return &v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", ResourceVersion: rv},
			Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: ip}}}}}
	}
	probing := func(s *v1.Service, ips string) *v1.Service {
		out, _ := Speaker(false)(&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: s.Name, ResourceVersion: s.ResourceVersion,
			Annotations: map[string]string{lbservice.AnnotationProbing: ips}}, Status: s.Status})
		return out.(*v1.Service)
	}
	slice := func(rv string, ready bool) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "web-a", ResourceVersion: rv},
			Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.1.5"}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}}}
	}
	tests := []struct {
		name     string
		old, cur any
		want     bool
	}{
		{"node heartbeat (trimmed timestamps)", node("1", v1.ConditionTrue), node("22", v1.ConditionTrue), true},
		{"node turns not ready", node("1", v1.ConditionTrue), node("22", v1.ConditionFalse), false},
		{"service: only the version", svc("1", "198.51.100.200"), svc("2", "198.51.100.200"), true},
		{"service: new ingress", svc("1", "198.51.100.200"), svc("2", "198.51.100.201"), false},
		{"service: an address offered for probing", svc("1", "198.51.100.200"), probing(svc("2", "198.51.100.200"), "198.51.100.201"), false},
		{"slice: only the version", slice("1", true), slice("2", true), true},
		{"slice: endpoint not ready", slice("1", true), slice("2", false), false},
		{"different types", svc("1", "198.51.100.200"), slice("1", true), false},
		{"other types are never the same", &v1.Namespace{}, &v1.Namespace{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldRV := ""
			if o, ok := tt.old.(metav1.Object); ok {
				oldRV = o.GetResourceVersion()
			}
			if got := Same(tt.old, tt.cur); got != tt.want {
				t.Errorf("Same = %v, want %v", got, tt.want)
			}
			if o, ok := tt.old.(metav1.Object); ok && o.GetResourceVersion() != oldRV {
				t.Errorf("Same changed the cached object's resourceVersion to %q", o.GetResourceVersion())
			}
		})
	}
}

// Endpoints on one node share its name, and conditions share their values:
// 50,000 endpoints hold a handful of them.
func TestSpeakerShares(t *testing.T) {
	tr := Speaker(false)
	slice := func(name string) *discoveryv1.EndpointSlice {
		o, _ := tr(&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: name}, Endpoints: []discoveryv1.Endpoint{
			{NodeName: ptr.To("node1"), Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}}})
		return o.(*discoveryv1.EndpointSlice)
	}
	a, b := slice("a"), slice("b")
	if a.Endpoints[0].NodeName != b.Endpoints[0].NodeName || a.Endpoints[0].Conditions.Ready != b.Endpoints[0].Conditions.Ready {
		t.Errorf("two slices' endpoints on node1 do not share the node name and ready condition")
	}
}

func withAnnotations(m metav1.ObjectMeta, ann map[string]string) metav1.ObjectMeta {
	m.Annotations = ann
	return m
}
