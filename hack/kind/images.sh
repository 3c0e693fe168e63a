#!/usr/bin/env bash
# images.sh: builds (or finds cached) every image of the offline kind
# cluster with podman and prints KEY=value lines naming them:
#   NODE_IMAGE   the kind node image (control plane images preloaded)
#   NET_IMAGE    Debian with iptables/nftables/iproute2 (flannel, kube-proxy base)
#   FRR_IMAGE    Debian with FRR, curl and iproute2 (router and client)
#   FLANNEL_IMAGE
# Nothing is pulled: rootfs come from debootstrap, binaries from
# build-bins.sh. Image tags carry the versions (and a hash of the node's own
# files), so a cached image is reused only when nothing changed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
log() { echo "kind-images: $*" >&2; }
bin() { echo "$KIND_CACHE/bin/$1-$2"; }
exists() { podman image exists "$1"; }

# rootfs_image NAME PKGS...: a debootstrap rootfs imported as an image.
rootfs_image() {
  local name=$1; shift
  local tar; tar=$("$here/rootfs.sh" "$name" "$@")
  local tag
  tag=localhost/beacon-kind/$name-rootfs:$(basename "$tar" .tar | sed 's/.*-//')
  exists "$tag" || podman import --quiet "$tar" "$tag" >/dev/null
  echo "$tag"
}

# build TAG CONTEXT: podman build with the Containerfile in CONTEXT, offline.
build() {
  local tag=$1 ctx=$2
  exists "$tag" && return
  log "building $tag"
  podman build --quiet --pull=never --network=none -t "$tag" "$ctx" >/dev/null
}

ctxdir() { local d=$KIND_CACHE/ctx/$1; rm -rf "$d"; mkdir -p "$d"; echo "$d"; }

# static_image TAG ENTRYPOINT FILE...: a scratch image holding static
# binaries in /usr/local/bin (kubeadm's manifests call them by name).
static_image() {
  local tag=$1 entry=$2; shift 2
  exists "$tag" && return
  local d; d=$(ctxdir "$(echo "$tag" | tr '/:' '__')")
  mkdir -p "$d/bin"; cp "$@" "$d/bin/"
  cat >"$d/Containerfile" <<CF
FROM scratch
COPY bin/ /usr/local/bin/
ENV PATH=/usr/local/bin:/usr/bin:/bin
ENTRYPOINT ["$entry"]
CF
  build "$tag" "$d"
}

net_pkgs=(iptables nftables iproute2 conntrack ipset kmod ca-certificates)
frr_pkgs=(frr iproute2 iputils-ping curl procps ca-certificates)
node_pkgs=(systemd systemd-sysv dbus iptables nftables iproute2 conntrack
  ethtool kmod libseccomp2 ca-certificates procps socat util-linux mount bash)

# debootstrap mostly downloads and unpacks, the Go builds mostly compute:
# on a cold machine the root filesystems are made while the binaries build
# (cached ones return at once).
mkdir -p "$KIND_CACHE/rootfs"
rootfs_pids=()
"$here/rootfs.sh" net "${net_pkgs[@]}" >/dev/null & rootfs_pids+=($!)
"$here/rootfs.sh" frr "${frr_pkgs[@]}" >/dev/null & rootfs_pids+=($!)
"$here/rootfs.sh" node "${node_pkgs[@]}" >/dev/null & rootfs_pids+=($!)
bins_rc=0
"$here/build-bins.sh" >&2 || bins_rc=$?
rootfs_rc=0
for p in "${rootfs_pids[@]}"; do wait "$p" || rootfs_rc=$?; done
[ "$bins_rc" = 0 ] || exit "$bins_rc"
[ "$rootfs_rc" = 0 ] || { log "a root filesystem failed to build (its debootstrap log is above)"; exit "$rootfs_rc"; }
k8s=$(bin kubernetes $K8S_VERSION)

NET_IMAGE=$(rootfs_image net "${net_pkgs[@]}")
FRR_IMAGE=$(rootfs_image frr "${frr_pkgs[@]}")
NODE_ROOTFS=$(rootfs_image node "${node_pkgs[@]}")

FLANNEL_IMAGE=localhost/beacon-kind/flannel:$FLANNEL_VERSION
# The images kubeadm v1.36 asks for, under its names, and the CNI's.
R=registry.k8s.io
ETCD_TAG=${ETCD_VERSION#v}-0
cp_images=(
  "$R/kube-apiserver:$K8S_VERSION" "$R/kube-controller-manager:$K8S_VERSION"
  "$R/kube-scheduler:$K8S_VERSION" "$R/kube-proxy:$K8S_VERSION"
  "$R/etcd:$ETCD_TAG" "$R/coredns/coredns:$COREDNS_VERSION" "$R/pause:$PAUSE_VERSION"
  "$FLANNEL_IMAGE"
)
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  static_image "$R/$c:$K8S_VERSION" "/usr/local/bin/$c" "$k8s/$c"
done
static_image "$R/etcd:$ETCD_TAG" /usr/local/bin/etcd "$(bin etcd $ETCD_VERSION)/etcd"
static_image "$R/coredns/coredns:$COREDNS_VERSION" /usr/local/bin/coredns "$(bin coredns $COREDNS_VERSION)/coredns"
static_image "$R/pause:$PAUSE_VERSION" /usr/local/bin/pause "$k8s/pause"

# kube-proxy and flannel program iptables: Debian userland underneath.
if ! exists "$R/kube-proxy:$K8S_VERSION"; then
  d=$(ctxdir kube-proxy); cp "$k8s/kube-proxy" "$d/"
  printf 'FROM %s\nCOPY kube-proxy /usr/local/bin/kube-proxy\n' "$NET_IMAGE" >"$d/Containerfile"
  build "$R/kube-proxy:$K8S_VERSION" "$d"
fi
if ! exists "$FLANNEL_IMAGE"; then
  d=$(ctxdir flannel)
  cp "$(bin flannel $FLANNEL_VERSION)/flannel" "$d/flanneld"
  printf 'FROM %s\nCOPY flanneld /opt/bin/flanneld\nENTRYPOINT ["/opt/bin/flanneld"]\n' "$NET_IMAGE" >"$d/Containerfile"
  build "$FLANNEL_IMAGE" "$d"
fi

# The node image: its tag hashes the versions and the files in node/.
node_key=$( (cd "$here" && cat versions.sh && find node -type f | sort | xargs cat && echo "$NODE_ROOTFS") | sha256sum | cut -c1-12)
NODE_IMAGE=localhost/beacon-kind/node:$K8S_VERSION-$node_key
if ! exists "$NODE_IMAGE"; then
  d=$(ctxdir node)
  cp -a "$here/node" "$d/files"
  mkdir -p "$d/files/usr/local/bin" "$d/files/opt/cni/bin" "$d/files/kind/images"
  cp "$k8s"/{kubelet,kubeadm,kubectl} "$(bin containerd $CONTAINERD_VERSION)"/* \
    "$(bin runc $RUNC_VERSION)/runc" "$(bin crictl $CRICTL_VERSION)/crictl" "$d/files/usr/local/bin/"
  cp "$(bin cni-plugins $CNI_PLUGINS_VERSION)"/* "$d/files/opt/cni/bin/"
  rm -f "$d/files/usr/local/bin/.done" "$d/files/opt/cni/bin/.done"
  echo "$K8S_VERSION" >"$d/files/kind/version"
  log "saving ${#cp_images[@]} control plane and CNI images into the node image"
  podman save --quiet --multi-image-archive --format docker-archive -o "$d/files/kind/images/control-plane.tar" "${cp_images[@]}"
  cat >"$d/Containerfile" <<CF
FROM $NODE_ROOTFS
COPY files/ /
RUN systemctl enable containerd.service kubelet.service beacon-kind-images.service && \
    systemctl mask systemd-binfmt.service systemd-udevd.service getty.target && \
    mkdir -p /etc/kubernetes/manifests /etc/cni/net.d && \
    echo ReadKMsg=no >>/etc/systemd/journald.conf
ENV container=podman
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
CF
  build "$NODE_IMAGE" "$d"
fi

echo "NODE_IMAGE=$NODE_IMAGE"
echo "NET_IMAGE=$NET_IMAGE"
echo "FRR_IMAGE=$FRR_IMAGE"
echo "FLANNEL_IMAGE=$FLANNEL_IMAGE"
