#!/usr/bin/env bash
# deps.sh: installs and configures what the offline kind cluster needs, so
# that nothing fails late: Debian packages, podman's configuration (no
# default ulimits, documentation ranges for its networks).
set -euo pipefail
pkgs=(podman runc golang-github-containernetworking-plugin-dnsname dnsmasq-base debootstrap libseccomp-dev gcc libc6-dev iptables conntrack)
# (dnsname: the nodes find each other by container name, as kubeadm join
# needs, through podman's CNI network DNS.)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "kind-deps: installing ${missing[*]}" >&2
  apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends "${missing[@]}" >/dev/null
fi
# kind bind-mounts /lib/modules into every node; this kernel has no
# modules (and no such directory), so give kind an empty one.
[ -d /lib/modules ] || mkdir -p /lib/modules
# podman raises RLIMIT_NOFILE/NPROC by default, which fails in this sandbox
# (no CAP_SYS_RESOURCE); its default network would be 10.88.0.0/16. Its
# default runtime, crun, refuses --cgroupns=private (which kind uses) on
# this hybrid cgroup host ("cgroups in hybrid mode not supported"); runc
# runs it.
conf=/etc/containers/containers.conf.d/beacon-kind.conf
want='[engine]
runtime = "runc"
[containers]
default_ulimits = []
[network]
default_subnet = "198.18.99.0/24"
default_subnet_pools = [{"base" = "198.18.192.0/19", "size" = 24}]'
if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
  mkdir -p "$(dirname "$conf")"; printf '%s\n' "$want" >"$conf"
fi
# The package ships a CNI config for the old default network; podman
# rewrites it from default_subnet once it is gone.
old=/etc/cni/net.d/87-podman-bridge.conflist
if [ -f "$old" ] && grep -q '"10\.88\.' "$old"; then rm -f "$old"; fi
podman network inspect podman --format '{{range .Subnets}}{{.Subnet}} {{end}}' | grep -q '^198\.18\.99\.0/24' ||
  { echo "kind-deps: podman's default network is not 198.18.99.0/24" >&2; exit 1; }
