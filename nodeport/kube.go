package nodeport

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

// DefaultAffinityTimeout is Kubernetes' default sessionAffinity timeout.
const DefaultAffinityTimeout = 10800 * time.Second

// ServicesFromKube is the thin adapter from API objects to Build's input.
// Slices are matched to Services by namespace and the
// kubernetes.io/service-name label. allowExternalIP says whether an
// spec.externalIPs address is covered by an IPPool with allowExternalIPs;
// nil allows none. Headless and ExternalName Services are skipped;
// LoadBalancer ingress with ipMode Proxy is left to the external proxy, as
// kube-proxy does.
func ServicesFromKube(svcs []*v1.Service, eps []*discoveryv1.EndpointSlice, allowExternalIP func(netip.Addr) bool) []Service {
	out := new(KubeConverter).convert(svcs, eps, allowExternalIP, false)
	slices.SortFunc(out, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// KubeConverter is ServicesFromKube with a memory: a Service whose object
// and EndpointSlices have the same resourceVersions as at the previous
// call is not converted again (at 10,000 Services a conversion of all
// costs 60-140 ms, a lookup a few). Objects without a resourceVersion are
// always converted. Not safe for concurrent use.
type KubeConverter struct {
	cache  map[nsName]*converted
	slices map[*discoveryv1.EndpointSlice]*sliceSeen // the slices of the last call
	gen    uint64
}

type nsName struct{ ns, name string }

type converted struct {
	svc      *v1.Service
	svcRV    string
	sliceRVs []string // "name/resourceVersion" of each slice, sorted by name
	out      Service  // ExternalIPs holds every spec.externalIPs address
	seen     uint64
}

type sliceSeen struct {
	rv    string
	owner nsName
	seen  uint64
}

// Services converts like ServicesFromKube, in input order rather than
// sorted (Build does not care). Informer caches hand out a new object for
// every new version, so an unchanged Service is recognised by its pointer
// and resourceVersion, and its slices by theirs, without grouping all
// slices by Service again.
func (c *KubeConverter) Services(svcs []*v1.Service, eps []*discoveryv1.EndpointSlice, allowExternalIP func(netip.Addr) bool) []Service {
	return c.convert(svcs, eps, allowExternalIP, true)
}

func sliceOwner(s *discoveryv1.EndpointSlice) (nsName, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	return nsName{s.Namespace, name}, name != ""
}

func (c *KubeConverter) convert(svcs []*v1.Service, eps []*discoveryv1.EndpointSlice, allowExternalIP func(netip.Addr) bool, remember bool) []Service {
	c.gen++
	// Services whose slices changed (new, gone or another version).
	var changed map[nsName]bool
	if remember {
		if c.cache == nil {
			c.cache = make(map[nsName]*converted, len(svcs))
			c.slices = make(map[*discoveryv1.EndpointSlice]*sliceSeen, len(eps))
		}
		changed = map[nsName]bool{}
		for _, s := range eps {
			if st := c.slices[s]; st != nil && st.rv == s.ResourceVersion && st.rv != "" {
				st.seen = c.gen
				continue
			}
			owner, ok := sliceOwner(s)
			c.slices[s] = &sliceSeen{rv: s.ResourceVersion, owner: owner, seen: c.gen}
			if ok {
				changed[owner] = true
			}
		}
		if len(c.slices) != len(eps) {
			for p, st := range c.slices {
				if st.seen != c.gen {
					changed[st.owner] = true
					delete(c.slices, p)
				}
			}
		}
	}
	// Which Services need converting, then only their slices.
	type item struct {
		k  nsName
		cv *converted // reused; nil: convert
	}
	items := make([]item, len(svcs))
	var need map[nsName][]*discoveryv1.EndpointSlice
	for i, s := range svcs {
		if s.Spec.Type == v1.ServiceTypeExternalName || s.Spec.ClusterIP == v1.ClusterIPNone {
			continue
		}
		k := nsName{s.Namespace, s.Name}
		items[i].k = k
		if cv := c.cache[k]; remember && cv != nil && cv.svc == s && cv.svcRV == s.ResourceVersion && cv.svcRV != "" && !changed[k] {
			items[i].cv = cv
			continue
		}
		if need == nil {
			need = map[nsName][]*discoveryv1.EndpointSlice{}
		}
		need[k] = nil
	}
	if len(need) > 0 {
		for _, s := range eps {
			if owner, ok := sliceOwner(s); ok {
				if sl, ok := need[owner]; ok {
					need[owner] = append(sl, s)
				}
			}
		}
	}
	kept := 0
	out := make([]Service, 0, len(svcs))
	for i, s := range svcs {
		k, cv := items[i].k, items[i].cv
		if k.name == "" {
			continue // headless or ExternalName
		}
		if cv == nil {
			sl := need[k]
			if len(sl) > 1 { // informers list in no particular order
				slices.SortFunc(sl, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
			}
			cv = c.cache[k]
			if cv == nil || s.ResourceVersion == "" || cv.svcRV != s.ResourceVersion || !sameSliceVersions(cv.sliceRVs, sl) {
				cv = &converted{svcRV: s.ResourceVersion, out: serviceFromKube(s, sl)}
				for _, e := range sl {
					if e.ResourceVersion == "" {
						cv.svcRV = "" // cannot tell changes apart: never reuse
					}
					cv.sliceRVs = append(cv.sliceRVs, e.Name+"/"+e.ResourceVersion)
				}
			}
			cv.svc = s
			if remember && cv.svcRV != "" {
				c.cache[k] = cv
			}
		}
		if remember && cv.svcRV != "" {
			cv.seen = c.gen
			kept++
		}
		if len(cv.out.ExternalIPs) == 0 {
			out = append(out, cv.out)
			continue
		}
		svc := cv.out
		svc.ExternalIPs = nil
		if allowExternalIP != nil {
			for _, a := range cv.out.ExternalIPs {
				if allowExternalIP(a) {
					svc.ExternalIPs = append(svc.ExternalIPs, a)
				}
			}
		}
		out = append(out, svc)
	}
	if remember && kept != len(c.cache) {
		for k, cv := range c.cache {
			if cv.seen != c.gen {
				delete(c.cache, k)
			}
		}
	}
	return out
}

func sameSliceVersions(rvs []string, sl []*discoveryv1.EndpointSlice) bool {
	if len(rvs) != len(sl) {
		return false
	}
	for i, e := range sl {
		rv := rvs[i]
		if len(rv) != len(e.Name)+1+len(e.ResourceVersion) || rv[:len(e.Name)] != e.Name || rv[len(e.Name)+1:] != e.ResourceVersion {
			return false
		}
	}
	return true
}

// serviceFromKube converts one Service with its slices, keeping every
// spec.externalIPs address.
func serviceFromKube(s *v1.Service, sl []*discoveryv1.EndpointSlice) Service {
	svc := Service{
		Namespace:           s.Namespace,
		Name:                s.Name,
		ClusterIPs:          parseAddrs(clusterIPs(s)),
		ExternalIPs:         parseAddrs(s.Spec.ExternalIPs),
		ExternalLocal:       s.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
		InternalLocal:       s.Spec.InternalTrafficPolicy != nil && *s.Spec.InternalTrafficPolicy == v1.ServiceInternalTrafficPolicyLocal,
		HealthCheckNodePort: uint16(s.Spec.HealthCheckNodePort),
	}
	if s.Spec.Type == v1.ServiceTypeLoadBalancer {
		for _, ing := range s.Status.LoadBalancer.Ingress {
			if ing.IPMode != nil && *ing.IPMode == v1.LoadBalancerIPModeProxy {
				continue
			}
			svc.LoadBalancerIPs = append(svc.LoadBalancerIPs, parseAddrs([]string{ing.IP})...)
		}
		for _, r := range s.Spec.LoadBalancerSourceRanges {
			if p, err := netip.ParsePrefix(strings.TrimSpace(r)); err == nil {
				svc.SourceRanges = append(svc.SourceRanges, p.Masked())
			}
		}
	}
	if s.Spec.SessionAffinity == v1.ServiceAffinityClientIP {
		svc.AffinityTimeout = DefaultAffinityTimeout
		if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			svc.AffinityTimeout = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
		}
	}
	nodePorts := s.Spec.Type == v1.ServiceTypeNodePort || s.Spec.Type == v1.ServiceTypeLoadBalancer
	for _, p := range s.Spec.Ports {
		port := Port{Name: p.Name, Protocol: protocol(p.Protocol), Port: uint16(p.Port)}
		if nodePorts {
			port.NodePort = uint16(p.NodePort)
		}
		svc.Ports = append(svc.Ports, port)
	}
	for _, e := range sl {
		svc.Endpoints = append(svc.Endpoints, endpointsFromSlice(e)...)
	}
	return svc
}

func clusterIPs(s *v1.Service) []string {
	if len(s.Spec.ClusterIPs) > 0 {
		return s.Spec.ClusterIPs
	}
	if s.Spec.ClusterIP != "" {
		return []string{s.Spec.ClusterIP}
	}
	return nil
}

func endpointsFromSlice(sl *discoveryv1.EndpointSlice) []Endpoint {
	if sl.AddressType != discoveryv1.AddressTypeIPv4 && sl.AddressType != discoveryv1.AddressTypeIPv6 {
		return nil
	}
	ports := make([]EndpointPort, 0, len(sl.Ports))
	for _, p := range sl.Ports {
		if p.Port == nil {
			continue
		}
		ep := EndpointPort{Port: uint16(*p.Port), Protocol: TCP}
		if p.Name != nil {
			ep.Name = *p.Name
		}
		if p.Protocol != nil {
			ep.Protocol = protocol(*p.Protocol)
		}
		ports = append(ports, ep)
	}
	var out []Endpoint
	for _, e := range sl.Endpoints {
		// Unset conditions: ready is "unknown, assume ready"; serving
		// follows ready.
		ready := e.Conditions.Ready == nil || *e.Conditions.Ready
		serving := ready
		if e.Conditions.Serving != nil {
			serving = *e.Conditions.Serving
		}
		node := ""
		if e.NodeName != nil {
			node = *e.NodeName
		}
		for _, a := range parseAddrs(e.Addresses) {
			out = append(out, Endpoint{
				Addr: a, NodeName: node, Ports: ports,
				Ready: ready, Serving: serving,
				Terminating: e.Conditions.Terminating != nil && *e.Conditions.Terminating,
			})
		}
	}
	return out
}

func protocol(p v1.Protocol) Protocol {
	switch p {
	case v1.ProtocolUDP:
		return UDP
	case v1.ProtocolSCTP:
		return SCTP
	}
	return TCP
}

func parseAddrs(ss []string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && a.Zone() == "" {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// NodeAddressesFromKube returns the node's InternalIP and ExternalIP
// addresses, the destinations NodePorts are served on.
func NodeAddressesFromKube(n *v1.Node) []netip.Addr {
	var ss []string
	for _, a := range n.Status.Addresses {
		if a.Type == v1.NodeInternalIP || a.Type == v1.NodeExternalIP {
			ss = append(ss, a.Address)
		}
	}
	out := parseAddrs(ss)
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}
