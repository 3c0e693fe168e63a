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
// and EndpointSlices are the ones of the previous call is not converted
// again (at 10,000 Services a conversion of all costs 60-140 ms, the
// lookups a few). Informer caches hand out a new object for every new
// version, so objects are recognised by pointer, with the resourceVersion
// as a guard; objects without a resourceVersion are always converted. Not
// safe for concurrent use.
type KubeConverter struct {
	bySvc   map[*v1.Service]*converted
	byName  map[nsName]*v1.Service                    // the key of each bySvc entry
	slices  map[*discoveryv1.EndpointSlice]*sliceSeen // the slices of the last call
	byOwner map[nsName]map[*discoveryv1.EndpointSlice]bool
	gen     uint64
}

type nsName struct{ ns, name string }

type converted struct {
	svcRV string
	out   Service // ExternalIPs holds every spec.externalIPs address
	seen  uint64
}

type sliceSeen struct {
	rv    string
	owner nsName
	owned bool
	seen  uint64
}

// Services converts like ServicesFromKube, in input order rather than
// sorted (Build does not care).
func (c *KubeConverter) Services(svcs []*v1.Service, eps []*discoveryv1.EndpointSlice, allowExternalIP func(netip.Addr) bool) []Service {
	return c.convert(svcs, eps, allowExternalIP, true)
}

func sliceOwner(s *discoveryv1.EndpointSlice) (nsName, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	return nsName{s.Namespace, name}, name != ""
}

func (c *KubeConverter) convert(svcs []*v1.Service, eps []*discoveryv1.EndpointSlice, allowExternalIP func(netip.Addr) bool, remember bool) []Service {
	c.gen++
	// Services whose slices changed (new, gone or another version), and
	// every Service's current slices, kept up to date from the changes.
	var changed map[nsName]bool
	if remember {
		if c.bySvc == nil {
			c.bySvc = make(map[*v1.Service]*converted, len(svcs))
			c.byName = make(map[nsName]*v1.Service, len(svcs))
			c.slices = make(map[*discoveryv1.EndpointSlice]*sliceSeen, len(eps))
			c.byOwner = map[nsName]map[*discoveryv1.EndpointSlice]bool{}
		}
		changed = map[nsName]bool{}
		for _, s := range eps {
			if st := c.slices[s]; st != nil && st.rv == s.ResourceVersion && st.rv != "" {
				st.seen = c.gen
				continue
			} else if st != nil { // the same object with another version: mutated in place
				c.forgetSlice(s, st)
			}
			owner, ok := sliceOwner(s)
			c.slices[s] = &sliceSeen{rv: s.ResourceVersion, owner: owner, owned: ok, seen: c.gen}
			if ok {
				changed[owner] = true
				if c.byOwner[owner] == nil {
					c.byOwner[owner] = map[*discoveryv1.EndpointSlice]bool{}
				}
				c.byOwner[owner][s] = true
			}
		}
		// A replaced slice usually keeps its owner: look there first, and
		// walk everything only when slices went away otherwise.
		for owner := range changed {
			for p := range c.byOwner[owner] {
				if st := c.slices[p]; st.seen != c.gen {
					c.forgetSlice(p, st)
				}
			}
		}
		if len(c.slices) != len(eps) {
			for p, st := range c.slices {
				if st.seen != c.gen {
					if st.owned {
						changed[st.owner] = true
					}
					c.forgetSlice(p, st)
				}
			}
		}
	}
	// A Service whose slices changed is converted again.
	for owner := range changed {
		if p, ok := c.byName[owner]; ok {
			delete(c.bySvc, p)
			delete(c.byName, owner)
		}
	}
	// Which Services need converting, then only their slices.
	reuse := make([]*converted, len(svcs))
	var need map[nsName][]*discoveryv1.EndpointSlice
	for i, s := range svcs {
		if cv := c.bySvc[s]; remember && cv != nil && cv.svcRV == s.ResourceVersion {
			reuse[i] = cv
			continue
		}
		if s.Spec.Type == v1.ServiceTypeExternalName || s.Spec.ClusterIP == v1.ClusterIPNone {
			continue
		}
		if need == nil {
			need = map[nsName][]*discoveryv1.EndpointSlice{}
		}
		k := nsName{s.Namespace, s.Name}
		need[k] = nil // present, with or without slices
		if remember {
			for sl := range c.byOwner[k] {
				need[k] = append(need[k], sl)
			}
		}
	}
	if !remember && len(need) > 0 {
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
		cv := reuse[i]
		if cv == nil {
			k := nsName{s.Namespace, s.Name}
			sl, ok := need[k]
			if !ok {
				continue // headless or ExternalName
			}
			if len(sl) > 1 { // informers list in no particular order
				slices.SortFunc(sl, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
			}
			cv = &converted{svcRV: s.ResourceVersion, out: serviceFromKube(s, sl)}
			for _, e := range sl {
				if e.ResourceVersion == "" {
					cv.svcRV = "" // cannot tell changes apart: never reuse
				}
			}
			if remember && cv.svcRV != "" {
				if p, ok := c.byName[k]; ok && p != s {
					delete(c.bySvc, p)
				}
				c.bySvc[s], c.byName[k] = cv, s
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
	if remember && kept != len(c.bySvc) {
		for p, cv := range c.bySvc {
			if cv.seen != c.gen {
				delete(c.bySvc, p)
				if k := (nsName{p.Namespace, p.Name}); c.byName[k] == p {
					delete(c.byName, k)
				}
			}
		}
	}
	return out
}

// forgetSlice drops a slice the last call had.
func (c *KubeConverter) forgetSlice(p *discoveryv1.EndpointSlice, st *sliceSeen) {
	delete(c.slices, p)
	if st.owned {
		delete(c.byOwner[st.owner], p)
		if len(c.byOwner[st.owner]) == 0 {
			delete(c.byOwner, st.owner)
		}
	}
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
