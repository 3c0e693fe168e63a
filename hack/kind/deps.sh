#!/usr/bin/env bash
# deps.sh: installs and configures what the offline kind cluster needs, so
# that nothing fails late: Debian packages, podman's configuration (no
# default ulimits, documentation ranges for its networks).
set -euo pipefail
# The Debian packages: checked, and installed as root, by the one script
# that does it for the lab and CI too.
"$(dirname "$0")/../deps.sh" kind
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
