// Package client is a small typed client for beaconlb.io resources: a REST
// client on the v1alpha1 scheme and list-watch helpers for informers. It is
// hand-written rather than generated because Beacon needs only list, watch
// and status patches.
package client

import (
	"context"
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
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
	IPPools               = "ippools"
	L2Advertisements      = "l2advertisements"
	ServiceAnnouncements  = "serviceannouncements"
	BGPPeers              = "bgppeers"
	BGPAdvertisements     = "bgpadvertisements"
	BFDProfiles           = "bfdprofiles"
	BGPSessionStates      = "bgpsessionstates"
	ExternalIPsAllowLists = "externalipsallowlists"
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

// BGPPeerInformer returns an informer of BGPPeers.
func (c *Client) BGPPeerInformer() cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(c.ListWatch(BGPPeers), &v1alpha1.BGPPeer{}, 0, cache.Indexers{})
}

// BGPAdvertisementInformer returns an informer of BGPAdvertisements.
func (c *Client) BGPAdvertisementInformer() cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(c.ListWatch(BGPAdvertisements), &v1alpha1.BGPAdvertisement{}, 0, cache.Indexers{})
}

// BFDProfileInformer returns an informer of BFDProfiles.
func (c *Client) BFDProfileInformer() cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(c.ListWatch(BFDProfiles), &v1alpha1.BFDProfile{}, 0, cache.Indexers{})
}

// BGPSessionStateInformer returns an informer of the BGPSessionStates written for one
// node, or for every node when node is empty.
func (c *Client) BGPSessionStateInformer(node string) cache.SharedIndexInformer {
	if node == "" {
		return cache.NewSharedIndexInformer(c.ListWatch(BGPSessionStates), &v1alpha1.BGPSessionState{}, 0, cache.Indexers{})
	}
	sel := labels.SelectorFromSet(labels.Set{v1alpha1.NodeLabel: node}).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			out := &v1alpha1.BGPSessionStateList{}
			err := c.rest.Get().Resource(BGPSessionStates).VersionedParams(&o, metav1.ParameterCodec).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			o.Watch = true
			return c.rest.Get().Resource(BGPSessionStates).VersionedParams(&o, metav1.ParameterCodec).Watch(ctx)
		},
	}
	return cache.NewSharedIndexInformer(lw, &v1alpha1.BGPSessionState{}, 0, cache.Indexers{})
}

// ServiceAnnouncementInformer returns an informer of the ServiceAnnouncements
// written for one node, in every namespace.
func (c *Client) ServiceAnnouncementInformer(node string) cache.SharedIndexInformer {
	sel := labels.SelectorFromSet(labels.Set{v1alpha1.NodeLabel: node}).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			out := &v1alpha1.ServiceAnnouncementList{}
			err := c.rest.Get().Resource(ServiceAnnouncements).VersionedParams(&o, metav1.ParameterCodec).Do(ctx).Into(out)
			return out, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			o.Watch = true
			return c.rest.Get().Resource(ServiceAnnouncements).VersionedParams(&o, metav1.ParameterCodec).Watch(ctx)
		},
	}
	return cache.NewSharedIndexInformer(lw, &v1alpha1.ServiceAnnouncement{}, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
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
	return c.CreateIn(ctx, "", resource, obj)
}

// CreateIn creates an object in a namespace ("" for cluster-scoped).
func (c *Client) CreateIn(ctx context.Context, namespace, resource string, obj runtime.Object) error {
	if err := c.rest.Post().NamespaceIfScoped(namespace, namespace != "").Resource(resource).Body(obj).Do(ctx).Error(); err != nil {
		return fmt.Errorf("create %s: %w", resource, err)
	}
	return nil
}

// Update replaces a cluster-scoped object (used by tests and the lab).
func (c *Client) Update(ctx context.Context, resource, name string, obj runtime.Object) error {
	return c.UpdateIn(ctx, "", resource, name, obj)
}

// UpdateIn replaces an object in a namespace ("" for cluster-scoped).
func (c *Client) UpdateIn(ctx context.Context, namespace, resource, name string, obj runtime.Object) error {
	if err := c.rest.Put().NamespaceIfScoped(namespace, namespace != "").Resource(resource).Name(name).Body(obj).Do(ctx).Error(); err != nil {
		return fmt.Errorf("update %s/%s: %w", resource, name, err)
	}
	return nil
}

// Delete deletes a cluster-scoped object.
func (c *Client) Delete(ctx context.Context, resource, name string) error {
	return c.DeleteIn(ctx, "", resource, name)
}

// DeleteIn deletes an object in a namespace ("" for cluster-scoped).
func (c *Client) DeleteIn(ctx context.Context, namespace, resource, name string) error {
	if err := c.rest.Delete().NamespaceIfScoped(namespace, namespace != "").Resource(resource).Name(name).Do(ctx).Error(); err != nil {
		return fmt.Errorf("delete %s/%s: %w", resource, name, err)
	}
	return nil
}

// ExternalIPsAllowListInformer returns an informer of the one
// ExternalIPsAllowList called name.
func (c *Client) ExternalIPsAllowListInformer(name string) cache.SharedIndexInformer {
	lw := cache.NewListWatchFromClient(c.rest, ExternalIPsAllowLists, "", fields.OneTermEqualSelector("metadata.name", name))
	return cache.NewSharedIndexInformer(lw, &v1alpha1.ExternalIPsAllowList{}, 0, cache.Indexers{})
}

// List lists objects of a resource in a namespace ("" for all) into out.
func (c *Client) List(ctx context.Context, namespace, resource string, out runtime.Object) error {
	if err := c.rest.Get().NamespaceIfScoped(namespace, namespace != "").Resource(resource).Do(ctx).Into(out); err != nil {
		return fmt.Errorf("list %s: %w", resource, err)
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
