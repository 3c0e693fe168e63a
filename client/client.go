// Package client is a small typed client for beaconlb.io resources: a REST
// client on the v1alpha1 scheme and list-watch helpers for informers. It is
// hand-written rather than generated because Beacon needs only list, watch
// and status patches.
package client

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

// Scheme knows the beaconlb.io/v1alpha1 types.
var Scheme = runtime.NewScheme()

func init() {
	if err := v1alpha1.AddToScheme(Scheme); err != nil {
		panic(err)
	}
}

// Client reads and patches beaconlb.io resources.
type Client struct {
	rest rest.Interface
}

// New builds a Client from a REST config (copied, not modified).
func New(cfg *rest.Config) (*Client, error) {
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &v1alpha1.SchemeGroupVersion
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.NegotiatedSerializer = serializer.NewCodecFactory(Scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("beaconlb.io client: %w", err)
	}
	return &Client{rest: rc}, nil
}

// Resource names.
const (
	IPPools          = "ippools"
	L2Advertisements = "l2advertisements"
)

// ListWatch returns a list-watch of a cluster-scoped resource, for informers.
func (c *Client) ListWatch(resource string) *cache.ListWatch {
	return cache.NewListWatchFromClient(c.rest, resource, "", fields.Everything())
}

// IPPoolInformer returns an informer of IPPools; it is started by the caller.
func (c *Client) IPPoolInformer() cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(c.ListWatch(IPPools), &v1alpha1.IPPool{}, 0, cache.Indexers{})
}

// L2AdvertisementInformer returns an informer of L2Advertisements.
func (c *Client) L2AdvertisementInformer() cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(c.ListWatch(L2Advertisements), &v1alpha1.L2Advertisement{}, 0, cache.Indexers{})
}

// PatchStatus merge-patches the status subresource of a cluster-scoped
// object with the given status value.
func (c *Client) PatchStatus(ctx context.Context, resource, name string, status any) error {
	body, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return fmt.Errorf("encode %s/%s status: %w", resource, name, err)
	}
	err = c.rest.Patch(types.MergePatchType).Resource(resource).Name(name).SubResource("status").
		Body(body).Do(ctx).Error()
	if err != nil {
		return fmt.Errorf("patch %s/%s status: %w", resource, name, err)
	}
	return nil
}

// Create creates a cluster-scoped object (used by tests and the lab).
func (c *Client) Create(ctx context.Context, resource string, obj runtime.Object) error {
	if err := c.rest.Post().Resource(resource).Body(obj).Do(ctx).Error(); err != nil {
		return fmt.Errorf("create %s: %w", resource, err)
	}
	return nil
}

// Update replaces a cluster-scoped object (used by tests and the lab).
func (c *Client) Update(ctx context.Context, resource, name string, obj runtime.Object) error {
	if err := c.rest.Put().Resource(resource).Name(name).Body(obj).Do(ctx).Error(); err != nil {
		return fmt.Errorf("update %s/%s: %w", resource, name, err)
	}
	return nil
}

// Delete deletes a cluster-scoped object.
func (c *Client) Delete(ctx context.Context, resource, name string) error {
	if err := c.rest.Delete().Resource(resource).Name(name).Do(ctx).Error(); err != nil {
		return fmt.Errorf("delete %s/%s: %w", resource, name, err)
	}
	return nil
}

// Get reads a cluster-scoped object into out.
func (c *Client) Get(ctx context.Context, resource, name string, out runtime.Object) error {
	if err := c.rest.Get().Resource(resource).Name(name).Do(ctx).Into(out); err != nil {
		return fmt.Errorf("get %s/%s: %w", resource, name, err)
	}
	return nil
}
