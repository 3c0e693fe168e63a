package provider

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/beaconlb/beacon/allocator"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/lbservice"
)

// Service annotations Beacon reads, and the one it writes.
const (
	AnnotationPrefix = "beaconlb.io/"
	// AnnotationIPs requests addresses: comma-separated, one per family.
	AnnotationIPs = AnnotationPrefix + "ips"
	// AnnotationPool names the pool to allocate from.
	AnnotationPool = AnnotationPrefix + "pool"
	// AnnotationSharedIP is the sharing key: Services with the same key and
	// disjoint ports may share an address.
	AnnotationSharedIP = AnnotationPrefix + "allow-shared-ip"
	// AnnotationAllocatedFrom is written by the controller: the pools the
	// Service's addresses come from, comma-separated in the order of its
	// ingress, each pool once.
	AnnotationAllocatedFrom = AnnotationPrefix + "allocated-from-pool"
)

var knownAnnotations = map[string]bool{AnnotationIPs: true, AnnotationPool: true, AnnotationSharedIP: true, AnnotationAllocatedFrom: true,
	lbservice.AnnotationProbing: true}

// RequestFor turns a Service into an allocation request. Problems that do
// not prevent allocation (unknown beaconlb.io/ annotations) come back as
// warnings; a request that cannot be understood is an error.
func RequestFor(svc *v1.Service, nsLabels labels.Set) (req allocator.Request, warnings []string, err error) {
	req = allocator.Request{
		Key:             svc.Namespace + "/" + svc.Name,
		Namespace:       svc.Namespace,
		NamespaceLabels: nsLabels,
		ServiceLabels:   labels.Set(svc.Labels),
		Pool:            strings.TrimSpace(svc.Annotations[AnnotationPool]),
		SharingKey:      strings.TrimSpace(svc.Annotations[AnnotationSharedIP]),
		Local:           svc.Spec.ExternalTrafficPolicy == v1.ServiceExternalTrafficPolicyLocal,
	}
	var unknown []string
	for k := range svc.Annotations {
		if strings.HasPrefix(k, AnnotationPrefix) && !knownAnnotations[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		warnings = append(warnings, fmt.Sprintf("unknown annotation %q ignored (known: %s, %s, %s)", k, AnnotationIPs, AnnotationPool, AnnotationSharedIP))
	}
	if req.Local {
		req.Selector = labels.SelectorFromSet(svc.Spec.Selector).String()
	}
	for _, p := range svc.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = v1.ProtocolTCP
		}
		req.Ports = append(req.Ports, allocator.Port{Protocol: string(proto), Port: p.Port})
	}
	req.Families, req.RequireAll = families(svc)
	req.IPs, err = requestedIPs(svc)
	return req, warnings, err
}

// families follows the Service's ipFamilies order, as the API server set it
// from the cluster's service CIDRs and the Service's ipFamilyPolicy.
func families(svc *v1.Service) ([]config.Family, bool) {
	var fs []config.Family
	for _, f := range svc.Spec.IPFamilies {
		switch f {
		case v1.IPv4Protocol:
			fs = append(fs, config.IPv4)
		case v1.IPv6Protocol:
			fs = append(fs, config.IPv6)
		}
	}
	if len(fs) == 0 { // not defaulted (very old API server): follow the ClusterIP
		fs = []config.Family{config.IPv4}
		if a, err := netip.ParseAddr(svc.Spec.ClusterIP); err == nil && a.Is6() {
			fs = []config.Family{config.IPv6}
		}
	}
	policy := v1.IPFamilyPolicySingleStack
	if svc.Spec.IPFamilyPolicy != nil {
		policy = *svc.Spec.IPFamilyPolicy
	}
	switch policy {
	case v1.IPFamilyPolicyPreferDualStack:
		return fs, false
	case v1.IPFamilyPolicyRequireDualStack:
		return fs, true
	}
	return fs[:1], true
}

func requestedIPs(svc *v1.Service) ([]netip.Addr, error) {
	raw, fromAnnotation := svc.Annotations[AnnotationIPs]
	lb := strings.TrimSpace(svc.Spec.LoadBalancerIP)
	if lb != "" && !fromAnnotation {
		raw = lb
	}
	if strings.TrimSpace(raw) == "" {
		if fromAnnotation {
			return nil, fmt.Errorf("annotation %s is empty", AnnotationIPs)
		}
		return nil, nil
	}
	var ips []netip.Addr
	for _, s := range strings.Split(raw, ",") {
		a, err := plainAddr(s)
		if err != nil {
			return nil, err
		}
		ips = append(ips, a)
	}
	if lb != "" && fromAnnotation {
		// Compare addresses, not text: 2001:DB8::1 is 2001:db8::1.
		a, err := plainAddr(lb)
		if err != nil || !slices.Contains(ips, a) {
			return nil, fmt.Errorf("spec.loadBalancerIP %s conflicts with annotation %s=%q", lb, AnnotationIPs, raw)
		}
	}
	return ips, nil
}

func plainAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("requested address %q is not a plain IPv4 or IPv6 address", s)
	}
	return a, nil
}
