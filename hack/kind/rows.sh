#!/usr/bin/env bash
# rows.sh MODE... (make e2e-kind KIND_ROWS="iptables none"): runs the kind
# tests once per row of the kube-proxy matrix, each on a cluster made
# afresh by kind-up with KUBE_PROXY_MODE=MODE (none: Beacon with
# dataplane: full instead of kube-proxy). KIND_ROW_TESTS picks each row's
# tests: all (the default), or matrix, the checks every kube-proxy mode must
# pass (chart, L2, BGP, the three Service types with CoreDNS,
# externalTrafficPolicy: Local, source ranges with the single-translation
# trace, drain, uninstall). The last row's
# cluster stays up, as after make kind-up. Prints each row's times and
# result; fails if any row failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
GO=${GO:-go}
case ${KIND_ROW_TESTS:-all} in
  all) run=. ;;
  matrix) run='^(TestChartPods|TestL2|TestBGP|TestServiceTypes|TestLocalPolicy|TestSourceRanges|TestDrain|TestUninstall)$' ;;
  *) echo "kind rows: KIND_ROW_TESTS is all or matrix, not $KIND_ROW_TESTS" >&2; exit 2 ;;
esac
summary=() rc=0
for mode in "$@"; do
  t0=$(date +%s)
  if ! KUBE_PROXY_MODE=$mode "$here/up.sh" >/dev/null; then
    summary+=("row $mode: kind-up failed after $(( $(date +%s) - t0 ))s")
    rc=1
    continue
  fi
  t1=$(date +%s)
  echo "kind rows: row $mode: cluster up in $(( t1 - t0 ))s; tests" >&2
  (cd "$repo" && "$GO" test -count=1 -timeout 30m -v -run "$run" ./test/kind/)
  trc=$?
  t2=$(date +%s)
  result=passed
  [ "$trc" = 0 ] || { result="failed (go test exit $trc)"; rc=1; }
  summary+=("row $mode: kind-up $(( t1 - t0 ))s, tests $(( t2 - t1 ))s: $result")
done
printf 'kind rows: %s\n' "${summary[@]}" >&2
exit "$rc"
