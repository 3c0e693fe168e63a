#!/usr/bin/env bash
# hack/deps.sh: the Debian packages that the lab, `make demo`, `make test`
# and CI drive for real, checked before anything long starts. As root it
# installs what is missing; otherwise it stops at once and prints the one
# command that would. Exit status: 0 when everything is installed.
set -euo pipefail

# The one list. frr: the lab's router (zebra, bgpd, bfdd); nftables,
# conntrack: the dataplane and its tests; iproute2, kmod: the lab's
# namespaces and links; arping, ndisc6, tcpdump, curl: L2 and traffic checks;
# jq: scripts; prometheus: only for promtool, which tests the chart's alerts.
pkgs=(frr nftables iproute2 arping ndisc6 curl tcpdump conntrack jq kmod prometheus)
# `deps.sh kind` checks the kind cluster's packages instead: podman and runc
# (the engine), dnsname and dnsmasq-base (nodes find each other by name, as
# kubeadm join needs), debootstrap (root filesystems), libseccomp-dev, gcc,
# libc6-dev (runc and the pause binary are built with cgo), iptables and
# conntrack (the node image's userland).
if [ "${1:-}" = kind ]; then
  pkgs=(podman runc golang-github-containernetworking-plugin-dnsname dnsmasq-base debootstrap libseccomp-dev gcc libc6-dev iptables conntrack)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]}; install them as root with:" >&2
  echo "apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=900 update -qq
apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Only promtool is wanted from the prometheus package, not its server; the
# lab runs its own FRR daemons, the host needs none.
if command -v systemctl >/dev/null; then
  for svc in prometheus frr; do
    if [[ " ${missing[*]} " == *" $svc "* ]]; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi
