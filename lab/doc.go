// Package lab builds a small bare-metal site out of Linux network
// namespaces, as root, for `make demo` and the e2e tests: a fast test bed
// with a real API server, kernel and FRR, but no kubelet, CNI or images.
//
// # Topology
//
// Every namespace name starts with Prefix ("beacon-"); the lab owns exactly
// the names IsLabName accepts (those below, and beacon-lab-* for later
// parts), so DownAll finds leftovers without touching other tests'
// beacon-t-* namespaces.
//
//	beacon-lan         the switch: bridge br0 (no address, no IPv6, multicast
//	                   snooping off) with one port per station, named after it
//	beacon-host        198.51.100.2    etcd, kube-apiserver (:6443), later the controller
//	beacon-router      198.51.100.1    FRR (zebra, bgpd, bfdd): BGP with every node
//	                   198.18.254.1    on its link "client-ext" to client-ext
//	beacon-client-lan  198.51.100.100  a client on the node LAN
//	beacon-client-ext  198.18.254.2    a client behind the router (default route via it)
//	beacon-nodeN       198.51.100.1N   forwards; routes to its pods
//	beacon-nN-pP       198.18.N.(P+1)  a pod: runs beacon-echo on port 5000
//
// With Config.HeartbeatNetwork every node also has eth1 (198.18.253.1N/24,
// MAC 02:bc:00:00:fd:<host>) on a second switch, beacon-lab-hb, and that
// address is its first InternalIP: speakers' heartbeats use it, so pulling a
// node's LAN cable (SetCable) leaves its speaker alive for its peers.
//
// IPv6 mirrors IPv4 (2001:db8:100::1N on the LAN, 2001:db8:18:N::(P+1) for
// pods). DAD is off (sysctls and IFA_F_NODAD), so IPv6 works at once. Each
// station's eth0 has a stable, locally administered MAC: 02:bc:00:00:00:<LAN
// host number>; pods get 02:bc:18:<node>:00:<pod>. Plan computes all of it,
// without IO.
//
// # The router and client-ext
//
// client-ext reaches the site only through the router, like a client on
// the internet: its link to the router is ExternalV4CIDR (198.18.254.0/24)
// and 2001:db8:192::/64 (see ExternalV4CIDR for why). Every other LAN station routes the external range via
// the router, so replies (e.g. from an externalTrafficPolicy: Local
// endpoint, which sees client-ext's real address) go back through it.
//
// The router runs Debian's FRR daemons from FRRBinDir as tracked processes
// (frr-zebra, frr-bgpd, frr-bfdd; logs in logs/), each with its own
// configuration, pid file, vty socket directory, zserv and bfdd sockets
// under FRRDir (/run/beacon-lab/frr), so nothing is shared with a system
// FRR or /etc/frr. Up starts zebra first (bgpd and bfdd retry a missing
// zserv socket only after seconds), then polls vtysh until bgpd has every
// node as a neighbour and bgpd and bfdd are zebra clients: about half a
// second. The configuration (frrConfigs; testdata/frr/*.conf shows it) is:
// router bgp RouterASN (64512), router-id 198.51.100.1, graceful restart,
// no ebgp-requires-policy, as-path multipath-relax, maximum-paths MaxPaths
// (16) for IPv4 and IPv6 unicast; peer groups nodes-v4 (every node's IPv4
// LAN address, IPv4 unicast) and nodes-v6 (IPv6 addresses, IPv6 unicast),
// remote-as NodeASN (64513), BFD profile BFDProfileName (300 ms × 3 unless
// Config.Router.BFD says otherwise), optional TCP MD5 passwords per node
// (Config.Router.Passwords). The router prefers the nodes' global IPv6 next
// hops (so FIB next hops are node addresses) and announces nothing to the
// nodes. The router's FRR dials the nodes too (port 179, refused while no
// speaker listens) and accepts their connections.
//
// zebra installs bgpd's ECMP sets into the router's kernel FIB (as nexthop
// groups; netlink route dumps still list every next hop). The router hashes
// flows by the 5-tuple of their headers (fib_multipath_hash_policy=3 with
// the address, protocol and port fields), so connections from client-ext
// to one address spread over the nodes and each stays on one. It has no static route
// into the BGP pools 203.0.113.0/24 and 2001:db8:203::/120: those come only
// from BGP.
//
// Lab.Router() drives and reads the router (vtysh, neighbours, BFD peers,
// paths, the kernel FIB); from a shell, beacon-lab exec router vtysh works
// with the lab's sockets.
//
// Pods are wired like a flat routed CNI: the pod has its /32 and /128 on
// eth0, a link route to the node's gateway address (.1 and ::1 of the node's
// pod CIDR, put on every pod veth of the node) and a default route through
// it; the node has a host route per pod. Every LAN station (nodes, host,
// router, client-lan) routes each other node's pod CIDR via that node's LAN
// address, so anything on the LAN reaches any pod and pods see the real
// client address.
//
// # Design decisions
//
// The bridge lives in its own namespace (beacon-lan), not in host: host is
// then an ordinary LAN station with its own MAC whose ARP/NDP and netfilter
// behave like any other station's, and `beacon-lab exec lan tcpdump -i br0`
// sees all LAN traffic. Multicast snooping is off so that NDP for
// addresses announced by speakers is flooded like on a dumb switch.
//
// Nothing is added to the root namespace: no link, address or route. Tests
// and tools run *inside* the lab instead:
//   - Go code calls InNetns(ns, fn), which runs fn on a locked OS thread
//     switched into the namespace; sockets opened there stay in it.
//     Dialer(ns) (and Lab.HTTPClient) wrap this for net/http, and
//     Lab.RESTConfig dials the API server from inside beacon-host, so a
//     test in the root namespace uses client-go normally.
//   - Commands run with Exec/StartIn (setns on a locked thread, then
//     fork/exec: the child inherits the namespace; unlike `ip netns exec`,
//     /sys is not remounted) or with StartProcess for long-running tracked
//     processes (speakers in nodeN, the controller in host, FRR in router).
//   - Lab.Kubeconfig points at https://198.51.100.2:6443, reachable from every
//     LAN namespace, for those processes.
//
// The API server is kube-apiserver and etcd from KUBEBUILDER_ASSETS
// (hack/testbin.sh), started by the lab in beacon-host with a self-made CA,
// serving certificate, service-account key and a static admin token
// (system:masters); service CIDRs 198.19.0.0/16 and 2001:db8:19::/112. The
// CRDs of charts/beacon/crds are installed. There is no kubelet, scheduler
// or kube-controller-manager: the lab writes Node objects (InternalIPs,
// pod CIDRs, Ready), Pod objects (labels app=<pod>, LabelApp=echo,
// LabelNode=<node>; container ports http=5000/TCP and udp=5000/UDP; status
// with pod IPs and Ready) and, with RunEndpointWriter, the EndpointSlices of
// every Service with a selector (DesiredEndpointSlices: dual-stack, named
// targetPorts, ready/serving/terminating as upstream). Methods on Lab change
// pods, nodes, echo servers and cables to drive failover scenarios.
//
// # Ownership, crashes and cleanup
//
// There is one lab per machine (namespace names are global). Its owner holds
// an flock on LockPath: a test process between Up and Down, or the
// `beacon-lab up` daemon (Detach), which inherits the lock and runs the
// EndpointSlice writer. Up waits for a test's lab within its context, fails
// at once over a CLI lab (unless Config.ReplaceDetached, as `beacon-lab up`
// sets), then removes any leftover with DownAll before building.
//
// Every process the lab starts has a pid file (pid, start time, namespace)
// under StateDir/pids and a log under StateDir/logs. DownAll needs no Lab
// value: it stops every recorded process and every process living in a
// beacon- namespace (found through /proc/PID/ns/net), then deletes the
// namespaces, any beacon- link of the calling namespace and StateDir. So
// `beacon-lab down` cleans up after a crashed test or up. A test killed
// mid-way (timeout panic, SIGINT) leaves the lab until the next Up or
// `beacon-lab down`.
//
// Safety: the lab uses only the documentation and benchmarking ranges of the
// address plan (198.51.100.0/24, 2001:db8:100::/64, 198.18.0.0/16,
// 2001:db8:18::/48, 198.18.254.0/24, 2001:db8:192::/64; services announced
// in 203.0.113.0/24, 2001:db8:203::/120), never 192.0.2.0/24, and nothing
// routes out of it. Every wait polls with a deadline.
//
// Tests start a lab with labtest.Up, which skips without root or
// KUBEBUILDER_ASSETS and tears the lab down when the test ends.
package lab
