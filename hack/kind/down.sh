#!/usr/bin/env bash
# down.sh (make kind-down): removes every container, network, image and
# file kind-up made. The build caches (binaries, rootfs tarballs) stay in
# $KIND_CACHE; KIND_DOWN_IMAGES=0 keeps the images too (faster next up).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
. "$here/net.sh"
export KIND_EXPERIMENTAL_PROVIDER=podman
kind=$KIND_CACHE/bin/kind-$KIND_VERSION/kind
if [ -x "$kind" ]; then "$kind" delete cluster --name "$CLUSTER" >/dev/null 2>&1; fi
# Whatever kind did not remove (a half-made cluster), by kind's label.
for c in $(podman ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER") "$ROUTER" "$CLIENT"; do
  podman rm -f -t 0 "$c" >/dev/null 2>&1
done
for v in $(podman volume ls -q --filter "label=io.x-k8s.kind.cluster=$CLUSTER"); do
  podman volume rm -f "$v" >/dev/null 2>&1
done
for n in "$LAN2_NET" "$EXT_NET" "$LAN_NET"; do podman network rm -f "$n" >/dev/null 2>&1; done
# The CNI host-local IPAM's reservations of those networks: a container that
# went away without a CNI DEL leaves its file, which survives the network's
# removal and refuses that address to the next container asking for it.
rm -rf "/var/lib/cni/networks/$LAN_NET" "/var/lib/cni/networks/$EXT_NET" "/var/lib/cni/networks/$LAN2_NET"
if [ "${KIND_DOWN_IMAGES:-1}" = 1 ]; then
  podman images --format '{{.Repository}}:{{.Tag}}' |
    grep -E '^(localhost/beacon-kind/|localhost/beacon(-echo)?:kind(-upgrade)?$|localhost/beacon/static-base:|registry\.k8s\.io/)' |
    xargs -r podman rmi -f >/dev/null 2>&1
  # Earlier builds of the same tags, left untagged by rebuilds.
  podman image prune -f >/dev/null 2>&1
fi
rm -rf "$STATE" "$KIND_CACHE/ctx"
left=$(podman ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER")
[ -z "$left" ] || { echo "kind-down: containers left: $left" >&2; exit 1; }
echo "kind-down: done" >&2
