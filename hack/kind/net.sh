# shellcheck shell=bash disable=SC2034
# Address plan of the kind cluster (sourced). Documentation and benchmarking
# ranges only, and none that the netns lab uses (198.51.100.0/24,
# 203.0.113.0/24, 198.18.0.0/24-198.18.9.0/24, 198.18.254.0/24,
# 198.19.0.0/16), so both can exist on one machine.
#   198.18.99.0/24    podman's default network (containers.conf)
#   198.18.100.0/24   the nodes' LAN (podman network beacon-kind): host .1
#                     (the bridge), nodes from .2, router .254
#   198.18.100.200-250  L2 pool (on the LAN)
#   198.18.101.0/24   router <-> client network (beacon-kind-ext): router
#                     .254, client .100; nothing of the host on it
#   198.18.102.0/24   a second LAN that the link-aware test makes and
#                     plugs into the workers (podman network
#                     beacon-kind-lan2): host .1, workers from .2, pool
#                     .200-.209
#   198.18.110.0/24   BGP pool (routed, only via the router)
#   198.18.128.0/18   pod CIDR (a /24 per node)
#   198.18.32.0/20    Service CIDR
#   198.18.192.0/19   podman's pool for other networks (containers.conf)
# KIND_IP_FAMILY=dual adds IPv6 from 2001:db8:cafe::/48 (the netns lab
# uses other parts of 2001:db8::/32):
#   2001:db8:cafe:100::/64   the nodes' LAN: host ::1 (the bridge), nodes
#                            from ::2; L2 pool ::200-::250
#   2001:db8:cafe:101::/64   router <-> client: router ::254, client ::100
#   2001:db8:cafe:110::/120  BGP pool
#   2001:db8:cafe:4000::/56  pod CIDR (a /64 per node)
#   2001:db8:cafe:32::/112   Service CIDR
CLUSTER=beacon
LAN_NET=beacon-kind
LAN_CIDR=198.18.100.0/24
LAN_GW=198.18.100.1
LAN_POOL=198.18.100.200-198.18.100.250
ROUTER_IP=198.18.100.254
EXT_NET=beacon-kind-ext
LAN2_NET=beacon-kind-lan2
LAN2_CIDR=198.18.102.0/24
LAN2_GW=198.18.102.1
LAN2_POOL=198.18.102.200-198.18.102.209
EXT_CIDR=198.18.101.0/24
EXT_ROUTER_IP=198.18.101.254
CLIENT_IP=198.18.101.100
BGP_POOL=198.18.110.0/24
POD_CIDR=198.18.128.0/18
SERVICE_CIDR=198.18.32.0/20
LAN_CIDR6=2001:db8:cafe:100::/64
LAN_GW6=2001:db8:cafe:100::1
LAN_POOL6=2001:db8:cafe:100::200-2001:db8:cafe:100::250
ROUTER_IP6=2001:db8:cafe:100::254
EXT_CIDR6=2001:db8:cafe:101::/64
EXT_ROUTER_IP6=2001:db8:cafe:101::254
CLIENT_IP6=2001:db8:cafe:101::100
BGP_POOL6=2001:db8:cafe:110::/120
POD_CIDR6=2001:db8:cafe:4000::/56
SERVICE_CIDR6=2001:db8:cafe:32::/112
ROUTER_ASN=64512
NODE_ASN=64513
ROUTER=beacon-kind-router
CLIENT=beacon-kind-client
STATE=$KIND_CACHE/cluster
