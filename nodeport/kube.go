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
	owned := map[nsName][]*discoveryv1.EndpointSlice{}
	for _, s := range eps {
		if owner, ok := sliceOwner(s); ok {
			owned[owner] = append(owned[owner], s)
		}
	}
	out := make([]Service, 0, len(svcs))
	for _, s := range svcs {
		if proxied(s) {
			cv := newConverted(s, owned[nsName{s.Namespace, s.Name}])
			out = append(out, allowedExternalIPs(cv.out, allowExternalIP))
		}
	}
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
	svcRV string  // "" when the conversion must not be reused
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
	c.gen++
	if c.bySvc == nil {
		c.bySvc = make(map[*v1.Service]*converted, len(svcs))
		c.byName = make(map[nsName]*v1.Service, len(svcs))
		c.slices = make(map[*discoveryv1.EndpointSlice]*sliceSeen, len(eps))
		c.byOwner = map[nsName]map[*discoveryv1.EndpointSlice]bool{}
	}
	// A Service whose slices changed is converted again.
	for owner := range c.syncSlices(eps) {
		if p, ok := c.byName[owner]; ok {
			delete(c.bySvc, p)
			delete(c.byName, owner)
		}
	}
	kept := 0
	out := make([]Service, 0, len(svcs))
	for _, s := range svcs {
		cv := c.bySvc[s]
		if cv == nil || cv.svcRV != s.ResourceVersion {
			if !proxied(s) {
				continue
			}
			cv = c.convert(s)
		}
		if cv.svcRV != "" {
			cv.seen = c.gen
			kept++
		}
		out = append(out, allowedExternalIPs(cv.out, allowExternalIP))
	}
	if kept != len(c.bySvc) {
		for p, cv := range c.bySvc {
			if cv.seen != c.gen {
				c.forgetService(p)
			}
		}
	}
	return out
}

// syncSlices brings the slice index in line with eps and returns the
// owners whose slices changed (new, gone or another version).
func (c *KubeConverter) syncSlices(eps []*discoveryv1.EndpointSlice) map[nsName]bool {
	changed := map[nsName]bool{}
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
	return changed
}

// convert converts a Service with the slices it owns and keeps the result
// when it can be told apart from later versions.
func (c *KubeConverter) convert(s *v1.Service) *converted {
	k := nsName{s.Namespace, s.Name}
	sl := make([]*discoveryv1.EndpointSlice, 0, len(c.byOwner[k]))
	for p := range c.byOwner[k] {
		sl = append(sl, p)
	}
	cv := newConverted(s, sl)
	if cv.svcRV != "" {
		if p, ok := c.byName[k]; ok && p != s {
			delete(c.bySvc, p)
		}
		c.bySvc[s], c.byName[k] = cv, s
	}
	return cv
}

// forgetService drops a Service the last call had.
func (c *KubeConverter) forgetService(p *v1.Service) {
	delete(c.bySvc, p)
	if k := (nsName{p.Namespace, p.Name}); c.byName[k] == p {
		delete(c.byName, k)
	}
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

func sliceOwner(s *discoveryv1.EndpointSlice) (nsName, bool) {
	name := s.Labels[discoveryv1.LabelServiceName]
	return nsName{s.Namespace, name}, name != ""
}

// proxied says whether the dataplane serves a Service: headless and
// ExternalName Services have nothing to forward.
func proxied(s *v1.Service) bool {
	return s.Spec.Type != v1.ServiceTypeExternalName && s.Spec.ClusterIP != v1.ClusterIPNone
}

// newConverted converts one Service with its slices (sorted in place:
// informers list in no particular order). The resourceVersion it records
// is empty when an object lacks one, since changes cannot then be told
// apart.
func newConverted(s *v1.Service, sl []*discoveryv1.EndpointSlice) *converted {
	if len(sl) > 1 {
		slices.SortFunc(sl, func(a, b *discoveryv1.EndpointSlice) int { return cmp.Compare(a.Name, b.Name) })
	}
	cv := &converted{svcRV: s.ResourceVersion, out: serviceFromKube(s, sl)}
	for _, e := range sl {
		if e.ResourceVersion == "" {
			cv.svcRV = ""
		}
	}
	return cv
}

// allowedExternalIPs returns svc with only the spec.externalIPs addresses
// allowExternalIP allows (nil: none).
func allowedExternalIPs(svc Service, allowExternalIP func(netip.Addr) bool) Service {
	if len(svc.ExternalIPs) == 0 {
		return svc
	}
	all := svc.ExternalIPs
	svc.ExternalIPs = nil
	if allowExternalIP != nil {
		for _, a := range all {
			if allowExternalIP(a) {
				svc.ExternalIPs = append(svc.ExternalIPs, a)
			}
		}
	}
	return svc
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
