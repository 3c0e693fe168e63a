package nodeport

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// kubeWeb is a LoadBalancer Service using every field the conversion
// reads, a headless Service, and the first one's EndpointSlice.
func kubeWeb() (svc, headless *v1.Service, slice *discoveryv1.EndpointSlice) {
	local := v1.ServiceInternalTrafficPolicyLocal
	proxy := v1.LoadBalancerIPModeProxy
	svc = &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: v1.ServiceSpec{
			Type:                     v1.ServiceTypeLoadBalancer,
			ClusterIP:                "198.19.0.10",
			ClusterIPs:               []string{"198.19.0.10", "2001:db8:19::10"},
			ExternalIPs:              []string{"203.0.113.77", "203.0.113.78"},
			ExternalTrafficPolicy:    v1.ServiceExternalTrafficPolicyLocal,
			InternalTrafficPolicy:    &local,
			HealthCheckNodePort:      32000,
			LoadBalancerSourceRanges: []string{" 192.0.2.1/24"},
			SessionAffinity:          v1.ServiceAffinityClientIP,
			SessionAffinityConfig:    &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To[int32](60)}},
			Ports: []v1.ServicePort{
				{Name: "http", Port: 80, NodePort: 30080},
				{Name: "dns", Protocol: v1.ProtocolUDP, Port: 53, NodePort: 30053},
			},
		},
		Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{
			{IP: "198.51.100.200"}, {IP: "198.51.100.201", IPMode: &proxy}, {Hostname: "lb.example"},
		}}},
	}
	headless = &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "headless"}, Spec: v1.ServiceSpec{ClusterIP: v1.ClusterIPNone}}
	slice = &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "default", Name: "web-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("http"), Port: ptr.To[int32](8080)},
			{Name: ptr.To("dns"), Protocol: ptr.To(v1.ProtocolUDP), Port: ptr.To[int32](5353)},
		},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"198.18.1.2"}, NodeName: ptr.To("node1")},
			{Addresses: []string{"198.18.1.3"}, NodeName: ptr.To("node1"), Conditions: discoveryv1.EndpointConditions{
				Ready: ptr.To(false), Serving: ptr.To(true), Terminating: ptr.To(true)}},
		},
	}
	return svc, headless, slice
}

func TestServicesFromKube(t *testing.T) {
	svc, headless, slice := kubeWeb()
	other := slice.DeepCopy()
	other.Labels[discoveryv1.LabelServiceName] = "other"
	fqdn := slice.DeepCopy()
	fqdn.AddressType = discoveryv1.AddressTypeFQDN

	got := ServicesFromKube([]*v1.Service{svc, headless}, []*discoveryv1.EndpointSlice{slice, other, fqdn},
		func(a netip.Addr) bool { return a == netip.MustParseAddr("203.0.113.77") })
	if len(got) != 1 {
		t.Fatalf("got %d services, want 1 (headless skipped)", len(got))
	}
	s := got[0]
	if !slices.Equal(s.ClusterIPs, addrs("198.19.0.10", "2001:db8:19::10")) ||
		!slices.Equal(s.LoadBalancerIPs, addrs("198.51.100.200")) ||
		!slices.Equal(s.ExternalIPs, addrs("203.0.113.77")) ||
		!slices.Equal(s.SourceRanges, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}) ||
		!s.ExternalLocal || !s.InternalLocal || s.HealthCheckNodePort != 32000 || s.AffinityTimeout != time.Minute {
		t.Errorf("service %+v", s)
	}
	wantPorts := []Port{{Name: "http", Protocol: TCP, Port: 80, NodePort: 30080}, {Name: "dns", Protocol: UDP, Port: 53, NodePort: 30053}}
	if !slices.Equal(s.Ports, wantPorts) {
		t.Errorf("ports %+v", s.Ports)
	}
	if len(s.Endpoints) != 2 || !s.Endpoints[0].Ready || s.Endpoints[1].Ready || !s.Endpoints[1].Serving || !s.Endpoints[1].Terminating {
		t.Errorf("endpoints %+v", s.Endpoints)
	}

}

func TestNodeAddressesFromKube(t *testing.T) {
	n := &v1.Node{Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
		{Type: v1.NodeHostName, Address: "node1"},
		{Type: v1.NodeInternalIP, Address: "198.51.100.11"},
		{Type: v1.NodeInternalIP, Address: "2001:db8:100::11"},
		{Type: v1.NodeExternalIP, Address: "198.51.100.11"},
	}}}
	if got := NodeAddressesFromKube(n); !slices.Equal(got, addrs("198.51.100.11", "2001:db8:100::11")) {
		t.Errorf("got %v", got)
	}
}

// kubeScale is n LoadBalancer Services with one slice of eps endpoints
// each, all with resourceVersions. Like scaleInput, destinations are
// distinct: LB IP 203.0.113.(i%250) and externalIPs 198.51.100.(i%250) and
// .(i%250+1), port 1000+i/250 (the externalIPs of neighbours overlap).
func kubeScale(n, eps int) ([]*v1.Service, []*discoveryv1.EndpointSlice) {
	var svcs []*v1.Service
	var sls []*discoveryv1.EndpointSlice
	for i := range n {
		ns, name := fmt.Sprintf("ns%d", i%50), fmt.Sprintf("svc%d", i)
		nodePort := int32(0) // 2,000 NodePorts, as in scaleInput
		if i < 2000 {
			nodePort = int32(30000 + i)
		}
		svcs = append(svcs, &v1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: "1"},
			Spec: v1.ServiceSpec{
				Type: v1.ServiceTypeLoadBalancer, ClusterIPs: []string{fmt.Sprintf("198.19.%d.%d", i>>8, i&255)},
				ExternalIPs: []string{fmt.Sprintf("198.51.100.%d", i%250), fmt.Sprintf("198.51.100.%d", i%250+1)},
				Ports:       []v1.ServicePort{{Name: "http", Port: int32(1000 + i/250), NodePort: nodePort}},
			},
			Status: v1.ServiceStatus{LoadBalancer: v1.LoadBalancerStatus{Ingress: []v1.LoadBalancerIngress{{IP: fmt.Sprintf("203.0.113.%d", i%250)}}}},
		})
		sl := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-x", ResourceVersion: "1", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}},
		}
		for j := range eps {
			sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("198.18.%d.%d", j, i%250)}, NodeName: ptr.To("node1")})
		}
		sls = append(sls, sl)
	}
	return svcs, sls
}

func TestKubeConverter(t *testing.T) {
	svcs, eps := kubeScale(50, 3)
	allow := func(a netip.Addr) bool { return a == netip.MustParseAddr("198.51.100.9") }
	sorted := func(s []Service) []Service {
		s = slices.Clone(s)
		slices.SortFunc(s, func(a, b Service) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
		return s
	}
	var c KubeConverter
	first := c.Services(svcs, eps, allow)
	if !reflect.DeepEqual(sorted(first), sorted(ServicesFromKube(svcs, eps, allow))) {
		t.Fatal("converter differs from ServicesFromKube")
	}
	// Unchanged versions: the same conversion (same backing arrays).
	again := c.Services(svcs, eps, allow)
	if &again[7].Endpoints[0] != &first[7].Endpoints[0] {
		t.Error("unchanged Service converted again")
	}
	// A new slice version (here: an endpoint gone) is converted again;
	// the allow-list is applied at every call.
	eps[7] = eps[7].DeepCopy()
	eps[7].Endpoints = eps[7].Endpoints[1:]
	eps[7].ResourceVersion = "2"
	next := c.Services(svcs, eps, func(netip.Addr) bool { return false })
	if len(next[7].Endpoints) != 2 || len(next[8].Endpoints) != 3 {
		t.Errorf("endpoints %d and %d, want 2 and 3", len(next[7].Endpoints), len(next[8].Endpoints))
	}
	if len(next[8].ExternalIPs) != 0 || len(again[8].ExternalIPs) != 1 {
		t.Errorf("external IPs %v then %v, want the allow-list applied each time", again[8].ExternalIPs, next[8].ExternalIPs)
	}
	if !reflect.DeepEqual(sorted(next), sorted(ServicesFromKube(svcs, eps, func(netip.Addr) bool { return false }))) {
		t.Fatal("converter differs from ServicesFromKube after a change")
	}
}

func BenchmarkKubeConverter(b *testing.B) {
	svcs, eps := kubeScale(10000, 5)
	b.Run("ServicesFromKube", func(b *testing.B) {
		for b.Loop() {
			ServicesFromKube(svcs, eps, nil)
		}
	})
	b.Run("KubeConverter", func(b *testing.B) {
		var c KubeConverter
		c.Services(svcs, eps, nil)
		for b.Loop() {
			c.Services(svcs, eps, nil)
		}
	})
}

// The converter equals ServicesFromKube after every one of 400 random
// changes of the kinds informers produce: new versions of Services and
// slices, objects added and removed, slices moving to another Service,
// several slices per Service, objects without a resourceVersion, and the
// lists in another order each time.
func TestKubeConverterRandomChanges(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { kubeConverterRandomChanges(t, seed) })
	}
}

func kubeConverterRandomChanges(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	svcs, eps := kubeScale(40, 2)
	allow := func(a netip.Addr) bool { return a.As4()[3]%2 == 0 }
	sorted := func(s []Service) []Service {
		s = slices.Clone(s)
		slices.SortFunc(s, func(a, b Service) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
		return s
	}
	rv := 100
	next := func() string { rv++; return fmt.Sprint(rv) }
	var c KubeConverter
	for step := range 400 {
		var what string
		switch op := rng.IntN(8); {
		case op == 0 && len(svcs) > 0: // a Service's new version
			i := rng.IntN(len(svcs))
			s := svcs[i].DeepCopy()
			s.Spec.Ports[0].Port = int32(2000 + step)
			s.ResourceVersion = next()
			svcs[i], what = s, "service updated"
		case op == 1 && len(svcs) > 1: // a Service deleted
			i := rng.IntN(len(svcs))
			svcs, what = slices.Delete(svcs, i, i+1), "service deleted"
		case op == 2: // a Service added (its slices may already exist)
			s := svcs[0].DeepCopy()
			s.Name, s.ResourceVersion = fmt.Sprintf("new%d", rng.IntN(20)), next()
			if !slices.ContainsFunc(svcs, func(o *v1.Service) bool { return o.Namespace == s.Namespace && o.Name == s.Name }) {
				svcs, what = append(svcs, s), "service added"
			}
		case op == 3 && len(eps) > 0: // a slice's new version
			i := rng.IntN(len(eps))
			e := eps[i].DeepCopy()
			e.Endpoints = append(e.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("198.18.200.%d", step%250)}, NodeName: ptr.To("node1")})
			e.ResourceVersion = next()
			eps[i], what = e, "slice updated"
		case op == 4 && len(eps) > 0: // a slice deleted
			i := rng.IntN(len(eps))
			eps, what = slices.Delete(eps, i, i+1), "slice deleted"
		case op == 5 && len(eps) > 0 && len(svcs) > 0: // a second slice for a Service
			s := svcs[rng.IntN(len(svcs))]
			e := eps[0].DeepCopy()
			e.Namespace, e.Name, e.ResourceVersion = s.Namespace, fmt.Sprintf("%s-%d", s.Name, step), next()
			e.Labels = map[string]string{discoveryv1.LabelServiceName: s.Name}
			eps, what = append(eps, e), "slice added"
		case op == 6 && len(eps) > 0 && len(svcs) > 0: // a slice moves to another Service
			i := rng.IntN(len(eps))
			s := svcs[rng.IntN(len(svcs))]
			e := eps[i].DeepCopy()
			e.Namespace, e.Labels, e.ResourceVersion = s.Namespace, map[string]string{discoveryv1.LabelServiceName: s.Name}, next()
			eps[i], what = e, "slice moved"
		case op == 7 && len(svcs) > 0: // no resourceVersion: never reused
			i := rng.IntN(len(svcs))
			s := svcs[i].DeepCopy()
			s.ResourceVersion = ""
			svcs[i], what = s, "service without version"
		default:
			what = "nothing"
		}
		rng.Shuffle(len(svcs), func(i, j int) { svcs[i], svcs[j] = svcs[j], svcs[i] })
		rng.Shuffle(len(eps), func(i, j int) { eps[i], eps[j] = eps[j], eps[i] })
		got, want := sorted(c.Services(svcs, eps, allow)), sorted(ServicesFromKube(svcs, eps, allow))
		if !reflect.DeepEqual(got, want) {
			for i := range min(len(got), len(want)) {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Fatalf("step %d (%s): converter differs from ServicesFromKube:\n got %+v\nwant %+v", step, what, got[i], want[i])
				}
			}
			t.Fatalf("step %d (%s): converter has %d Services, ServicesFromKube %d", step, what, len(got), len(want))
		}
	}
}
