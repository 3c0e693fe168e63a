// Package lbservice holds what Beacon's controller, cloud provider and
// speakers read from a Service alike: whether Beacon handles it, the
// addresses its status holds, its key, and the order in which held
// addresses are restored at start-up. It depends on the Kubernetes API
// types only, so the speaker can use it without the allocator.
package lbservice

import (
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Handled reports whether svc is a LoadBalancer Service of class: "" means
// Services that set no loadBalancerClass.
func Handled(svc *v1.Service, class string) bool {
	if svc.Spec.Type != v1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return class == ""
	}
	return *svc.Spec.LoadBalancerClass == class
}

// IngressIPs returns the addresses of the Service's status.loadBalancer
// ingress, in order, skipping entries without a valid IP (hostnames).
func IngressIPs(svc *v1.Service) []netip.Addr {
	var ips []netip.Addr
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if a, err := netip.ParseAddr(in.IP); err == nil {
			ips = append(ips, a)
		}
	}
	return ips
}

// AnnotationProbing is written by the controller on a Service whose new
// addresses (of pools announced in L2) wait for a speaker's probe before
// they go into status: every address the Service is to hold, comma
// separated. The speakers announce these addresses instead of the status's,
// probing the new ones first; the controller writes them into status once
// a speaker reports them answered (or found in use, or the wait is over),
// and removes the annotation in the same write.
const AnnotationProbing = "beaconlb.io/probing"

// ProbingIPs returns the addresses of the probing annotation, in order,
// skipping invalid entries; nil when the annotation is not set.
func ProbingIPs(svc *v1.Service) []netip.Addr {
	v, ok := svc.Annotations[AnnotationProbing]
	if !ok {
		return nil
	}
	ips := []netip.Addr{}
	for s := range strings.SplitSeq(v, ",") {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			ips = append(ips, a)
		}
	}
	return ips
}

// OfferedIPs returns the addresses the speakers announce for the Service:
// those of the probing annotation if it is set, else those of its status.
func OfferedIPs(svc *v1.Service) []netip.Addr {
	if ips := ProbingIPs(svc); ips != nil {
		return ips
	}
	return IngressIPs(svc)
}

// Key is the Service's namespace/name.
func Key(svc *v1.Service) string { return svc.Namespace + "/" + svc.Name }

// SortForRestore orders Services for restoring the addresses they hold:
// the oldest first, then by key. Of two Services claiming one address
// (which only a bug or a hand edit can cause) the older keeps it, whichever
// process restores them.
func SortForRestore(svcs []*v1.Service) {
	slices.SortStableFunc(svcs, func(a, b *v1.Service) int {
		ta, tb := a.CreationTimestamp, b.CreationTimestamp
		switch {
		case ta.Before(&tb):
			return -1
		case tb.Before(&ta):
			return 1
		}
		return strings.Compare(Key(a), Key(b))
	})
}
