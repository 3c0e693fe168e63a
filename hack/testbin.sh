#!/usr/bin/env bash
# Builds the pinned kube-apiserver, etcd and helm from the Go module proxy and
# caches them outside the repository. Prints the directory holding them as the
# last line of output (envtest reads it from KUBEBUILDER_ASSETS).
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
WITH_KUBE_PROXY=${WITH_KUBE_PROXY:-0}

cache=${XDG_CACHE_HOME:-$HOME/.cache}/beacon/testbin
# Bump RECIPE when the build steps change, so caches are rebuilt.
RECIPE=3
out=$cache/k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_helm-${HELM_VERSION}_r${RECIPE}
mkdir -p "$out"
export GOWORK=off GOFLAGS=-mod=mod

# One build at a time: parallel callers (make test, the demo, several
# checkouts) would otherwise delete each other's staged sources.
exec 9>"$cache/.lock"
flock 9

log() { echo "testbin: $*" >&2; }

# staged_src copies a module from the module cache to a writable directory.
staged_src() {
  local mod=$1 dst=$2 dir
  dir=$(go mod download -json "$mod" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
  [ -n "$dir" ] || { log "cannot download $mod"; exit 1; }
  rm -rf "$dst"; mkdir -p "$(dirname "$dst")"
  cp -r "$dir" "$dst"; chmod -R u+w "$dst"
}

build_k8s() {
  local want=("$@") missing=()
  for b in "${want[@]}"; do [ -x "$out/$b" ] || missing+=("$b"); done
  [ ${#missing[@]} -eq 0 ] && return
  local src=$cache/src/kubernetes-$K8S_VERSION
  if [ ! -f "$src/.beacon-ready" ]; then
    log "fetching k8s.io/kubernetes@$K8S_VERSION"
    staged_src "k8s.io/kubernetes@$K8S_VERSION" "$src"
    # The module zip lacks staging/: point every staging replace at the
    # published module of the matching v0 version.
    local v0=v0.${K8S_VERSION#v1.}
    sed -i -E "s#^(\s*)(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+#\1\2 => \2 ${v0}#" "$src/go.mod"
    (cd "$src" && go mod tidy -e >/dev/null 2>&1 || true)
    touch "$src/.beacon-ready"
  fi
  for b in "${missing[@]}"; do
    log "building $b (a few minutes when cold)"
    local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
    local v=k8s.io/component-base/version
    # Static, as hack/kind/build-bins.sh builds the cluster's binaries from
    # the same source: with equal flags the two share every compiled package.
    (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out/$b" \
      -ldflags "-X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean" "./cmd/$b")
  done
}

build_etcd() {
  [ -x "$out/etcd" ] && return
  local src=$cache/src/etcd-$ETCD_VERSION
  log "fetching etcd $ETCD_VERSION"
  staged_src "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "$src"
  sed -i -E "s#^(\s*)(go\.etcd\.io/etcd/[a-z0-9/]+) => \.\./[a-z0-9/]+#\1\2 => \2 ${ETCD_VERSION}#" "$src/go.mod"
  (cd "$src" && go mod tidy -e >/dev/null 2>&1 || true)
  log "building etcd"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$out/etcd" .)
}

build_helm() {
  [ -x "$out/helm" ] && return
  log "building helm $HELM_VERSION"
  GOBIN=$out go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

bins=(kube-apiserver)
[ "$WITH_KUBE_PROXY" = 1 ] && bins+=(kube-proxy)
build_etcd
build_k8s "${bins[@]}"
build_helm
echo "$out"
