package cli

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/internal/register"
	"github.com/beaconlb/beacon/internal/version"
)

// Clients are the API clients every Beacon daemon uses.
type Clients struct {
	Config *rest.Config
	Kube   kubernetes.Interface
	Beacon *client.Client
	// Informers are the same clients for informers only: their list and
	// watch requests wait out an unreachable API server (see waitTransport)
	// rather than fail into client-go's minute-long back-off.
	Informers struct {
		Kube   kubernetes.Interface
		Beacon *client.Client
	}
}

// NewClients builds clients from override (tests) or the kubeconfig file
// (in-cluster configuration when empty), with a user agent and, when qps
// is positive, client-side rate limits.
func NewClients(override *rest.Config, kubeconfig, userAgent string, qps float32, burst int) (*Clients, error) {
	cfg := override
	if cfg == nil {
		var err error
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = userAgent
	if qps > 0 {
		cfg.QPS, cfg.Burst = qps, burst
	}
	kube, err := kubernetes.NewForConfig(protobuf(cfg))
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	beacon, err := client.New(cfg)
	if err != nil {
		return nil, err
	}
	c := &Clients{Config: cfg, Kube: kube, Beacon: beacon}
	icfg := WaitOutOutages(cfg)
	if c.Informers.Kube, err = kubernetes.NewForConfig(protobuf(icfg)); err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if c.Informers.Beacon, err = client.New(icfg); err != nil {
		return nil, err
	}
	return c, nil
}

// protobuf returns cfg for the built-in kinds in protobuf, as kube-proxy
// and the kubelet use them: a list or watch of 10,000 Services decodes
// with a fraction of JSON's garbage. The Beacon client (CRDs) stays JSON.
func protobuf(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.ContentType = runtime.ContentTypeProtobuf
	c.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	return c
}

// Registry returns a metrics registry with the Go and process collectors
// and beacon_build_info.
func Registry() (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	err := register.Metrics(reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		version.Get().Collector())
	return reg, err
}

// Recorder returns an Event recorder, and a function that stops it
// (flushing what it can). It writes through a client of its own, made from
// c's config: every client has its own request rate limiter, and a burst
// of Events (a node's addresses moving) must not hold back the writes that
// others wait for, such as a probe's result.
func (c *Clients) Recorder(ctx context.Context, source v1.EventSource) (record.EventRecorder, func(), error) {
	kube, err := kubernetes.NewForConfig(protobuf(c.Config))
	if err != nil {
		return nil, nil, fmt.Errorf("events client: %w", err)
	}
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	return b.NewRecorder(scheme.Scheme, source), b.Shutdown, nil
}
