package carrier

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/beaconlb/beacon/internal/netnstest"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/speaker/member"
)

// Two nodes in network namespaces, each with a heartbeat link and a LAN
// link, run the real member layer over the heartbeat link and node a runs
// the watcher: when a's LAN link loses carrier, b learns it through a's
// heartbeats while a stays alive, and learns it again when the carrier is
// back. Ten rounds; the time from the cable pull to b's view is logged.
func TestCarrierReachesPeers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	a := netnstest.New(t, "beacon-t-cra")
	b := netnstest.New(t, "beacon-t-crb")
	for _, args := range [][]string{
		{"ip", "-n", a, "link", "add", "hb0", "type", "veth", "peer", "name", "hb0", "netns", b},
		{"ip", "-n", a, "link", "add", "lan0", "type", "veth", "peer", "name", "lan0", "netns", b},
		{"ip", "-n", a, "addr", "add", "198.18.253.11/24", "dev", "hb0"},
		{"ip", "-n", b, "addr", "add", "198.18.253.12/24", "dev", "hb0"},
		{"ip", "-n", a, "addr", "add", "198.51.100.11/24", "dev", "lan0"},
		{"ip", "-n", a, "link", "set", "hb0", "up"},
		{"ip", "-n", b, "link", "set", "hb0", "up"},
		{"ip", "-n", a, "link", "set", "lan0", "up"},
		{"ip", "-n", b, "link", "set", "lan0", "up"},
	} {
		if out, err := netnstest.Run(args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	members := map[string]*member.Member{}
	for _, n := range []struct{ name, ns, addr, peer, peerAddr string }{
		{"a", a, "198.18.253.11:7946", "b", "198.18.253.12:7946"},
		{"b", b, "198.18.253.12:7946", "a", "198.18.253.11:7946"},
	} {
		var conn net.PacketConn
		if err := netnstest.Do(n.ns, func() (err error) {
			conn, err = net.ListenPacket("udp", n.addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		m, err := member.New(member.Config{Name: n.name, Conn: conn, Logger: testr.New(t).WithName(n.name)})
		if err != nil {
			t.Fatal(err)
		}
		m.SetPeers(map[string]netip.AddrPort{n.peer: netip.MustParseAddrPort(n.peerAddr)})
		members[n.name] = m
		wg.Go(func() {
			if err := m.Run(ctx); err != nil {
				t.Errorf("member %s: %v", n.name, err)
			}
		})
	}
	wg.Go(func() {
		w := New(testr.New(t).WithName("carrier"), members["a"].SetNoCarrier)
		if err := netnstest.Do(a, func() error { return w.Run(ctx) }); err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	lan := []member.Link{{Name: "lan0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}}}
	seenByB := func(want []member.Link) func() (bool, string) {
		return func() (bool, string) {
			st, ok := members["b"].State("a")
			got := st.NoCarrier
			return ok && members["b"].Alive("a") && slices.EqualFunc(got, want, func(x, y member.Link) bool {
				return x.Name == y.Name && slices.Equal(x.Prefixes, y.Prefixes)
			}), fmt.Sprintf("alive %v, state %+v (%v)", members["b"].Alive("a"), st, ok)
		}
	}
	testenv.Poll(t, ctx, 5*time.Millisecond, 10*time.Second, "b sees a alive with carrier", seenByB(nil))
	cable := func(state string) {
		if out, err := netnstest.Run("ip", "-n", b, "link", "set", "lan0", state); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	var pulls []time.Duration
	for range 10 {
		at := time.Now()
		cable("down")
		testenv.Poll(t, ctx, time.Millisecond, 5*time.Second, "b learns a's lan0 lost carrier", seenByB(lan))
		pulls = append(pulls, time.Since(at))
		cable("up")
		testenv.Poll(t, ctx, time.Millisecond, 5*time.Second, "b learns a's lan0 has carrier", seenByB(nil))
	}
	slices.Sort(pulls)
	t.Logf("cable pulled to the peer's view, 10 rounds: min %v, median %v, max %v", pulls[0], pulls[len(pulls)/2], pulls[len(pulls)-1])
}
