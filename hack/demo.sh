#!/usr/bin/env bash
# make demo: builds Beacon, brings up the lab (network namespaces with a real
# API server, three nodes, pods, a client), runs beacon-controller and a
# beacon-speaker per node, and shows a LoadBalancer Service answering on its
# EXTERNAL-IP from client-lan. `make demo-down` (or Ctrl-C) cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
lab=bin/beacon-lab
labexec() { "$lab" exec "$@"; }
kc() { labexec host kubectl --kubeconfig /run/beacon-lab/kubeconfig "$@"; }
cleanup() { "$lab" down >/dev/null 2>&1 || true; }
trap 'echo; step "Cleaning up"; cleanup' INT TERM

step "Building the pinned kube-apiserver and etcd (cached after the first run)"
KUBEBUILDER_ASSETS=$(hack/testbin.sh | tail -n 1)
export KUBEBUILDER_ASSETS

step "Bringing up the lab: API server in beacon-host, node1..3 with pods, client-lan"
"$lab" up --nodes 3 --pods-per-node 1

step "Starting beacon-controller (host) and beacon-speaker on every node (L2 + nftables dataplane)"
mkdir -p /run/beacon-lab/logs
ip netns exec beacon-host bin/beacon-controller --kubeconfig /run/beacon-lab/kubeconfig \
  --leader-elect-namespace default >/run/beacon-lab/logs/demo-controller.log 2>&1 &
for n in 1 2 3; do
  ip netns exec beacon-node$n bin/beacon-speaker --kubeconfig /run/beacon-lab/kubeconfig \
    --node-name node$n --dataplane=full >/run/beacon-lab/logs/demo-speaker-node$n.log 2>&1 &
done

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

step "Exposing the echo pods as a LoadBalancer Service (port 80 -> 5000)"
kc apply -f - <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  type: LoadBalancer
  ipFamilyPolicy: PreferDualStack
  selector: {lab.beaconlb.io/app: echo}
  ports: [{name: http, port: 80, targetPort: 5000}]
YAML
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
  bin/beacon-lab exec host kubectl --kubeconfig /run/beacon-lab/kubeconfig get ippools
  bin/beacon-lab exec client-lan curl http://$ip/
  logs: /run/beacon-lab/logs/
  bin/beacon-lab exec router vtysh -c 'show bgp ipv4 unicast'
  docs: docs/allocation.md, docs/l2.md, docs/bgp.md
The lab stays up; remove everything with: make demo-down
MSG
