package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/beaconlb/beacon/migrate/metallb"
)

// metallbResources are read from MetalLB's namespace, each at the first
// version the API server serves.
var metallbResources = []struct {
	resource string
	versions []string
}{
	{"ipaddresspools", []string{"v1beta1"}},
	{"addresspools", []string{"v1beta1"}},
	{"l2advertisements", []string{"v1beta1"}},
	{"bgpadvertisements", []string{"v1beta1"}},
	{"bgppeers", []string{"v1beta2", "v1beta1"}},
	{"bfdprofiles", []string{"v1beta1"}},
	{"communities", []string{"v1beta1"}},
}

// legacyConfigMaps are the names MetalLB's manifests (config) and Helm
// chart (metallb-config) gave the legacy ConfigMap.
var legacyConfigMaps = []string{"config", "metallb-config"}

// readCluster lists MetalLB's objects in namespace, its legacy ConfigMap,
// and the Services of every namespace that carry MetalLB annotations. A
// kind whose CRD is not installed is simply absent.
func readCluster(ctx context.Context, kubeconfig, namespace string) ([]*unstructured.Unstructured, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "beacon-migrate"
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, r := range metallbResources {
		for _, v := range r.versions {
			gvr := schema.GroupVersionResource{Group: metallb.Group, Version: v, Resource: r.resource}
			items, err := list(ctx, dc.Resource(gvr).Namespace(namespace))
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
			}
			out = append(out, items...)
			break
		}
	}
	cms, err := list(ctx, dc.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(namespace))
	if err != nil {
		return nil, fmt.Errorf("list configmaps: %w", err)
	}
	for _, cm := range cms {
		if slices.Contains(legacyConfigMaps, cm.GetName()) {
			out = append(out, cm)
		}
	}
	svcs, err := list(ctx, dc.Resource(schema.GroupVersionResource{Version: "v1", Resource: "services"}))
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	for _, s := range svcs {
		if hasMetalLBAnnotation(s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func hasMetalLBAnnotation(u *unstructured.Unstructured) bool {
	for k := range u.GetAnnotations() {
		if strings.HasPrefix(k, "metallb.universe.tf/") || strings.HasPrefix(k, "metallb.io/") {
			return true
		}
	}
	return false
}

// list returns every item, page by page, with apiVersion and kind set.
func list(ctx context.Context, ri dynamic.ResourceInterface) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	opts := metav1.ListOptions{Limit: 500}
	for {
		l, err := ri.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		kind := strings.TrimSuffix(l.GetKind(), "List")
		for i := range l.Items {
			it := &l.Items[i]
			if it.GetKind() == "" {
				it.SetKind(kind)
			}
			if it.GetAPIVersion() == "" {
				it.SetAPIVersion(l.GetAPIVersion())
			}
			out = append(out, it)
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			return out, nil
		}
	}
}
