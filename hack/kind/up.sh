#!/usr/bin/env bash
# up.sh (make kind-up): a kind cluster built offline, with Beacon installed
# by helm, an FRR router on the nodes' LAN and a client behind it. Ends with
# KEY=value lines (also written to $KIND_CACHE/cluster/env for make
# e2e-kind). Starts from a clean slate: an earlier cluster is removed first.
#   KUBE_PROXY_MODE=iptables|nftables|none   kube-proxy's mode (default
#     iptables); none: no kube-proxy, Beacon with dataplane: full serves
#     ClusterIP and NodePort too, and flannel and Beacon reach the API
#     server by its own address (nothing serves the kubernetes Service
#     before the speakers do)
#   KIND_IP_FAMILY=ipv4|dual   the cluster's IP families (default ipv4);
#     dual: the LAN, pods and Services get IPv6 addresses too (net.sh),
#     and the L2 pool an IPv6 range
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/versions.sh"
. "$here/net.sh"
KUBE_PROXY_MODE=${KUBE_PROXY_MODE:-iptables}
case $KUBE_PROXY_MODE in
  iptables | nftables) DATAPLANE=external ;;
  none) DATAPLANE=full ;;
  *) echo "kind-up: KUBE_PROXY_MODE=$KUBE_PROXY_MODE: want iptables, nftables or none" >&2; exit 2 ;;
esac
KIND_IP_FAMILY=${KIND_IP_FAMILY:-ipv4}
# What differs by family: the networks' IPv6 subnets, kind's subnets,
# flannel's net-conf.json, the pools' addresses and the router's and
# client's IPv6 addresses, routes and BGP sessions.
case $KIND_IP_FAMILY in
  ipv4)
    LAN_NET6=() EXT_NET6=() POD_SUBNETS=$POD_CIDR SERVICE_SUBNETS=$SERVICE_CIDR FLANNEL_IPV6=""
    LAN_POOLS="\"$LAN_POOL\"" BGP_POOLS="\"$BGP_POOL\""
    ROUTER_LAN=ip=$ROUTER_IP ROUTER_EXT=ip=$EXT_ROUTER_IP CLIENT_EXT=ip=$CLIENT_IP
    ROUTER_SYSCTL=() CLIENT_SYSCTL=() CLIENT_ROUTE6="" ;;
  dual)
    LAN_NET6=(--ipv6 --subnet "$LAN_CIDR6" --gateway "$LAN_GW6") EXT_NET6=(--ipv6 --subnet "$EXT_CIDR6")
    POD_SUBNETS=$POD_CIDR,$POD_CIDR6 SERVICE_SUBNETS=$SERVICE_CIDR,$SERVICE_CIDR6
    FLANNEL_IPV6="\"EnableIPv6\": true, \"IPv6Network\": \"$POD_CIDR6\", "
    LAN_POOLS="\"$LAN_POOL\", \"$LAN_POOL6\"" BGP_POOLS="\"$BGP_POOL\", \"$BGP_POOL6\""
    ROUTER_LAN=ip=$ROUTER_IP,ip=$ROUTER_IP6 ROUTER_EXT=ip=$EXT_ROUTER_IP,ip=$EXT_ROUTER_IP6
    CLIENT_EXT=ip=$CLIENT_IP,ip=$CLIENT_IP6
    CLIENT_SYSCTL=(--sysctl net.ipv6.conf.all.disable_ipv6=0)
    ROUTER_SYSCTL=("${CLIENT_SYSCTL[@]}" --sysctl net.ipv6.conf.all.forwarding=1)
    CLIENT_ROUTE6=" && ip -6 route replace default via $EXT_ROUTER_IP6" ;;
  *) echo "kind-up: KIND_IP_FAMILY=$KIND_IP_FAMILY: want ipv4 or dual" >&2; exit 2 ;;
esac
# The router hashes each flow's header 5-tuple onto its ECMP next hops, as
# a hardware router does: policy 1 would take the hash the client's socket
# gave the packet, which TCP changes on a retransmission (the flow then
# moves to another node), and which ip route get cannot predict.
ECMP_SYSCTL=()
for f in ipv4 ipv6; do
  ECMP_SYSCTL+=(--sysctl "net.$f.fib_multipath_hash_policy=3" --sysctl "net.$f.fib_multipath_hash_fields=0x0037")
done
IMAGE=${IMAGE:-localhost/beacon:kind}
ECHO_IMAGE=${ECHO_IMAGE:-localhost/beacon-echo:kind}
API_HOST="" API_PORT=6443
UPGRADE_IMAGE=${IMAGE%:*}:kind-upgrade
export KIND_EXPERIMENTAL_PROVIDER=podman KIND_EXPERIMENTAL_PODMAN_NETWORK=$LAN_NET

t0=$(date +%s)
timings=()
stage() {
  local name=$1 s; shift; s=$(date +%s)
  echo "kind-up: $name" >&2
  "$@"
  timings+=("$name=$(( $(date +%s) - s ))s")
  echo "kind-up: $name took $(( $(date +%s) - s ))s" >&2
}

deps() { "$here/deps.sh"; }

images() {
  local out; out=$("$here/images.sh")
  eval "$out"
  HELM=$(cd "$repo" && hack/testbin.sh | tail -n 1)/helm
  KIND=$KIND_CACHE/bin/kind-$KIND_VERSION/kind
  KUBECTL=$KIND_CACHE/bin/kubernetes-$K8S_VERSION/kubectl
}

beacon_images() {
  make -C "$repo" --no-print-directory image IMAGE_OFFLINE=1 IMAGE_TOOL=podman IMAGE="$IMAGE" >/dev/null
  local d=$KIND_CACHE/ctx/echo; rm -rf "$d"; mkdir -p "$d"
  (cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$d/" ./cmd/beacon-echo)
  printf 'FROM localhost/beacon/static-base:1\nCOPY beacon-echo /beacon-echo\nUSER 65532:65532\nENTRYPOINT ["/beacon-echo"]\n' >"$d/Containerfile"
  podman build --quiet --pull=never --network=none -t "$ECHO_IMAGE" "$d" >/dev/null
}

cluster() {
  KIND_DOWN_IMAGES=0 "$here/down.sh" >/dev/null 2>&1 || true
  mkdir -p "$STATE"
  # down.sh removed them; a stale reservation there would refuse a fixed
  # address (the router's, the client's, a test's) on the new networks.
  rm -rf "/var/lib/cni/networks/$LAN_NET" "/var/lib/cni/networks/$EXT_NET"
  podman network create --subnet "$LAN_CIDR" --gateway "$LAN_GW" "${LAN_NET6[@]}" "$LAN_NET" >/dev/null
  podman network create --internal --subnet "$EXT_CIDR" "${EXT_NET6[@]}" "$EXT_NET" >/dev/null
  cat >"$STATE/kind.yaml" <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: $CLUSTER
networking:
  ipFamily: $KIND_IP_FAMILY
  disableDefaultCNI: true
  podSubnet: $POD_SUBNETS
  serviceSubnet: $SERVICE_SUBNETS
  kubeProxyMode: $KUBE_PROXY_MODE
nodes:
- role: control-plane
- role: worker
- role: worker
- role: worker
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
- |
  kind: ClusterConfiguration
  etcd:
    local:
      imageTag: ${ETCD_VERSION#v}-0
YAML
  "$KIND" create cluster --config "$STATE/kind.yaml" --image "$NODE_IMAGE" \
    --kubeconfig "$STATE/kubeconfig" --wait 0s
}

k() { "$KUBECTL" --kubeconfig "$STATE/kubeconfig" "$@"; }

cni() {
  # Replies to the client network go back through the router, as on a LAN
  # whose nodes know the site's routes.
  local n
  for n in $("$KIND" get nodes --name "$CLUSTER"); do
    podman exec "$n" ip route replace "$EXT_CIDR" via "$ROUTER_IP"
    [ "$KIND_IP_FAMILY" = ipv4 ] || podman exec "$n" ip -6 route replace "$EXT_CIDR6" via "$ROUTER_IP6"
  done
  local api=()
  if [ "$KUBE_PROXY_MODE" = none ]; then
    API_HOST=$(k get nodes -l node-role.kubernetes.io/control-plane \
      -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')
    [ -n "$API_HOST" ] || { echo "kind-up: no InternalIP of the control plane" >&2; return 1; }
    api=(-e "s|^\( *\)# @API_ENV@.*|\1- {name: KUBERNETES_SERVICE_HOST, value: \"$API_HOST\"}\n\1- {name: KUBERNETES_SERVICE_PORT, value: \"$API_PORT\"}|")
  fi
  sed -e "s|@IMAGE@|$FLANNEL_IMAGE|g" -e "s|@POD_CIDR@|$POD_CIDR|g" -e "s|@IPV6@|$FLANNEL_IPV6|" "${api[@]}" "$here/manifests/flannel.yaml" | k apply -f - >/dev/null
  k wait --for=condition=Ready nodes --all --timeout=300s >/dev/null
}

router() {
  local d=$STATE/frr ip neighbors="" af6=""; mkdir -p "$d"
  # The speakers run on the workers (the chart leaves control planes out).
  # A dual-stack node has an IPv4 and an IPv6 InternalIP: IPv6 ones go to
  # a peer group of their own, for the IPv6 routes.
  for ip in $(k get nodes -l '!node-role.kubernetes.io/control-plane' \
    -o jsonpath='{range .items[*]}{range .status.addresses[?(@.type=="InternalIP")]}{.address}{"\n"}{end}{end}'); do
    case $ip in
      *:*) neighbors+=" neighbor $ip peer-group nodes6\n" ;;
      *) neighbors+=" neighbor $ip peer-group nodes\n" ;;
    esac
  done
  if [ "$KIND_IP_FAMILY" = dual ]; then
    neighbors=" neighbor nodes6 peer-group\n neighbor nodes6 remote-as $NODE_ASN\n neighbor nodes6 bfd\n neighbor nodes6 bfd profile beacon\n$neighbors"
    af6=" address-family ipv6 unicast\n  neighbor nodes6 activate\n  neighbor nodes6 route-map nodes-in in\n  maximum-paths 16\n exit-address-family"
  fi
  sed -e "s|@ROUTER_ASN@|$ROUTER_ASN|g" -e "s|@NODE_ASN@|$NODE_ASN|g" -e "s|@ROUTER_IP@|$ROUTER_IP|g" \
    -e "s|@NEIGHBORS@|${neighbors%\\n}|" -e "s|@IPV6_AF@|$af6|" "$here/frr/frr.conf" >"$d/frr.conf"
  cp "$here/frr/daemons" "$here/frr/vtysh.conf" "$d/"
  chmod 0644 "$d"/*
  podman run -d --name "$ROUTER" --hostname "$ROUTER" --privileged \
    --network "$LAN_NET:$ROUTER_LAN" --network "$EXT_NET:$ROUTER_EXT" \
    --sysctl net.ipv4.ip_forward=1 "${ECMP_SYSCTL[@]}" "${ROUTER_SYSCTL[@]}" \
    -v "$d:/etc/frr" "$FRR_IMAGE" \
    sh -c '/usr/lib/frr/frrinit.sh start && exec sleep infinity' >/dev/null
  podman run -d --name "$CLIENT" --hostname "$CLIENT" --cap-add NET_ADMIN \
    --network "$EXT_NET:$CLIENT_EXT" "${CLIENT_SYSCTL[@]}" "$FRR_IMAGE" \
    sh -c "ip route replace default via $EXT_ROUTER_IP$CLIENT_ROUTE6 && exec sleep infinity" >/dev/null
}

beacon() {
  local tar=$STATE/beacon-images.tar
  # The same build under a second tag: what make e2e-kind's helm upgrade
  # rolls to (and back from).
  podman tag "$IMAGE" "$UPGRADE_IMAGE"
  podman save --quiet --multi-image-archive --format docker-archive -o "$tar" "$IMAGE" "$UPGRADE_IMAGE" "$ECHO_IMAGE"
  "$KIND" load image-archive --name "$CLUSTER" "$tar" >/dev/null
  rm -f "$tar"
  k create namespace beacon-system >/dev/null
  k label namespace beacon-system pod-security.kubernetes.io/enforce=privileged >/dev/null
  local api=()
  # Without kube-proxy the speakers serve every node's Services, the
  # control plane's too (it announces nothing: kubeadm labels it
  # node.kubernetes.io/exclude-from-external-load-balancers).
  [ -z "$API_HOST" ] || api=(--set kubernetes.apiServer.host="$API_HOST" --set kubernetes.apiServer.port="$API_PORT"
    --set speaker.tolerateControlPlane=true)
  "$HELM" --kubeconfig "$STATE/kubeconfig" install beacon "$repo/charts/beacon" --namespace beacon-system \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
    --set bgp.enabled=true --set 'speaker.extraArgs={--drain-delay=10s}' --set dataplane="$DATAPLANE" \
    "${api[@]}" \
    --wait --timeout 5m >/dev/null
  if [ "$KUBE_PROXY_MODE" = none ]; then
    # CoreDNS reaches the API server through the kubernetes Service, which
    # only the speakers serve here.
    k -n kube-system rollout status deployment/coredns --timeout=300s >/dev/null
  fi
  sed -e "s|@LAN_POOLS@|$LAN_POOLS|g" -e "s|@BGP_POOLS@|$BGP_POOLS|g" -e "s|@ROUTER_IP@|$ROUTER_IP|g" \
    -e "s|@ROUTER_ASN@|$ROUTER_ASN|g" -e "s|@NODE_ASN@|$NODE_ASN|g" "$here/manifests/beacon-config.yaml" | k apply -f - >/dev/null
  if [ "$KIND_IP_FAMILY" = dual ]; then
    sed -e "s|@ROUTER_IP6@|$ROUTER_IP6|g" -e "s|@ROUTER_ASN@|$ROUTER_ASN|g" -e "s|@NODE_ASN@|$NODE_ASN|g" \
      "$here/manifests/beacon-config-ipv6.yaml" | k apply -f - >/dev/null
  fi
}

stage deps deps
stage images images
stage beacon-images beacon_images
stage cluster cluster
stage cni cni
stage router router
stage beacon beacon

cat >"$STATE/env" <<ENV
KUBECONFIG=$STATE/kubeconfig
ENGINE=podman
CLUSTER=$CLUSTER
ROUTER=$ROUTER
ROUTER_IP=$ROUTER_IP
ROUTER_ASN=$ROUTER_ASN
NODE_ASN=$NODE_ASN
LAN_NET=$LAN_NET
LAN_CIDR=$LAN_CIDR
LAN_POOL=$LAN_POOL
LAN2_NET=$LAN2_NET
LAN2_CIDR=$LAN2_CIDR
LAN2_GW=$LAN2_GW
LAN2_POOL=$LAN2_POOL
BGP_POOL=$BGP_POOL
CLIENT=$CLIENT
CLIENT_IP=$CLIENT_IP
IMAGE=$IMAGE
UPGRADE_IMAGE=$UPGRADE_IMAGE
ECHO_IMAGE=$ECHO_IMAGE
KUBE_PROXY_MODE=$KUBE_PROXY_MODE
DATAPLANE=$DATAPLANE
IP_FAMILY=$KIND_IP_FAMILY
KUBECTL=$KUBECTL
HELM=$HELM
ENV
if [ "$KIND_IP_FAMILY" = dual ]; then
  printf '%s\n' "LAN_CIDR6=$LAN_CIDR6" "LAN_POOL6=$LAN_POOL6" "ROUTER_IP6=$ROUTER_IP6" \
    "BGP_POOL6=$BGP_POOL6" "CLIENT_IP6=$CLIENT_IP6" >>"$STATE/env"
fi
echo "kind-up: ready in $(( $(date +%s) - t0 ))s (${timings[*]})" >&2
cat "$STATE/env"
