package metallb

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/beaconlb/beacon/allocator/provider"
)

// MetalLB's Service annotation prefixes; metallb.io is the newer one and
// wins when both are set.
var annotationPrefixes = []string{"metallb.io/", "metallb.universe.tf/"}

// serviceAnnotations maps MetalLB annotations (without prefix) to Beacon's.
var serviceAnnotations = []struct{ metallb, beacon string }{
	{"loadBalancerIPs", provider.AnnotationIPs},
	{"address-pool", provider.AnnotationPool},
	{"allow-shared-ip", provider.AnnotationSharedIP},
}

// allocatedFrom is written by MetalLB, not read: nothing to convert.
const allocatedFrom = "ip-allocated-from-pool"

// service converts the MetalLB annotations of a Service. Services without
// any give no output.
func (c *converter) service(u *unstructured.Unstructured) {
	r := reporter{obj: refOf(u), prefix: "metadata.annotations.", out: &c.res.Findings}
	var svc corev1.Service
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &svc); err != nil {
		r.prefix = ""
		r.add("", "cannot be read (%v); skipped", err)
		return
	}
	ann := svc.Annotations
	out := map[string]string{}
	known := map[string]bool{}
	for _, m := range serviceAnnotations {
		var value, from string
		for _, p := range annotationPrefixes {
			known[p+m.metallb] = true
			v, ok := ann[p+m.metallb]
			switch {
			case !ok:
			case from == "":
				value, from = v, p+m.metallb
			case strings.TrimSpace(v) != strings.TrimSpace(value):
				r.add(p+m.metallb, "differs from %s=%q, which is used", from, value)
			}
		}
		if from == "" {
			continue
		}
		value = strings.TrimSpace(value)
		if m.beacon == provider.AnnotationIPs {
			parts := strings.Split(value, ",")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			value = strings.Join(parts, ",")
		}
		if have, ok := ann[m.beacon]; ok {
			if have != value {
				r.add(from, "%s is already %q; left as it is", m.beacon, have)
			}
			continue
		}
		out[m.beacon] = value
	}
	for _, k := range slices.Sorted(maps.Keys(ann)) {
		for _, p := range annotationPrefixes {
			if strings.HasPrefix(k, p) && !known[k] && k != p+allocatedFrom {
				r.add(k, "no Beacon equivalent; not converted")
			}
		}
	}
	if len(out) == 0 {
		return
	}
	// Beacon's controller decides whether it accepts the request; ask it
	// now rather than after the cut-over.
	full := svc.DeepCopy()
	for k, v := range out {
		full.Annotations[k] = v
	}
	if _, _, err := provider.RequestFor(full, nil); err != nil {
		r.prefix = ""
		r.add("", "Beacon's controller will refuse this Service's request: %v", err)
	}
	c.res.Services = append(c.res.Services, corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Annotations: out},
	})
}
