package l2

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/beaconlb/beacon/internal/netnstest"
)

// The kernel test builds two network namespaces joined by a veth pair:
//
//	beacon-t-r-<pid> (responder)           beacon-t-p-<pid> (peer)
//	beacon-t-r 198.51.100.11 ---- veth ---- beacon-t-p 198.51.100.100
//	           2001:db8:100::11                        2001:db8:100::100
//
// The responder answers for addresses assigned to no interface, and the
// peer asks with the real arping and ndisc6 tools and its own kernel.
const (
	respIf   = "beacon-t-r"
	peerIf   = "beacon-t-p"
	respMAC  = "02:be:ac:00:00:01"
	staleMAC = "02:00:00:00:00:99"
)

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := netnstest.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pollUntil re-evaluates check every 20 ms until it returns "", failing with
// its last answer after limit.
func pollUntil(t *testing.T, limit time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		why := check()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", limit, why)
		}
		<-time.After(20 * time.Millisecond)
	}
}

func TestKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and packet sockets")
	}
	for _, tool := range []string{"ip", "arping", "ndisc6"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	resp := fmt.Sprintf("beacon-t-r-%d", os.Getpid())
	peer := fmt.Sprintf("beacon-t-p-%d", os.Getpid())
	netnstest.New(t, resp)
	netnstest.New(t, peer)
	mustRun(t, "ip", "link", "add", respIf, "netns", resp, "address", respMAC, "type", "veth", "peer", "name", peerIf, "netns", peer)
	for _, c := range [][]string{
		{"-n", resp, "addr", "add", "198.51.100.11/24", "dev", respIf},
		{"-n", resp, "addr", "add", "2001:db8:100::11/64", "dev", respIf, "nodad"},
		{"-n", resp, "link", "set", respIf, "up"},
		{"-n", peer, "addr", "add", "198.51.100.100/24", "dev", peerIf},
		{"-n", peer, "addr", "add", "2001:db8:100::100/64", "dev", peerIf, "nodad"},
		{"-n", peer, "link", "set", peerIf, "up"},
	} {
		mustRun(t, "ip", c...)
	}
	// Neighbour probes of the peer kernel come quickly, so that the
	// reachability tests below take seconds.
	mustRun(t, "ip", "netns", "exec", peer, "sysctl", "-qw",
		"net.ipv4.neigh."+peerIf+".delay_first_probe_time=1",
		"net.ipv6.neigh."+peerIf+".delay_first_probe_time=1")

	var link *Link
	if err := netnstest.Do(resp, func() (err error) {
		link, err = OpenLink(respIf, true, true)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Link: link, Logger: testr.NewWithOptions(t, testr.Options{Verbosity: 2})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { // runs before the namespaces go
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	vip4, vip6 := netip.MustParseAddr("198.51.100.201"), netip.MustParseAddr("2001:db8:100::201")
	r.SetAnnounced([]netip.Addr{vip4, vip6})

	t.Run("arping gets our MAC", func(t *testing.T) {
		out := mustRun(t, "ip", "netns", "exec", peer, "arping", "-c", "1", "-w", "2", "-I", peerIf, vip4.String())
		if !strings.Contains(strings.ToLower(out), respMAC) {
			t.Fatalf("arping did not report %s:\n%s", respMAC, out)
		}
	})
	t.Run("ndisc6 gets our MAC", func(t *testing.T) {
		out := mustRun(t, "ip", "netns", "exec", peer, "ndisc6", "-1", "-r", "2", vip6.String(), peerIf)
		if !strings.Contains(strings.ToLower(out), respMAC) {
			t.Fatalf("ndisc6 did not report %s:\n%s", respMAC, out)
		}
	})
	t.Run("addresses not announced get no answer", func(t *testing.T) {
		if out, err := netnstest.Run("ip", "netns", "exec", peer, "arping", "-c", "1", "-w", "1", "-I", peerIf, "198.51.100.202"); err == nil {
			t.Fatalf("arping got an answer:\n%s", out)
		}
		if out, err := netnstest.Run("ip", "netns", "exec", peer, "ndisc6", "-1", "-r", "1", "-w", "500", "2001:db8:100::202", peerIf); err == nil {
			t.Fatalf("ndisc6 got an answer:\n%s", out)
		}
	})
	t.Run("gratuitous announcements move the peer's entries", func(t *testing.T) {
		// The peer believes the addresses are at another node, as after a
		// failover; it asks nothing.
		v4, v6 := "198.51.100.203", "2001:db8:100::203"
		for _, ip := range []string{v4, v6} {
			mustRun(t, "ip", "-n", peer, "neigh", "replace", ip, "lladdr", staleMAC, "nud", "stale", "dev", peerIf)
		}
		r.SetAnnounced([]netip.Addr{vip4, vip6, netip.MustParseAddr(v4), netip.MustParseAddr(v6)})
		for _, ip := range []string{v4, v6} {
			pollUntil(t, 3*time.Second, func() string {
				out, _ := netnstest.Run("ip", "-n", peer, "neigh", "show", ip, "dev", peerIf)
				if !strings.Contains(out, respMAC) {
					return "peer's entry for " + ip + ": " + out
				}
				return ""
			})
		}
	})
	t.Run("the peer kernel's unicast probes are answered", func(t *testing.T) {
		// A stale entry plus traffic makes the peer kernel probe by unicast
		// after delay_first_probe_time; an answer makes it REACHABLE, no
		// answer would make it FAILED after a few seconds.
		for _, ip := range []netip.Addr{vip4, vip6} {
			mustRun(t, "ip", "-n", peer, "neigh", "replace", ip.String(), "lladdr", respMAC, "nud", "stale", "dev", peerIf)
			if err := netnstest.Do(peer, func() error {
				c, err := net.Dial("udp", netip.AddrPortFrom(ip, 9).String())
				if err != nil {
					return err
				}
				defer func() { _ = c.Close() }()
				_, err = c.Write([]byte("probe me"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, 6*time.Second, func() string {
				out, _ := netnstest.Run("ip", "-n", peer, "neigh", "show", ip.String(), "dev", peerIf)
				if !strings.Contains(out, "REACHABLE") {
					return "peer's entry for " + ip.String() + ": " + out
				}
				return ""
			})
		}
	})
	t.Run("probes find addresses the peer kernel holds", func(t *testing.T) {
		// The peer holds .210 and ::210 (as a forgotten static address
		// would be); .211 and ::211 are free.
		taken4, taken6 := netip.MustParseAddr("198.51.100.210"), netip.MustParseAddr("2001:db8:100::210")
		free4, free6 := netip.MustParseAddr("198.51.100.211"), netip.MustParseAddr("2001:db8:100::211")
		mustRun(t, "ip", "-n", peer, "addr", "add", taken4.String()+"/24", "dev", peerIf)
		mustRun(t, "ip", "-n", peer, "addr", "add", taken6.String()+"/64", "dev", peerIf, "nodad")
		peerMAC := strings.TrimSpace(mustRun(t, "ip", "netns", "exec", peer, "cat", "/sys/class/net/"+peerIf+"/address"))
		all := []netip.Addr{vip4, vip6, taken4, taken6, free4, free6}
		r.Announce(all, []netip.Addr{taken4, taken6, free4, free6})
		pollUntil(t, 3*time.Second, func() string {
			c := r.Conflicts()
			if len(c) != 2 || c[0].IP != taken4 || c[1].IP != taken6 || c[0].MAC.String() != peerMAC || c[1].MAC.String() != peerMAC || c[0].Announced {
				return fmt.Sprintf("conflicts %+v, want %s and %s at %s", c, taken4, taken6, peerMAC)
			}
			return ""
		})
		pollUntil(t, 3*time.Second, func() string {
			if got := r.Announced(); !slices.Contains(got, free4) || !slices.Contains(got, free6) {
				return fmt.Sprintf("answered %v, want the free addresses once probed", got)
			}
			return ""
		})
		out := mustRun(t, "ip", "netns", "exec", peer, "arping", "-c", "1", "-w", "2", "-I", peerIf, free4.String())
		if !strings.Contains(strings.ToLower(out), respMAC) {
			t.Fatalf("the free address is not answered after probing:\n%s", out)
		}
		if got := r.Announced(); slices.Contains(got, taken4) || slices.Contains(got, taken6) {
			t.Fatalf("taken addresses answered: %v", got)
		}
		r.SetAnnounced([]netip.Addr{vip4, vip6})
	})
	t.Run("withdrawn addresses are no longer answered", func(t *testing.T) {
		r.SetAnnounced([]netip.Addr{vip6})
		if out, err := netnstest.Run("ip", "netns", "exec", peer, "arping", "-c", "1", "-w", "1", "-I", peerIf, vip4.String()); err == nil {
			t.Fatalf("arping got an answer:\n%s", out)
		}
	})
}
