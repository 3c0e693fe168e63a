package lab

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the
// EndpointSlices the lab writes (there is no kube-controller-manager).
const ManagedBy = "lab.beaconlb.io"

// DesiredEndpointSlices computes the EndpointSlices of one Service from the
// pods of the cluster, like the upstream EndpointSlice controller but
// simpler: one slice per address family and per distinct set of resolved
// ports (named targetPorts are looked up in each pod's container ports).
// A Service without selector, or of type ExternalName, gets none (nil).
// A family without endpoints gets an empty placeholder slice. It does no IO.
func DesiredEndpointSlices(svc *corev1.Service, pods []*corev1.Pod) []*discoveryv1.EndpointSlice {
	if svc.Spec.Type == corev1.ServiceTypeExternalName || len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	families := svc.Spec.IPFamilies
	if len(families) == 0 {
		families = []corev1.IPFamily{corev1.IPv4Protocol}
	}
	var out []*discoveryv1.EndpointSlice
	for _, fam := range families {
		addrType := discoveryv1.AddressTypeIPv4
		if fam == corev1.IPv6Protocol {
			addrType = discoveryv1.AddressTypeIPv6
		}
		groups := map[string]*discoveryv1.EndpointSlice{}
		for _, pod := range pods {
			if pod.Namespace != svc.Namespace || !sel.Matches(labels.Set(pod.Labels)) || pod.Spec.NodeName == "" ||
				pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
				continue
			}
			addr, ok := podAddress(pod, fam)
			if !ok {
				continue
			}
			ports := resolvePorts(svc, pod)
			key := portsKey(ports)
			s, ok := groups[key]
			if !ok {
				s = newSlice(svc, addrType, key, ports)
				groups[key] = s
			}
			s.Endpoints = append(s.Endpoints, endpointFor(svc, pod, addr))
		}
		if len(groups) == 0 {
			out = append(out, newSlice(svc, addrType, "", []discoveryv1.EndpointPort{}))
			continue
		}
		keys := make([]string, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s := groups[k]
			sort.Slice(s.Endpoints, func(i, j int) bool { return s.Endpoints[i].Addresses[0] < s.Endpoints[j].Addresses[0] })
			out = append(out, s)
		}
	}
	return out
}

func podAddress(pod *corev1.Pod, fam corev1.IPFamily) (string, bool) {
	ips := pod.Status.PodIPs
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	for _, ip := range ips {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil {
			continue
		}
		if a.Is4() == (fam == corev1.IPv4Protocol) {
			return a.String(), true
		}
	}
	return "", false
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func endpointFor(svc *corev1.Service, pod *corev1.Pod, addr string) discoveryv1.Endpoint {
	terminating := pod.DeletionTimestamp != nil
	serving := podReady(pod)
	// As upstream: never ready while terminating, unless the Service
	// publishes not-ready addresses.
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	node := pod.Spec.NodeName
	return discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &serving, Terminating: &terminating},
		NodeName:   &node,
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
}

// resolvePorts maps the Service's ports to the pod's ports; a named
// targetPort the pod lacks drops that port for this pod (as upstream).
func resolvePorts(svc *corev1.Service, pod *corev1.Pod) []discoveryv1.EndpointPort {
	var out []discoveryv1.EndpointPort
	for _, sp := range svc.Spec.Ports {
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		var port int32
		switch {
		case sp.TargetPort.StrVal != "":
			port = findContainerPort(pod, sp.TargetPort.StrVal, proto)
		case sp.TargetPort.IntVal != 0:
			port = sp.TargetPort.IntVal
		default:
			port = sp.Port
		}
		if port == 0 {
			continue
		}
		name := sp.Name
		out = append(out, discoveryv1.EndpointPort{Name: &name, Protocol: &proto, Port: &port, AppProtocol: sp.AppProtocol})
	}
	sort.Slice(out, func(i, j int) bool { return *out[i].Name < *out[j].Name })
	return out
}

func findContainerPort(pod *corev1.Pod, name string, proto corev1.Protocol) int32 {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if p.Name == name && pp == proto {
				return p.ContainerPort
			}
		}
	}
	return 0
}

func portsKey(ports []discoveryv1.EndpointPort) string {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "%s/%s/%d;", *p.Name, *p.Protocol, *p.Port)
	}
	return b.String()
}

func newSlice(svc *corev1.Service, at discoveryv1.AddressType, key string, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	h := fnv.New32a()
	h.Write([]byte(key))
	base := svc.Name
	if len(base) > 40 {
		base = base[:40]
	}
	fam := "v4"
	if at == discoveryv1.AddressTypeIPv6 {
		fam = "v6"
	}
	t := true
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s-lab-%s-%08x", base, fam, h.Sum32()),
			Namespace: svc.Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc.Name,
				discoveryv1.LabelManagedBy:   ManagedBy,
			},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
				Controller: &t, BlockOwnerDeletion: &t,
			}},
		},
		AddressType: at,
		Endpoints:   []discoveryv1.Endpoint{},
		Ports:       ports,
	}
}
