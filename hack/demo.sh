#!/usr/bin/env bash
# make demo: builds Beacon, brings up the lab (network namespaces with a real
# API server, three nodes, pods, a client), runs beacon-controller and a
# beacon-speaker per node, and shows a LoadBalancer Service answering on its
# EXTERNAL-IP from client-lan. `make demo-down` (or Ctrl-C) cleans up.
# Its Debian packages are checked (and, as root, installed) first, before
# anything long is built.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  hack/deps.sh || true # names the packages to install, too
  echo "make demo needs root (network namespaces)"
  exit 1
fi
hack/deps.sh
command -v kubectl >/dev/null || { echo "make demo needs kubectl on PATH (https://kubernetes.io/docs/tasks/tools/)"; exit 1; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
lab=bin/beacon-lab
labexec() { "$lab" exec "$@"; }
kc() { labexec host kubectl --kubeconfig /run/beacon-lab/kubeconfig "$@"; }
cleanup() { "$lab" down >/dev/null 2>&1 || true; }
trap 'echo; step "Cleaning up"; cleanup' INT TERM

step "Building Beacon"
"${GO:-go}" build -o bin/ ./cmd/...

step "Building the pinned kube-apiserver and etcd (cached after the first run)"
KUBEBUILDER_ASSETS=$(hack/testbin.sh | tail -n 1)
export KUBEBUILDER_ASSETS

step "Bringing up the lab: API server in beacon-host, node1..3 with pods, client-lan"
"$lab" up --nodes 3 --pods-per-node 1

step "Installing the Helm chart into the lab's API server (release beacon, namespace beacon-system)"
helmdir=/run/beacon-lab/helm
mkdir -p "$helmdir"
helm() {
  ip netns exec beacon-host env HELM_CACHE_HOME="$helmdir/cache" HELM_CONFIG_HOME="$helmdir/config" \
    HELM_DATA_HOME="$helmdir/data" "$KUBEBUILDER_ASSETS/helm" --kubeconfig /run/beacon-lab/kubeconfig "$@"
}
helm upgrade --install beacon charts/beacon --namespace beacon-system --create-namespace \
  --set bgp.enabled=true --set dataplane=full
kc -n beacon-system get deployments,daemonsets,serviceaccounts,validatingadmissionpolicies

# The lab has no kubelet: the chart's Deployment and DaemonSet stay at 0
# pods, so the demo runs the same binaries with the same arguments in the
# lab's namespaces, as the chart's ServiceAccounts (tokens from the API
# server), which proves the chart's RBAC is enough.
step "Running beacon-controller (host) and beacon-speaker (node1..3) as the chart's ServiceAccounts"
sakubeconfig() {
  local f=/run/beacon-lab/demo-$1.kubeconfig
  cp /run/beacon-lab/kubeconfig "$f"
  kubectl --kubeconfig "$f" config set-credentials "$1" --token="$(kc -n beacon-system create token "$1" --duration=24h)" >/dev/null
  kubectl --kubeconfig "$f" config set-context --current --user="$1" >/dev/null
  echo "$f"
}
args() { kc -n beacon-system get "$1" -o jsonpath='{.spec.template.spec.containers[0].args[*]}'; }
keyfile=/run/beacon-lab/demo-member-key
kc -n beacon-system get secret beacon-speaker-memberkey -o jsonpath='{.data.member-key}' | base64 -d >"$keyfile"
chmod 600 "$keyfile"
mkdir -p /run/beacon-lab/logs
# shellcheck disable=SC2046 # the chart's arguments, one word each
ip netns exec beacon-host bin/beacon-controller --kubeconfig "$(sakubeconfig beacon-controller)" \
  --leader-elect-identity demo $(args deployment/beacon-controller) >/run/beacon-lab/logs/demo-controller.log 2>&1 &
spk_kc=$(sakubeconfig beacon-speaker)
spk_args=$(args daemonset/beacon-speaker | sed "s|--member-key-file=[^ ]*|--member-key-file=$keyfile|")
for n in 1 2 3; do
  # shellcheck disable=SC2086
  POD_NAMESPACE=beacon-system ip netns exec beacon-node$n bin/beacon-speaker --kubeconfig "$spk_kc" \
    --node-name node$n $spk_args >/run/beacon-lab/logs/demo-speaker-node$n.log 2>&1 &
done
echo "controller: $(args deployment/beacon-controller)"
echo "speakers:   $spk_args"

step "Creating an IPPool and an L2Advertisement"
kc apply -f - <<'YAML'
apiVersion: beaconlb.io/v1alpha1
kind: IPPool
metadata: {name: lan}
spec:
  addresses: ["198.51.100.200-198.51.100.250", "2001:db8:100::200-2001:db8:100::250"]
---
apiVersion: beaconlb.io/v1alpha1
kind: L2Advertisement
metadata: {name: lan}
spec:
  ipPools: [lan]
YAML

step "A Deployment-like set of pods: the lab's echo pods (one per node) under Deployment echo"
# Without kube-controller-manager the Deployment never makes pods of its
# own; its selector matches the lab's echo pods, so kubectl expose works as
# on a real cluster.
kc apply -f - <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {lab.beaconlb.io/app: echo}}
  template:
    metadata: {labels: {lab.beaconlb.io/app: echo}}
    spec: {containers: [{name: echo, image: beacon-echo, ports: [{containerPort: 5000}]}]}
YAML
kc get pods -l lab.beaconlb.io/app=echo -o wide

step "kubectl expose deployment echo --type=LoadBalancer --port=80 --target-port=5000"
kc expose deployment echo --type=LoadBalancer --port=80 --target-port=5000 \
  --overrides='{"spec":{"ipFamilyPolicy":"PreferDualStack"}}'
ip=""
for _ in $(seq 1 100); do
  ip=$(kc get svc echo -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [ -n "$ip" ] && break
  sleep 0.2
done
[ -n "$ip" ] || { echo "no EXTERNAL-IP: see /run/beacon-lab/logs/demo-controller.log"; exit 1; }

step "kubectl get svc"
kc get svc echo
step "Who announces it: kubectl get serviceannouncements -A"
for _ in $(seq 1 50); do
  [ -n "$(kc get serviceannouncements -A -o name 2>/dev/null)" ] && break
  sleep 0.2
done
kc get serviceannouncements -A

step "From client-lan: arping $ip and curl http://$ip/ (three times)"
labexec client-lan arping -c 1 -w 2 -I eth0 "$ip" | grep 'bytes from' || true
for _ in 1 2 3; do labexec client-lan curl -s --max-time 2 "http://$ip/"; done
v6=$(kc get svc echo -o jsonpath='{.status.loadBalancer.ingress[1].ip}')
if [ -n "$v6" ]; then
  step "And over IPv6: curl http://[$v6]/"
  labexec client-lan curl -s --max-time 2 "http://[$v6]/"
fi

step "The NodePort path: curl http://198.51.100.11:<nodePort>/"
np=$(kc get svc echo -o jsonpath='{.spec.ports[0].nodePort}')
labexec client-lan curl -s --max-time 2 "http://198.51.100.11:$np/"

step "BGP: the nodes peer with the lab's FRR router (AS 64512) and announce the same pool"
kc apply -f - <<'YAML'
apiVersion: beaconlb.io/v1alpha1
kind: BGPPeer
metadata: {name: router}
spec: {myASN: 64513, peerASN: 64512, peerAddress: 198.51.100.1, gracefulRestart: {enabled: true}}
---
apiVersion: beaconlb.io/v1alpha1
kind: BGPPeer
metadata: {name: router6}
spec: {myASN: 64513, peerASN: 64512, peerAddress: "2001:db8:100::1", gracefulRestart: {enabled: true}}
---
apiVersion: beaconlb.io/v1alpha1
kind: BGPAdvertisement
metadata: {name: lan}
spec: {ipPools: [lan], communities: ["64513:100"]}
YAML
for _ in $(seq 1 100); do
  [ "$(kc get bgpsessionstates -o jsonpath='{.items[*].state}' 2>/dev/null | tr ' ' '\n' | grep -c Established)" -ge 6 ] && break
  sleep 0.2
done
kc get bgpsessionstates
for _ in $(seq 1 50); do
  [ "$(labexec router ip route show "$ip" | grep -c nexthop)" -ge 3 ] && break
  sleep 0.2
done
step "The router's route to $ip: one next hop per node (ECMP)"
labexec router ip route show "$ip"
step "From client-ext (behind the router): curl http://$ip/ (three times)"
for _ in 1 2 3; do labexec client-ext curl -s --max-time 2 "http://$ip/"; done

step "Events of the Service"
kc get events --field-selector involvedObject.name=echo -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message

cat <<MSG

Where to look next:
  bin/beacon-lab exec host kubectl --kubeconfig /run/beacon-lab/kubeconfig get ippools.beaconlb.io
  bin/beacon-lab exec client-lan curl http://$ip/
  logs: /run/beacon-lab/logs/
  bin/beacon-lab exec router vtysh -c 'show bgp ipv4 unicast'
  docs: docs/allocation.md, docs/l2.md, docs/bgp.md
The lab stays up; remove everything with: make demo-down
MSG
