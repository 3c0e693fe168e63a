package lab

import (
	"os"
)

// Config describes a lab. The zero value is a valid 3 nodes × 2 pods lab
// using $KUBEBUILDER_ASSETS.
type Config struct {
	// Nodes is the number of nodes (default 3, at most MaxNodes).
	Nodes int
	// PodsPerNode is the number of echo pods per node (default 2).
	PodsPerNode int
	// AssetsDir holds etcd and kube-apiserver (default $KUBEBUILDER_ASSETS,
	// as printed last by hack/testbin.sh).
	AssetsDir string
	// CRDDir holds the CRDs to install (default charts/beacon/crds of this
	// source tree, else of the working directory).
	CRDDir string
	// EchoBinary is the beacon-echo executable (default $BEACON_ECHO, else
	// beacon-echo next to this executable, else on $PATH). Up copies it into
	// the state directory.
	EchoBinary string
	// Namespace of the Pod objects (default "default").
	Namespace string
	// HeartbeatNetwork gives every node a second NIC, HeartbeatInterface, on
	// a switch of its own (HeartbeatV4), and makes that address the node's
	// first InternalIP, so speakers' heartbeats flow there while the LAN
	// carries the announcements: pulling a node's LAN cable (SetCable) then
	// leaves its speaker alive.
	HeartbeatNetwork bool
	// Router configures FRR in the router (ASNs, BFD timers, passwords).
	Router RouterConfig
	// ReplaceDetached makes Up remove a running lab started by `beacon-lab
	// up` (see Detach) instead of failing at once. A lab owned by a running
	// test is always waited for (within the context).
	ReplaceDetached bool
	// NoEndpointWriter skips the in-process EndpointSlice writer (the CLI
	// runs it in its detached daemon instead).
	NoEndpointWriter bool
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if c.PodsPerNode == 0 {
		c.PodsPerNode = 2
	}
	if c.AssetsDir == "" {
		c.AssetsDir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if c.Namespace == "" {
		c.Namespace = "default"
	}
	c.Router = c.Router.withDefaults()
	return c
}

func (c Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}
