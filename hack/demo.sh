#!/usr/bin/env bash
# make demo: a real API server, beacon-controller, an IPPool and a
# LoadBalancer Service that gets its EXTERNAL-IP. Ctrl-C (or the end) cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
work=$(mktemp -d /tmp/beacon-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

step "Building the pinned kube-apiserver and etcd (cached after the first run)"
assets=$(hack/testbin.sh | tail -n 1)
export KUBEBUILDER_ASSETS=$assets

step "Starting etcd + kube-apiserver"
go build -o "$work/apiserver" ./hack/apiserver
"$work/apiserver" -write-kubeconfig "$work/kubeconfig" >"$work/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  grep -q '^ready' "$work/apiserver.log" && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/apiserver.log"; exit 1; }
  sleep 0.5
done
grep -q '^ready' "$work/apiserver.log" || { echo "API server did not start"; exit 1; }
export KUBECONFIG=$work/kubeconfig
echo "kube-apiserver $(kubectl get --raw /version | sed -n 's/.*"gitVersion": "\([^"]*\)".*/\1/p')"

step "Starting beacon-controller"
bin/beacon-controller --kubeconfig "$KUBECONFIG" --leader-elect-namespace default \
  --metrics-addr 127.0.0.1:19471 --health-addr 127.0.0.1:19472 >"$work/controller.log" 2>&1 &
pids+=($!)

step "Creating an IPPool (examples/ippool.yaml)"
kubectl apply -f examples/ippool.yaml

step "Exposing a LoadBalancer Service"
kubectl create deployment web --image=example.invalid/echo --port=5000 >/dev/null
kubectl expose deployment web --type=LoadBalancer --port=80 --target-port=5000
for _ in $(seq 1 100); do
  ip=$(kubectl get svc web -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  [ -n "$ip" ] && break
  sleep 0.1
done

step "kubectl get svc"
kubectl get svc web
step "kubectl get ippools"
kubectl get ippools
step "Events of the Service"
kubectl get events --field-selector involvedObject.name=web -o custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message
step "Metrics (excerpt)"
curl -s 127.0.0.1:19471/metrics | grep '^beacon_pool' || true

cat <<MSG

The Service got its EXTERNAL-IP from the pool. Nothing announces it on a
network yet in this demo: the lab (network namespaces, speakers, FRR) is
where that happens. Logs: $work/controller.log (removed on exit).
MSG
if [ -t 0 ] && [ -z "${CI:-}" ]; then
  read -r -p "Press Enter to stop and clean up... " _ || true
fi
