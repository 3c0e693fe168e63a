package allocator

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
)

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		err       error
		reason    Reason
		retryable bool
	}{
		{&Error{Reason: ReasonPoolExhausted, Msg: "full"}, ReasonPoolExhausted, true},
		{fmt.Errorf("service ns/a: %w", &Error{Reason: ReasonPoolExhausted, Msg: "full"}), ReasonPoolExhausted, true},
		{&Error{Reason: ReasonIPInUse, Msg: "taken"}, ReasonIPInUse, false},
		{errors.New("other"), "", false},
		{nil, "", false},
	} {
		if got := ReasonOf(tc.err); got != tc.reason {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.reason)
		}
		if got := IsRetryable(tc.err); got != tc.retryable {
			t.Errorf("IsRetryable(%v) = %v", tc.err, got)
		}
	}
	var e *Error
	_, err := New().Allocate(svc("ns/a"))
	if !errors.As(err, &e) || e.Reason != ReasonNoPool || e.Error() != e.Msg {
		t.Errorf("Allocate with no pools: %#v", err)
	}
}

func TestPoolOf(t *testing.T) {
	a := newWith(t,
		pool("a", "10.0.0.0/24,10.0.2.0/24", avoidBuggy),
		pool("b", "10.0.1.0/24,fd00::/64,10.0.0.128/25"), // overlap goes to a
		pool("c", "0.0.0.0/32,255.255.255.255/32,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"),
	)
	for ip, want := range map[string]string{
		"10.0.0.0":        "a", // avoided, but still a's
		"10.0.0.200":      "a",
		"10.0.1.0":        "b",
		"10.0.1.255":      "b",
		"10.0.2.255":      "a",
		"10.0.3.0":        "",
		"9.255.255.255":   "",
		"fd00::1":         "b",
		"fd00:0:0:1::":    "",
		"::ffff:10.0.0.1": "",
		"0.0.0.0":         "c",
		"255.255.255.255": "c",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "c",
		"::": "",
	} {
		if got := a.PoolOf(netip.MustParseAddr(ip)); got != want {
			t.Errorf("PoolOf(%s) = %q, want %q", ip, got, want)
		}
	}
	if got := a.PoolOf(netip.Addr{}); got != "" {
		t.Errorf("PoolOf(invalid) = %q", got)
	}
	if got := dumpStats(a.Stats()); got != "a v4 0/508; b v4 0/256 v6 0/9223372036854775807; c v4 0/2 v6 0/1" {
		t.Errorf("Stats = %q", got)
	}
}

func TestOwnersAndHolding(t *testing.T) {
	a := newWith(t, pool("a", "10.0.0.0/30"))
	ip := netip.MustParseAddr("10.0.0.0")
	for _, k := range []string{"ns/c", "ns/a", "ns/b"} {
		if _, err := a.Allocate(svc(k, shared("k", "80/TCP"), func(r *Request) { r.Ports[0].Port += int32(len(a.keys)) })); err != nil {
			t.Fatal(err)
		}
	}
	if got := fmt.Sprint(a.Owners(ip)); got != "[ns/a ns/b ns/c]" {
		t.Errorf("Owners = %s", got)
	}
	if a.Owners(netip.MustParseAddr("10.0.0.1")) != nil || a.Holding("ns/none") != nil {
		t.Error("unheld address or unknown key returned something")
	}
	h := a.Holding("ns/a")
	h[0] = netip.MustParseAddr("10.0.0.3")
	if a.Holding("ns/a")[0] != ip {
		t.Error("Holding returned internal state")
	}
}
