#!/usr/bin/env bash
# Builds every binary the offline kind cluster needs from the Go module proxy
# and caches each under $KIND_CACHE/bin/<name>-<version>/. Idempotent: a
# finished component has a .done marker and is skipped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
export GOWORK=off GOFLAGS=-mod=mod
log() { echo "kind-bins: $*" >&2; }
# One build at a time: a second run waits, then finds the results cached.
mkdir -p "$KIND_CACHE/bin"
exec 9>"$KIND_CACHE/bin/.lock"
flock 9

# component NAME VERSION: prints the cache dir; returns 0 if already built.
dir_of() { echo "$KIND_CACHE/bin/$1-$2"; }
done_or_start() {
  local d; d=$(dir_of "$1" "$2")
  [ -f "$d/.done" ] && return 0
  rm -rf "$d"; mkdir -p "$d"; log "building $1 $2"; return 1
}
finish() { touch "$(dir_of "$1" "$2")/.done"; }

build_kind() {
  done_or_start kind $KIND_VERSION && return
  GOBIN=$(dir_of kind $KIND_VERSION) CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kind@$KIND_VERSION"
  finish kind $KIND_VERSION
}


# Kubernetes: the staged source of hack/testbin.sh (staging replaces already
# pointed at the published modules); static binaries so that the control
# plane images need no libc.
build_k8s() {
  done_or_start kubernetes $K8S_VERSION && return
  local src=${XDG_CACHE_HOME:-$HOME/.cache}/beacon/testbin/src/kubernetes-$K8S_VERSION
  if [ ! -f "$src/.beacon-ready" ]; then
    K8S_VERSION=$K8S_VERSION "$here/../testbin.sh" >/dev/null
  fi
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local v=k8s.io/component-base/version out; out=$(dir_of kubernetes $K8S_VERSION)
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out/" \
    -ldflags "-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
    ./cmd/kubelet ./cmd/kubeadm ./cmd/kubectl ./cmd/kube-apiserver \
    ./cmd/kube-controller-manager ./cmd/kube-scheduler ./cmd/kube-proxy)
  # pause: the upstream C source, linked statically.
  gcc -Os -static -DVERSION="v$PAUSE_VERSION" -o "$out/pause" "$src/build/pause/linux/pause.c"
  finish kubernetes $K8S_VERSION
}

build_etcd() {
  done_or_start etcd $ETCD_VERSION && return
  local src=${XDG_CACHE_HOME:-$HOME/.cache}/beacon/testbin/src/etcd-$ETCD_VERSION
  [ -f "$src/go.mod" ] || "$here/../testbin.sh" >/dev/null
  local out; out=$(dir_of etcd $ETCD_VERSION)
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/etcd" .)
  finish etcd $ETCD_VERSION
}

build_containerd() {
  done_or_start containerd $CONTAINERD_VERSION && return
  local out; out=$(dir_of containerd $CONTAINERD_VERSION)
  local m=github.com/containerd/containerd/v2
  GOBIN=$out CGO_ENABLED=0 go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION"
  finish containerd $CONTAINERD_VERSION
}

# runc needs cgo for seccomp (libseccomp-dev here, libseccomp2 in the node).
build_runc() {
  done_or_start runc $RUNC_VERSION && return
  GOBIN=$(dir_of runc $RUNC_VERSION) CGO_ENABLED=1 go install -trimpath -tags seccomp \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v}" "github.com/opencontainers/runc@$RUNC_VERSION"
  finish runc $RUNC_VERSION
}

build_crictl() {
  done_or_start crictl $CRICTL_VERSION && return
  GOBIN=$(dir_of crictl $CRICTL_VERSION) CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  finish crictl $CRICTL_VERSION
}

build_cni() {
  done_or_start cni-plugins $CNI_PLUGINS_VERSION && return
  local p=github.com/containernetworking/plugins/plugins
  GOBIN=$(dir_of cni-plugins $CNI_PLUGINS_VERSION) CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "$p/main/bridge@$CNI_PLUGINS_VERSION" "$p/main/loopback@$CNI_PLUGINS_VERSION" \
    "$p/main/ptp@$CNI_PLUGINS_VERSION" "$p/ipam/host-local@$CNI_PLUGINS_VERSION" \
    "$p/meta/portmap@$CNI_PLUGINS_VERSION"
  finish cni-plugins $CNI_PLUGINS_VERSION
}

build_coredns() {
  done_or_start coredns $COREDNS_VERSION && return
  GOBIN=$(dir_of coredns $COREDNS_VERSION) CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
  finish coredns $COREDNS_VERSION
}

# flannel: only the host-gw and vxlan backends. The others are blank
# imports in main.go, and one of them (tencentvpc) needs a module the proxy
# does not serve, so the source is staged and those imports dropped.
build_flannel() {
  done_or_start flannel $FLANNEL_VERSION && return
  local src=$KIND_CACHE/src/flannel-$FLANNEL_VERSION dir
  dir=$(go mod download -json "github.com/flannel-io/flannel@$FLANNEL_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$src"; mkdir -p "$(dirname "$src")"; cp -r "$dir" "$src"; chmod -R u+w "$src"
  sed -i -E '/"github.com\/flannel-io\/flannel\/pkg\/backend\/(alloc|extension|ipip|ipsec|tencentvpc|udp|wireguard)"/d' "$src/main.go"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$(dir_of flannel $FLANNEL_VERSION)/flannel" \
    -ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION" .)
  finish flannel $FLANNEL_VERSION
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kind containerd runc crictl cni coredns flannel etcd k8s)
for t in "${targets[@]}"; do
  s=$(date +%s); "build_$t"; log "$t ready ($(( $(date +%s) - s ))s)"
done
