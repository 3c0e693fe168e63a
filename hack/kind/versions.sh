# shellcheck shell=bash disable=SC2034
# Pinned versions of everything the offline kind cluster is built from.
# Sourced by the other hack/kind scripts; every cache directory is keyed by
# these, so bumping one rebuilds only what depends on it.
KIND_VERSION=v0.33.0
K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
CONTAINERD_VERSION=v2.4.2
RUNC_VERSION=v1.5.3
CRICTL_VERSION=v1.37.0
CNI_PLUGINS_VERSION=v1.10.0
# kubeadm v1.36 asks for these two tags; they are built here under those tags.
COREDNS_VERSION=v1.14.2
PAUSE_VERSION=3.10.2
FLANNEL_VERSION=v0.28.10
HELM_VERSION=v3.22.0
DEBIAN_SUITE=bookworm

KIND_CACHE=${KIND_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beacon/kind}
