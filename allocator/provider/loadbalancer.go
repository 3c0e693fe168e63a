package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	cloudprovider "k8s.io/cloud-provider"
	"k8s.io/cloud-provider/api"
	"k8s.io/klog/v2"

	"github.com/beaconlb/beacon/allocator"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/lbservice"
)

// ProviderName is the name Beacon registers as a cloud provider.
const ProviderName = "beacon"

func init() {
	cloudprovider.RegisterCloudProvider(ProviderName, func(io.Reader) (cloudprovider.Interface, error) {
		return NewHostedCloud(), nil
	})
}

// NamespaceLabels looks up the labels of a namespace (nil if unknown).
type NamespaceLabels func(namespace string) labels.Set

// LoadBalancer allocates Service addresses from IPPools.
type LoadBalancer struct {
	nsLabels NamespaceLabels

	mu    sync.Mutex
	alloc *allocator.Allocator
	pools *config.Pools
}

var _ cloudprovider.LoadBalancer = (*LoadBalancer)(nil)

// New returns a LoadBalancer with no pools. nsLabels may be nil when no pool
// uses a namespace selector.
func New(nsLabels NamespaceLabels) *LoadBalancer {
	if nsLabels == nil {
		nsLabels = func(string) labels.Set { return nil }
	}
	return &LoadBalancer{
		nsLabels: nsLabels,
		alloc:    allocator.New(),
		pools:    &config.Pools{ByName: map[string]*config.Pool{}, Invalid: map[string]error{}},
	}
}

// SetPools replaces the pool set. Existing allocations are kept, also those
// that no pool covers any more.
func (lb *LoadBalancer) SetPools(p *config.Pools) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.pools = p
	lb.alloc.SetPools(p)
}

// Pools returns the current pool set. Callers must not modify it.
func (lb *LoadBalancer) Pools() *config.Pools {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.pools
}

// Stats returns address counts per pool.
func (lb *LoadBalancer) Stats() map[string]allocator.PoolStats {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.alloc.Stats()
}

// SetConflicts replaces the addresses other hosts use (see
// allocator.SetConflicts).
func (lb *LoadBalancer) SetConflicts(ips []netip.Addr) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	lb.alloc.SetConflicts(ips)
}

// Owners returns the keys of the Services holding ip, sorted.
func (lb *LoadBalancer) Owners(ip netip.Addr) []string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.alloc.Owners(ip)
}

// PoolOf names the pool an address belongs to, or "".
func (lb *LoadBalancer) PoolOf(ip netip.Addr) string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.alloc.PoolOf(ip)
}

// Restore records the addresses a Service already holds, as found in its
// status when the controller starts. It refuses addresses that would break
// sharing rules with those restored before.
func (lb *LoadBalancer) Restore(svc *v1.Service, ips []netip.Addr) error {
	req, _, err := RequestFor(svc, lb.nsLabels(svc.Namespace))
	if err != nil {
		// The request is unreadable now, but the Service holds these
		// addresses: keep them, minus the request details.
		req.IPs = nil
	}
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.alloc.Restore(req, ips)
}

// Outcome is what Ensure decided for a Service.
type Outcome struct {
	Status   *v1.LoadBalancerStatus
	Result   allocator.Result
	Warnings []string
}

// Ensure allocates (or confirms) the Service's addresses. On error the
// Service keeps whatever it held before.
func (lb *LoadBalancer) Ensure(svc *v1.Service) (Outcome, error) {
	req, warnings, err := RequestFor(svc, lb.nsLabels(svc.Namespace))
	if err != nil {
		return Outcome{Warnings: warnings}, &allocator.Error{Reason: allocator.ReasonBadRequest, Msg: err.Error()}
	}
	lb.mu.Lock()
	res, err := lb.alloc.Allocate(req)
	lb.mu.Unlock()
	if err != nil {
		return Outcome{Warnings: warnings}, err
	}
	return Outcome{Status: StatusFor(res.IPs), Result: res, Warnings: warnings}, nil
}

// Release frees everything the Service holds and returns what became free.
func (lb *LoadBalancer) Release(key string) []netip.Addr {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.alloc.Release(key)
}

// Holding returns the addresses a Service holds.
func (lb *LoadBalancer) Holding(key string) []netip.Addr {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.alloc.Holding(key)
}

// StatusFor builds the load balancer status for addresses, in order.
func StatusFor(ips []netip.Addr) *v1.LoadBalancerStatus {
	st := &v1.LoadBalancerStatus{}
	vip := v1.LoadBalancerIPModeVIP
	for _, ip := range ips {
		st.Ingress = append(st.Ingress, v1.LoadBalancerIngress{IP: ip.String(), IPMode: &vip})
	}
	return st
}

// GetLoadBalancer reports the Service's addresses, if it holds any.
func (lb *LoadBalancer) GetLoadBalancer(_ context.Context, _ string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	ips := lb.Holding(lbservice.Key(svc))
	if len(ips) == 0 {
		return nil, false, nil
	}
	return StatusFor(ips), true, nil
}

// GetLoadBalancerName returns the cloud-provider default name.
func (lb *LoadBalancer) GetLoadBalancerName(_ context.Context, _ string, svc *v1.Service) string {
	return cloudprovider.DefaultLoadBalancerName(svc)
}

// EnsureLoadBalancer allocates the Service's addresses. An exhausted pool is
// returned as a short RetryError so that a host using the upstream service
// controller retries every second instead of backing off for minutes.
func (lb *LoadBalancer) EnsureLoadBalancer(_ context.Context, _ string, svc *v1.Service, _ []*v1.Node) (*v1.LoadBalancerStatus, error) {
	out, err := lb.Ensure(svc)
	if err != nil {
		if allocator.IsRetryable(err) {
			return nil, api.NewRetryError(err.Error(), time.Second)
		}
		return nil, err
	}
	return out.Status, nil
}

// UpdateLoadBalancer has nothing to do: addresses do not depend on nodes.
func (lb *LoadBalancer) UpdateLoadBalancer(context.Context, string, *v1.Service, []*v1.Node) error {
	return nil
}

// EnsureLoadBalancerDeleted releases the Service's addresses.
func (lb *LoadBalancer) EnsureLoadBalancerDeleted(_ context.Context, _ string, svc *v1.Service) error {
	lb.Release(lbservice.Key(svc))
	return nil
}

// Cloud is the cloudprovider.Interface around a LoadBalancer.
type Cloud struct {
	lb   *LoadBalancer
	feed *feed // nil: the caller feeds lb (beacon-controller, tests)
}

var _ cloudprovider.Interface = (*Cloud)(nil)

// NewCloud wraps a LoadBalancer that its caller keeps supplied with pools
// (SetPools) and held addresses (Restore).
func NewCloud(lb *LoadBalancer) *Cloud { return &Cloud{lb: lb} }

// NewHostedCloud is the provider a cloud-controller-manager gets from the
// registry (--cloud-provider=beacon): its Initialize reads the IPPools,
// namespace labels and held addresses from the API server itself.
func NewHostedCloud() *Cloud {
	f := &feed{}
	return &Cloud{lb: New(f.labels), feed: f}
}

// Initialize, for a hosted provider, loads the pools and the addresses
// Services already hold before it returns, and follows pool changes until
// stop closes. Errors are logged: the interface has no error return.
func (c *Cloud) Initialize(cb cloudprovider.ControllerClientBuilder, stop <-chan struct{}) {
	if c.feed == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-stop
		cancel()
	}()
	if err := c.feed.start(ctx, c.lb, cb, initTimeout); err != nil {
		klog.ErrorS(err, "beacon cloud provider: cannot load pools and held addresses; no Service will get an address")
	}
}

// LoadBalancer returns Beacon's LoadBalancer.
func (c *Cloud) LoadBalancer() (cloudprovider.LoadBalancer, bool) { return c.lb, true }

// Instances is not supported: bare metal has no instance API.
func (c *Cloud) Instances() (cloudprovider.Instances, bool) { return nil, false }

// InstancesV2 is not supported.
func (c *Cloud) InstancesV2() (cloudprovider.InstancesV2, bool) { return nil, false }

// Zones is not supported.
func (c *Cloud) Zones() (cloudprovider.Zones, bool) { return nil, false }

// Clusters is not supported.
func (c *Cloud) Clusters() (cloudprovider.Clusters, bool) { return nil, false }

// Routes is not supported: pod routing is the CNI's job.
func (c *Cloud) Routes() (cloudprovider.Routes, bool) { return nil, false }

// ProviderName returns "beacon".
func (c *Cloud) ProviderName() string { return ProviderName }

// HasClusterID reports true: Beacon needs no cluster ID.
func (c *Cloud) HasClusterID() bool { return true }

// Reason returns the allocator reason of an error, or "" if it has none.
func Reason(err error) string {
	var ae *allocator.Error
	if errors.As(err, &ae) {
		return string(ae.Reason)
	}
	return ""
}

// AllocatedFrom names the pools of the addresses, in order, each once, for
// the allocated-from-pool annotation; "" when none is in a pool.
func (lb *LoadBalancer) AllocatedFrom(ips []netip.Addr) string {
	var names []string
	for _, ip := range ips {
		if p := lb.PoolOf(ip); p != "" && !slices.Contains(names, p) {
			names = append(names, p)
		}
	}
	return strings.Join(names, ",")
}

// Describe names each address with its pool, for Events:
// "198.51.100.200 (pool lan)".
func (lb *LoadBalancer) Describe(ips []netip.Addr) string {
	parts := make([]string, 0, len(ips))
	for _, ip := range ips {
		if p := lb.PoolOf(ip); p != "" {
			parts = append(parts, fmt.Sprintf("%s (pool %s)", ip, p))
		} else {
			parts = append(parts, fmt.Sprintf("%s (in no pool)", ip))
		}
	}
	return strings.Join(parts, ", ")
}
