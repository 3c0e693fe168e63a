package carrier

import (
	"context"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/beaconlb/beacon/internal/netnstest"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/speaker/member"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range s {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func TestDown(t *testing.T) {
	many := make([]Iface, member.MaxLinks+5)
	for i := range many {
		many[i] = Iface{Name: string(rune('a'+i%26)) + string(rune('a'+i/26)), Up: true}
	}
	many[len(many)-1].Prefixes = pfx("198.51.100.11/24")
	for _, tc := range []struct {
		name   string
		ifaces []Iface
		want   []member.Link
	}{
		{"all up", []Iface{{Name: "eth0", Up: true, LowerUp: true, Prefixes: pfx("198.51.100.11/24")}}, nil},
		{"no carrier", []Iface{
			{Name: "eth1", Up: true, LowerUp: true, Prefixes: pfx("198.18.253.11/24")},
			{Name: "eth0", Up: true, Prefixes: pfx("2001:db8:100::11/64", "198.51.100.11/24")},
		}, []member.Link{{Name: "eth0", Prefixes: pfx("198.51.100.11/24", "2001:db8:100::11/64")}}},
		{"administratively down", []Iface{{Name: "eth2"}}, []member.Link{{Name: "eth2"}}},
		{"loopback ignored", []Iface{{Name: "lo", Loopback: true}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Down(tc.ifaces)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Down = %+v, want %+v", got, tc.want)
			}
		})
	}
	// A heartbeat carries at most MaxLinks: the one with a prefix stays.
	got := Down(many)
	withPrefix := slices.ContainsFunc(got, func(l member.Link) bool { return l.Name == many[len(many)-1].Name })
	if len(got) != member.MaxLinks || !withPrefix || !slices.IsSortedFunc(got, func(a, b member.Link) int { return strings.Compare(a.Name, b.Name) }) {
		t.Fatalf("%d links (want %d), the one with a prefix kept: %v, sorted: %v", len(got), member.MaxLinks, withPrefix, names(got))
	}
}

// The watcher sees a veth lose carrier when its peer goes down, and get it
// back, in a network namespace with the real kernel.
func TestWatcherInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	ns := netnstest.New(t, "beacon-t-carrier")
	for _, args := range [][]string{
		{"ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "port0"},
		{"ip", "-n", ns, "addr", "add", "198.51.100.11/24", "dev", "lan0"},
		{"ip", "-n", ns, "link", "set", "lan0", "up"},
		{"ip", "-n", ns, "link", "set", "port0", "up"},
	} {
		if out, err := netnstest.Run(args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	var mu sync.Mutex
	var last []member.Link
	calls := 0
	w := New(testr.New(t), func(l []member.Link) {
		mu.Lock()
		last, calls = l, calls+1
		mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- netnstest.Do(ns, func() error { return w.Run(ctx) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	wait := func(what string, want []member.Link) {
		testenv.Poll(t, ctx, 5*time.Millisecond, 5*time.Second, what, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return calls > 0 && reflect.DeepEqual(last, want), "" + names(last)
		})
	}
	wait("carrier on both ends", nil)
	set := func(state string) {
		if out, err := netnstest.Run("ip", "-n", ns, "link", "set", "port0", state); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	set("down")
	wait("lan0 without carrier", []member.Link{{Name: "lan0", Prefixes: pfx("198.51.100.11/24")}, {Name: "port0"}})
	set("up")
	wait("carrier back", nil)
}
