// Package kernelarp works out which of the addresses Beacon announces in
// layer 2 a node's own kernel answers ARP or NDP for as well: a node that
// holds such an address on any of its interfaces (kube-proxy in ipvs mode
// binds every LoadBalancer address to its dummy interface kube-ipvs0) may
// answer for it whether or not it won the election, and the LAN then sees
// several MACs for one address.
//
// The rules are the kernel's (net/ipv4/arp.c, net/ipv6/ndisc.c), checked on
// the real kernel by the lab test that uses this package:
//   - IPv4: a request for a local address (on any interface, up or down)
//     that arrives on interface I is answered according to the effective
//     arp_ignore of I, the larger of conf/all and conf/I: 0, 3 and the
//     reserved 4-7 answer for an address on any interface; 1 and 2 only
//     for one on I itself; 8 never.
//     3 refuses addresses of host scope only; kube-proxy's are global, and
//     this package does not tell scopes apart, so it counts them.
//     2 also wants the sender in the address's subnet, which a check
//     without a sender cannot know: it counts as 1.
//   - IPv6: a Neighbor Solicitation is answered only for an address on the
//     receiving interface (proxy NDP aside, which Beacon does not use), so
//     an address elsewhere is no problem.
//
// Beacon itself puts no LoadBalancer address on any interface (its
// dataplane translates them in nftables), so every address found is
// someone else's.
package kernelarp

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
)

// Address is one address Beacon may announce in layer 2 and the
// interfaces of this node it would be announced on.
type Address struct {
	IP         netip.Addr
	Interfaces []string
}

// Answer is one address the kernel answers for on an announcing
// interface.
type Answer struct {
	IP netip.Addr
	// Interface is where requests arrive: an interface Beacon announces
	// on.
	Interface string
	// HeldOn is the interface that holds the address (Interface itself
	// when it holds it).
	HeldOn string
	// ARPIgnore is Interface's effective arp_ignore (IPv4 only).
	ARPIgnore int
}

// Effective is the arp_ignore the kernel applies on an interface: the
// larger of conf/all and conf/<interface>.
func Effective(all, iface int) int { return max(all, iface) }

// Answered returns, sorted by address and interface, the addresses of
// addrs that the kernel answers ARP or NDP for on an interface they are
// announced on, given the node's local addresses by interface and the
// effective arp_ignore of each announcing interface (an interface missing
// from arpIgnore is not checked for IPv4: its value could not be read).
func Answered(addrs []Address, local map[string][]netip.Addr, arpIgnore map[string]int) []Answer {
	holders := map[netip.Addr][]string{}
	for iface, ips := range local {
		for _, ip := range ips {
			holders[ip.Unmap()] = append(holders[ip.Unmap()], iface)
		}
	}
	for _, h := range holders {
		slices.Sort(h)
	}
	seen := map[Answer]bool{}
	var out []Answer
	for _, a := range addrs {
		ip := a.IP.Unmap()
		held := holders[ip]
		if len(held) == 0 {
			continue
		}
		for _, iface := range a.Interfaces {
			ans, ok := answers(ip, iface, held, arpIgnore)
			if ok && !seen[ans] {
				seen[ans] = true
				out = append(out, ans)
			}
		}
	}
	slices.SortFunc(out, func(x, y Answer) int {
		return cmp.Or(x.IP.Compare(y.IP), strings.Compare(x.Interface, y.Interface))
	})
	return out
}

// ARPIgnoreNeeded returns, sorted, the interfaces whose arp_ignore
// Answered needs: those IPv4 addresses of addrs that local holds are
// announced on. Usually none, and then nothing needs reading.
func ARPIgnoreNeeded(addrs []Address, local map[string][]netip.Addr) []string {
	held := map[netip.Addr]bool{}
	for _, ips := range local {
		for _, ip := range ips {
			if ip.Unmap().Is4() {
				held[ip.Unmap()] = true
			}
		}
	}
	var out []string
	for _, a := range addrs {
		if held[a.IP.Unmap()] {
			out = append(out, a.Interfaces...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// answers applies the kernel's rule to one address held on the interfaces
// held, for requests arriving on iface.
func answers(ip netip.Addr, iface string, held []string, arpIgnore map[string]int) (Answer, bool) {
	onIface := slices.Contains(held, iface)
	if ip.Is6() {
		return Answer{IP: ip, Interface: iface, HeldOn: iface}, onIface
	}
	ignore, known := arpIgnore[iface]
	if !known {
		return Answer{}, false
	}
	a := Answer{IP: ip, Interface: iface, HeldOn: held[0], ARPIgnore: ignore}
	if onIface {
		a.HeldOn = iface
	}
	switch ignore {
	case 8:
		return Answer{}, false
	case 1, 2:
		return a, onIface
	default: // 0, 3, the reserved 4-7, and anything above 8
		return a, true
	}
}

// Count returns how many distinct addresses of each family the answers
// hold (IPv4, IPv6).
func Count(as []Answer) (v4, v6 int) {
	seen := map[netip.Addr]bool{}
	for _, a := range as {
		if seen[a.IP] {
			continue
		}
		seen[a.IP] = true
		if a.IP.Is4() {
			v4++
		} else {
			v6++
		}
	}
	return v4, v6
}
