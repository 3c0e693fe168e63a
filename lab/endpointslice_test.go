package lab

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func testPods(t *testing.T) []*corev1.Pod {
	t.Helper()
	topo, err := Plan(Config{Nodes: 2, PodsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	var pods []*corev1.Pod
	for _, p := range topo.Pods {
		pod := podObject(p, "default")
		pod.Status = podStatus(p, topo.Nodes[p.NodeIndex-1], true)
		pods = append(pods, pod)
	}
	return pods
}

func testService(sel map[string]string, fams ...corev1.IPFamily) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "svc-uid"},
		Spec: corev1.ServiceSpec{
			Selector:   sel,
			IPFamilies: fams,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString(PortNameHTTP)},
				{Name: "udp", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString(PortNameUDP)},
				{Name: "raw", Port: 81, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(5001)},
			},
		},
	}
}

func TestDesiredEndpointSlicesDualStack(t *testing.T) {
	pods := testPods(t)
	svc := testService(map[string]string{LabelApp: "echo"}, corev1.IPv4Protocol, corev1.IPv6Protocol)
	got := DesiredEndpointSlices(svc, pods)
	if len(got) != 2 {
		t.Fatalf("want 2 slices, got %d", len(got))
	}
	v4, v6 := got[0], got[1]
	if v4.AddressType != discoveryv1.AddressTypeIPv4 || v6.AddressType != discoveryv1.AddressTypeIPv6 {
		t.Fatalf("address types %s %s", v4.AddressType, v6.AddressType)
	}
	if v4.Labels[discoveryv1.LabelServiceName] != "web" || v4.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
		t.Errorf("labels %v", v4.Labels)
	}
	if len(v4.Endpoints) != 2 || v4.Endpoints[0].Addresses[0] != "198.18.1.2" || *v4.Endpoints[0].NodeName != "node1" ||
		v4.Endpoints[1].Addresses[0] != "198.18.2.2" || *v4.Endpoints[1].NodeName != "node2" {
		t.Errorf("v4 endpoints %+v", v4.Endpoints)
	}
	if len(v6.Endpoints) != 2 || v6.Endpoints[0].Addresses[0] != "2001:db8:18:1::2" {
		t.Errorf("v6 endpoints %+v", v6.Endpoints)
	}
	want := map[string]struct {
		proto corev1.Protocol
		port  int32
	}{"http": {corev1.ProtocolTCP, 5000}, "udp": {corev1.ProtocolUDP, 5000}, "raw": {corev1.ProtocolTCP, 5001}}
	if len(v4.Ports) != 3 {
		t.Fatalf("ports %+v", v4.Ports)
	}
	for _, p := range v4.Ports {
		w, ok := want[*p.Name]
		if !ok || *p.Protocol != w.proto || *p.Port != w.port {
			t.Errorf("port %s %s %d", *p.Name, *p.Protocol, *p.Port)
		}
	}
	c := v4.Endpoints[0].Conditions
	if !*c.Ready || !*c.Serving || *c.Terminating {
		t.Errorf("conditions %+v", c)
	}
	if v4.Endpoints[0].TargetRef.Name != "n1-p1" {
		t.Errorf("targetRef %+v", v4.Endpoints[0].TargetRef)
	}
}

func TestDesiredEndpointSlicesConditions(t *testing.T) {
	pods := testPods(t)
	svc := testService(map[string]string{"app": "n1-p1"}, corev1.IPv4Protocol)
	cond := func() discoveryv1.EndpointConditions {
		t.Helper()
		s := DesiredEndpointSlices(svc, pods)
		if len(s) != 1 || len(s[0].Endpoints) != 1 {
			t.Fatalf("slices %+v", s)
		}
		return s[0].Endpoints[0].Conditions
	}
	for i := range pods[0].Status.Conditions {
		if pods[0].Status.Conditions[i].Type == corev1.PodReady {
			pods[0].Status.Conditions[i].Status = corev1.ConditionFalse
		}
	}
	if c := cond(); *c.Ready || *c.Serving || *c.Terminating {
		t.Errorf("not ready: %+v", c)
	}
	pods[0].Status = podStatus(Pod{IPv4: mustAddr("198.18.1.2"), IPv6: mustAddr("2001:db8:18:1::2")}, Node{}, true)
	now := metav1.NewTime(time.Now())
	pods[0].DeletionTimestamp = &now
	if c := cond(); *c.Ready || !*c.Serving || !*c.Terminating {
		t.Errorf("terminating: %+v", c)
	}
	svc.Spec.PublishNotReadyAddresses = true
	if c := cond(); !*c.Ready {
		t.Errorf("publishNotReadyAddresses: %+v", c)
	}
}

func TestDesiredEndpointSlicesEdgeCases(t *testing.T) {
	pods := testPods(t)
	if s := DesiredEndpointSlices(testService(nil, corev1.IPv4Protocol), pods); s != nil {
		t.Errorf("selector-less: %+v", s)
	}
	ext := testService(map[string]string{"app": "x"})
	ext.Spec.Type = corev1.ServiceTypeExternalName
	if s := DesiredEndpointSlices(ext, pods); s != nil {
		t.Errorf("ExternalName: %+v", s)
	}
	// No matching pods: an empty placeholder per family (default IPv4).
	s := DesiredEndpointSlices(testService(map[string]string{"app": "nothing"}), pods)
	if len(s) != 1 || len(s[0].Endpoints) != 0 || s[0].AddressType != discoveryv1.AddressTypeIPv4 {
		t.Errorf("placeholder: %+v", s)
	}
	// Other namespace: no match.
	other := testService(map[string]string{"app": "n1-p1"})
	other.Namespace = "other"
	if s := DesiredEndpointSlices(other, pods); len(s) != 1 || len(s[0].Endpoints) != 0 {
		t.Errorf("other namespace: %+v", s)
	}
	// A pod lacking the named port lands in another slice without it.
	pods[1].Spec.Containers[0].Ports = pods[1].Spec.Containers[0].Ports[:1] // no "udp"
	s = DesiredEndpointSlices(testService(map[string]string{LabelApp: "echo"}, corev1.IPv4Protocol), pods)
	if len(s) != 2 || s[0].Name == s[1].Name {
		t.Fatalf("want 2 slices for 2 port sets, got %+v", s)
	}
	for _, sl := range s {
		if len(sl.Endpoints) != 1 {
			t.Errorf("slice %s: %d endpoints", sl.Name, len(sl.Endpoints))
		}
	}
	// Same input, same names: the writer relies on it.
	again := DesiredEndpointSlices(testService(map[string]string{LabelApp: "echo"}, corev1.IPv4Protocol), pods)
	if again[0].Name != s[0].Name || again[1].Name != s[1].Name {
		t.Error("slice names are not deterministic")
	}
}
