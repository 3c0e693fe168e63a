package kind

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beaconlb/beacon/lab/labtest"
)

// The kind router spreads a routed address over its next hops with the
// kernel's hash-threshold ECMP over the 5-tuple of the headers
// (fib_multipath_hash_policy=3, fields 0x37), which ip route get computes
// the same way from sport and dport.
// Taking a next hop out of the set, or putting one in, moves some flows
// between nodes that stay in service too; such a flow reaches a node that
// has no state for it and is reset. Beacon's flow hand-off is for the flows
// of the node that leaves; it cannot save those. ecmpWatch records each
// set the router's kernel had while traffic ran, and asks the router's own
// route lookup which next hop a failed flow had under each, so a test can
// tell a flow re-hashed by the router from one Beacon lost.

// ecmpSet is one state of the router's kernel route for an address.
type ecmpSet struct {
	at   time.Time // when the router's kernel had it from
	hops []ecmpHop // in the kernel's order (it decides the hash ranges); none: no route
}

type ecmpHop struct {
	via    netip.Addr
	dev    string
	weight int
}

// ecmpWatch follows the router's kernel route for one address.
type ecmpWatch struct {
	c      *cluster
	ip     netip.Addr
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	sets []ecmpSet // sets[0]: the route when the watch started
	err  error     // the monitor's end, if it ended before stop
}

// ecmpMarker is a route the watch adds and deletes in a table of its own
// so that it knows its monitor is running.
const ecmpMarker = "198.18.111.255/32"

// watchECMP starts following the router's route for ip (ip monitor in the
// router, with timestamps in UTC). It is stopped when the test ends.
func (c *cluster) watchECMP(t *testing.T, ip netip.Addr) *ecmpWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &ecmpWatch{c: c, ip: ip, cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, c.env["ENGINE"], "exec", c.env["ROUTER"], "env", "TZ=UTC", "ip", "-ts", "monitor", "route")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	marker := make(chan struct{})
	go func() {
		defer close(w.done)
		err := w.follow(out, marker)
		werr := cmd.Wait()
		w.mu.Lock()
		defer w.mu.Unlock()
		if ctx.Err() == nil {
			w.err = fmt.Errorf("ip monitor ended: %w", errors.Join(err, werr))
		}
	}()
	t.Cleanup(w.stop)

	// The monitor is running once it reports the marker route.
	ran := false
	eventually(t, 30*time.Second, "ip monitor route in the router reports a route change", func() error {
		if ran {
			select {
			case <-marker:
				return nil
			default:
			}
		}
		ran = true
		_, err := c.exec(ctx, c.env["ROUTER"], "sh", "-c",
			"ip route replace blackhole "+ecmpMarker+" table 1999 && ip route del "+ecmpMarker+" table 1999")
		if err != nil {
			return err
		}
		select {
		case <-marker:
			return nil
		default:
			return fmt.Errorf("not yet")
		}
	})
	// Then the route as it is: a change from now on is in the monitor.
	at := time.Now()
	hops, err := c.routerKernelHops(ctx, ip)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.sets = slices.Insert(w.sets, 0, ecmpSet{at: at, hops: hops})
	w.mu.Unlock()
	return w
}

// routerKernelHops returns the next hops of ip/32 in the router's main
// table, in the kernel's order.
func (c *cluster) routerKernelHops(ctx context.Context, ip netip.Addr) ([]ecmpHop, error) {
	out, err := c.exec(ctx, c.env["ROUTER"], "ip", "-j", "route", "show", ip.String()+"/32")
	if err != nil {
		return nil, err
	}
	var routes []struct {
		Gateway  string `json:"gateway"`
		Dev      string `json:"dev"`
		Nexthops []struct {
			Gateway string `json:"gateway"`
			Dev     string `json:"dev"`
			Weight  int    `json:"weight"`
		} `json:"nexthops"`
	}
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		return nil, fmt.Errorf("ip -j route show %s/32: %w: %s", ip, err, out)
	}
	var hops []ecmpHop
	for _, r := range routes {
		if r.Gateway != "" {
			a, err := netip.ParseAddr(r.Gateway)
			if err != nil {
				return nil, fmt.Errorf("ip -j route show %s/32: %w: %s", ip, err, out)
			}
			hops = append(hops, ecmpHop{via: a, dev: r.Dev, weight: 1})
		}
		for _, nh := range r.Nexthops {
			a, err := netip.ParseAddr(nh.Gateway)
			if err != nil {
				return nil, fmt.Errorf("ip -j route show %s/32: %w: %s", ip, err, out)
			}
			hops = append(hops, ecmpHop{via: a, dev: nh.Dev, weight: max(nh.Weight, 1)})
		}
	}
	return hops, nil
}

// follow parses ip -ts monitor route: an event is a line
// "[TIME] [Deleted ]PREFIX ... [via GW dev DEV ...]", followed, for a
// multipath route, by one "\tnexthop via GW dev DEV weight W" line per
// next hop. It records every event for w.ip, and closes marker on the
// first event for ecmpMarker.
func (w *ecmpWatch) follow(r io.Reader, marker chan struct{}) error {
	sc := bufio.NewScanner(r)
	// The next hops of an event follow its first line in the same write:
	// the event is recorded at once and completed line by line, so the
	// last one is there without waiting for another.
	mine := false // the lines being read are of an event for w.ip
	markerSeen := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "\t") || strings.HasPrefix(line, " ") {
			if h, ok := parseHop(strings.Fields(line)); ok && mine {
				w.mu.Lock()
				last := &w.sets[len(w.sets)-1]
				last.hops = append(last.hops, h)
				w.mu.Unlock()
			}
			continue
		}
		mine = false
		ts, rest, ok := strings.Cut(strings.TrimPrefix(line, "["), "] ")
		if !ok {
			continue
		}
		at, err := time.ParseInLocation("2006-01-02T15:04:05.999999", ts, time.UTC)
		if err != nil {
			return fmt.Errorf("ip monitor time %q: %w", ts, err)
		}
		rest, deleted := strings.CutPrefix(rest, "Deleted ")
		f := strings.Fields(rest)
		if slices.Contains(f, strings.TrimSuffix(ecmpMarker, "/32")) {
			if !markerSeen {
				markerSeen = true
				close(marker)
			}
			continue
		}
		if len(f) == 0 || f[0] != w.ip.String() && f[0] != w.ip.String()+"/32" || slices.Contains(f, "table") {
			continue
		}
		set := ecmpSet{at: at}
		if h, ok := parseHop(f); ok && !deleted {
			set.hops = append(set.hops, h)
		}
		mine = !deleted
		w.mu.Lock()
		w.sets = append(w.sets, set)
		w.mu.Unlock()
	}
	return sc.Err()
}

// parseHop reads "via GW dev DEV [weight W]" out of a route's fields.
func parseHop(f []string) (ecmpHop, bool) {
	i := slices.Index(f, "via")
	if i < 0 || i+1 >= len(f) {
		return ecmpHop{}, false
	}
	via, err := netip.ParseAddr(f[i+1])
	if err != nil {
		return ecmpHop{}, false
	}
	h := ecmpHop{via: via, weight: 1}
	if j := slices.Index(f, "dev"); j >= 0 && j+1 < len(f) {
		h.dev = f[j+1]
	}
	if j := slices.Index(f, "weight"); j >= 0 && j+1 < len(f) {
		if n, err := strconv.Atoi(f[j+1]); err == nil {
			h.weight = n
		}
	}
	return h, true
}

func (w *ecmpWatch) stop() {
	w.cancel()
	<-w.done
}

// history returns the sets seen so far, and the monitor's error if it
// ended early.
func (w *ecmpWatch) history() ([]ecmpSet, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sets), w.err
}

// monitorLag bounds how much later than the kernel's change the router's
// route monitor stamps it.
const monitorLag = 5 * time.Millisecond

// Spare tables and rule preferences of the router that judge uses: table
// ecmpTable+k holds set k, selected by fwmark ecmpTable+k.
const (
	ecmpTable    = 2000
	ecmpRulePref = 3000
	ecmpMaxSets  = 100
)

// judge sorts failures of requests from the client to w.ip into those
// the router re-hashed and the others, logging why each is what it is. A
// failure is re-hashed when the connection was reset, and while it lived
// the router's set of next hops changed so that the flow moved from a
// node that stayed in the set to another one, and never left a node that
// left the set (that flow is the hand-off's to save). A timeout, a refused
// connection, a flow that did not move or left a node taken out of the
// set is not.
func (w *ecmpWatch) judge(t *testing.T, failures []labtest.Failure) (rehashed, other []labtest.Failure) {
	t.Helper()
	sets, werr := w.history()
	if werr != nil {
		t.Errorf("the router's route for %s was not followed to the end (%v): no failure counts as re-hashed", w.ip, werr)
		return nil, failures
	}
	for _, s := range sets {
		t.Logf("router route for %s from %s: %s", w.ip, s.at.Format("15:04:05.000000"), hopList(s.hops))
	}
	if len(sets) > ecmpMaxSets {
		t.Errorf("the router's route for %s changed %d times: more than judge can look up; no failure counts as re-hashed", w.ip, len(sets)-1)
		return nil, failures
	}
	if len(failures) == 0 {
		// The lookup's own checks still run: a run without failures
		// shows that the method works.
		if len(sets) > 1 {
			if _, err := w.lookup(t, sets, nil); err != nil {
				t.Errorf("looking up flows in the router: %v", err)
			}
		}
		return nil, nil
	}
	// What each failure needs looked up.
	type flow struct {
		f      labtest.Failure
		port   int
		i0, i1 int // the sets in force when it started and when it failed
		why    string
	}
	inForce := func(at time.Time) int {
		i, _ := slices.BinarySearchFunc(sets, at, func(s ecmpSet, at time.Time) int { return s.at.Compare(at) })
		// sets[i] is the first from at on; the one in force is before it
		// unless it starts exactly then.
		if i < len(sets) && sets[i].at.Equal(at) {
			return i
		}
		return max(i-1, 0)
	}
	flows := make([]flow, len(failures))
	need := map[[2]int]bool{} // set, port
	for n, f := range failures {
		// A route change stamped up to monitorLag after the client saw
		// the reset counts as in force before it: the monitor stamps a
		// change when it reads the netlink message, after the kernel made
		// it (a reset 0.3 ms before the stamp of the change that caused
		// it was seen).
		fl := flow{f: f, i0: inForce(f.Start), i1: inForce(f.At.Add(monitorLag))}
		switch ap, err := netip.ParseAddrPort(f.Local); {
		case err != nil:
			fl.why = "no connection"
		case !resetLike(f.Err):
			fl.why = "not a reset"
		case fl.i0 == fl.i1:
			fl.why = "the router's next hops did not change while it lived"
		default:
			fl.port = int(ap.Port())
			for k := fl.i0; k <= fl.i1; k++ {
				need[[2]int{k, fl.port}] = true
			}
		}
		flows[n] = fl
	}
	var hop map[[2]int]netip.Addr
	if len(need) > 0 {
		var err error
		if hop, err = w.lookup(t, sets, need); err != nil {
			t.Errorf("looking up failed flows in the router: %v; no failure counts as re-hashed", err)
			return nil, failures
		}
	}
	for _, fl := range flows {
		if fl.why == "" {
			fl.why = moved(sets, fl.i0, fl.i1, func(k int) netip.Addr { return hop[[2]int{k, fl.port}] })
		}
		if fl.why == "" {
			rehashed = append(rehashed, fl.f)
		} else {
			other = append(other, fl.f)
		}
		var path []string
		for k := fl.i0; fl.port != 0 && k <= fl.i1; k++ {
			path = append(path, hop[[2]int{k, fl.port}].String())
		}
		verdict := "re-hashed by the router"
		if fl.why != "" {
			verdict = "not re-hashed: " + fl.why
		}
		t.Logf("failed request %s (+%v) from %q, next hops %v: %s: %v", fl.f.Start.Format("15:04:05.000"),
			fl.f.At.Sub(fl.f.Start).Round(time.Millisecond), fl.f.Local, path, verdict, fl.f.Err)
	}
	return rehashed, other
}

// moved returns "" when a flow whose next hop under set k is hop(k) moved,
// from set i0 to set i1, between next hops that stayed in the sets, and
// why not otherwise.
func moved(sets []ecmpSet, i0, i1 int, hop func(k int) netip.Addr) string {
	in := func(k int, a netip.Addr) bool {
		return slices.ContainsFunc(sets[k].hops, func(h ecmpHop) bool { return h.via == a })
	}
	moves := 0
	for k := i0; k < i1; k++ {
		from, to := hop(k), hop(k+1)
		switch {
		case !from.IsValid() || !to.IsValid():
			return fmt.Sprintf("no route for it in set %d or %d", k, k+1)
		case from == to:
		case !in(k+1, from):
			return fmt.Sprintf("it was on %s, which left the router's set", from)
		default:
			moves++
		}
	}
	if moves == 0 {
		return "its next hop did not change"
	}
	return ""
}

// resetLike reports whether err is what a node without state for a flow
// answers: a reset (or the connection cut short by one).
func resetLike(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// lookup asks the router which next hop each (set, client port) flow
// from the client to w.ip takes: each set's next hops, in the same order,
// go into a spare table selected by a mark, and ip route get, given the
// flow's 5-tuple and the mark, answers with the kernel's own hash. It
// first checks that the answer depends on the ports and that a spare
// table answers as the main table does.
func (w *ecmpWatch) lookup(t *testing.T, sets []ecmpSet, need map[[2]int]bool) (map[[2]int]netip.Addr, error) {
	t.Helper()
	ctx := context.Background()
	router, client := w.c.env["ROUTER"], w.c.env["CLIENT_IP"]
	out, err := w.c.exec(ctx, router, "ip", "-j", "route", "get", client)
	if err != nil {
		return nil, err
	}
	var r []struct {
		Dev string `json:"dev"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r) != 1 || r[0].Dev == "" {
		return nil, fmt.Errorf("the router's interface towards %s: %q (%v)", client, out, err)
	}
	iif := r[0].Dev

	var setup, cleanup strings.Builder
	for k, s := range sets {
		fmt.Fprintf(&cleanup, "ip rule del pref %d 2>/dev/null || true; ip route flush table %d 2>/dev/null || true\n", ecmpRulePref+k, ecmpTable+k)
		if len(s.hops) == 0 {
			continue
		}
		fmt.Fprintf(&setup, "ip route replace %s/32 table %d", w.ip, ecmpTable+k)
		for _, h := range s.hops {
			fmt.Fprintf(&setup, " nexthop via %s dev %s weight %d", h.via, h.dev, h.weight)
		}
		fmt.Fprintf(&setup, " && ip rule add pref %d fwmark %d lookup %d\n", ecmpRulePref+k, ecmpTable+k, ecmpTable+k)
	}
	cleanupScript := cleanup.String()
	defer func() {
		if _, err := w.c.exec(ctx, router, "sh", "-c", cleanupScript); err != nil {
			t.Errorf("removing the lookup tables from the router: %v", err)
		}
	}()
	if _, err := w.c.exec(ctx, router, "sh", "-c", "set -e\n"+cleanupScript+setup.String()); err != nil {
		return nil, err
	}

	// One ip route get per query, one JSON line each, in order.
	type query struct{ set, port int } // set -1: the main table
	var qs []query
	widest, last := -1, len(sets)-1
	for k, s := range sets {
		if len(s.hops) > 1 && (widest < 0 || len(s.hops) > len(sets[widest].hops)) {
			widest = k
		}
	}
	if widest < 0 {
		return nil, fmt.Errorf("no set of the router had two next hops")
	}
	const probes = 32
	for p := range probes {
		qs = append(qs, query{widest, 40000 + p})
	}
	if len(sets[last].hops) > 0 {
		for p := range probes {
			qs = append(qs, query{last, 40000 + p}, query{-1, 40000 + p})
		}
	}
	for k := range need {
		qs = append(qs, query{k[0], k[1]})
	}
	var script strings.Builder
	for _, q := range qs {
		fmt.Fprintf(&script, "ip -j route get %s from %s iif %s ipproto 6 sport %d dport 80", w.ip, client, iif, q.port)
		if q.set >= 0 {
			fmt.Fprintf(&script, " mark %d", ecmpTable+q.set)
		}
		script.WriteString("\n")
	}
	out, err = w.c.exec(ctx, router, "sh", "-c", "set -e\n"+script.String())
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(qs) {
		return nil, fmt.Errorf("%d answers to %d route lookups: %s", len(lines), len(qs), out)
	}
	got := make(map[query]netip.Addr, len(qs))
	for i, q := range qs {
		var r []struct {
			Gateway string `json:"gateway"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			return nil, fmt.Errorf("route lookup %+v: %w: %s", q, err, lines[i])
		}
		if len(r) == 1 {
			got[q], _ = netip.ParseAddr(r[0].Gateway)
		}
	}
	spread := map[netip.Addr]bool{}
	for p := range probes {
		spread[got[query{widest, 40000 + p}]] = true
		if len(sets[last].hops) > 0 {
			if a, b := got[query{last, 40000 + p}], got[query{-1, 40000 + p}]; a != b {
				return nil, fmt.Errorf("port %d: the spare table of the last set answers %v, the main table %v", 40000+p, a, b)
			}
		}
	}
	if len(spread) < 2 {
		return nil, fmt.Errorf("%d client ports all map to %v over %s: the router's lookup does not hash the ports", probes, spread, hopList(sets[widest].hops))
	}
	t.Logf("router lookup: %d client ports to %s spread over %d of its next hops %s; set %d's spare table agrees with the main table on all of them",
		probes, w.ip, len(spread), hopList(sets[widest].hops), last)
	hops := map[[2]int]netip.Addr{}
	for k := range need {
		hops[k] = got[query{k[0], k[1]}]
	}
	return hops, nil
}

func hopList(hops []ecmpHop) string {
	if len(hops) == 0 {
		return "no route"
	}
	var s []string
	for _, h := range hops {
		s = append(s, fmt.Sprintf("%s(%s,%d)", h.via, h.dev, h.weight))
	}
	return strings.Join(s, " ")
}
