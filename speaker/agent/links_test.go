package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beaconlb/beacon/internal/netnstest"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/speaker/l2"
)

// TestResponderFollowsReplugged: a node's NIC is unplugged and another is
// plugged under the same name (a container engine's network disconnected
// and connected again: a new index and MAC). As in a sync, each step
// lists the interfaces and retains the responders by that listing: the
// one on the vanished interface stops, and one on the new starts in its
// place, so a host on the link gets ARP answers from the new MAC. Before,
// the old responder kept its sockets bound to the vanished interface and
// nothing answered.
func TestResponderFollowsReplugged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("arping"); err != nil {
		t.Skipf("needs arping to ask for the address: %v", err)
	}
	node := netnstest.New(t, "beacon-linkstest")
	peer := netnstest.New(t, "beacon-linkspeer")
	vip := netip.MustParseAddr("198.51.100.10")
	plug := func(mac string) {
		t.Helper()
		for _, argv := range [][]string{
			{"ip", "-n", node, "link", "add", "d0", "address", mac, "type", "veth", "peer", "name", "d1", "netns", peer},
			{"ip", "-n", node, "addr", "add", "198.51.100.1/24", "dev", "d0"},
			{"ip", "-n", peer, "addr", "add", "198.51.100.2/24", "dev", "d1"},
			{"ip", "-n", node, "link", "set", "d0", "up"},
			{"ip", "-n", peer, "link", "set", "d1", "up"},
		} {
			if _, err := netnstest.Run(argv[0], argv[1:]...); err != nil {
				t.Fatal(err)
			}
		}
	}
	reg := prometheus.NewRegistry()
	m, err := l2.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKernelLinks(testr.New(t), m)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); k.Wait() })
	retain := func() {
		t.Helper()
		if err := netnstest.Do(node, func() error {
			links, err := k.Interfaces()
			if err != nil {
				return err
			}
			k.Retain(links)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	announce := func() {
		t.Helper()
		retain()
		if err := netnstest.Do(node, func() error {
			r, err := k.Responder(ctx, "d0")
			if err != nil {
				return err
			}
			r.SetAnnounced([]netip.Addr{vip})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	answers := func(mac string) {
		t.Helper()
		from := regexp.MustCompile(`(?i)bytes from ([0-9a-f:]{17})`)
		testenv.Poll(t, ctx, 50*time.Millisecond, 10*time.Second, vip.String()+" answered by "+mac, func() (bool, string) {
			out, _ := netnstest.Run("ip", "netns", "exec", peer, "arping", "-c", "1", "-w", "1", "-I", "d1", vip.String())
			got := from.FindStringSubmatch(out)
			return got != nil && strings.EqualFold(got[1], mac), fmt.Sprint(got)
		})
	}

	const first, second, third = "02:00:00:00:0a:01", "02:00:00:00:0a:02", "02:00:00:00:0a:03"
	plug(first)
	announce()
	answers(first)

	if _, err := netnstest.Run("ip", "-n", node, "link", "del", "d0"); err != nil {
		t.Fatal(err)
	}
	retain()
	k.mu.Lock()
	_, kept := k.open["d0"]
	k.mu.Unlock()
	if kept {
		t.Fatal("the responder of the deleted d0 still runs")
	}
	plug(second)
	announce()
	answers(second)

	// Made again between two listings: the next one shows another index
	// and MAC under the same name.
	if _, err := netnstest.Run("ip", "-n", node, "link", "del", "d0"); err != nil {
		t.Fatal(err)
	}
	plug(third)
	announce()
	answers(third)
}
