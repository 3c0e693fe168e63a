package labtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/beaconlb/beacon/lab"
)

// Prober sends one HTTP GET every 10 ms from a lab namespace, each on its
// own connection and goroutine (at most 200 in flight, 1 s timeout), and
// records when each success completed and each failure was seen, so a slow
// failure does not hide the recovery behind it.
type Prober struct {
	mu      sync.Mutex
	ok      []time.Time // sorted
	bad     []time.Time // in the order seen
	errs    []string    // the last failures: when each started, from where, and why
	records []Failure   // every failed request, in the order seen
	sent    int
	failed  int
	stop    context.CancelFunc
	stopped chan struct{}
}

// maxErrs bounds the failures a Prober keeps for the log.
const maxErrs = 20

// StartProber starts probing http://target/ from the namespace from until
// ctx ends or Stop.
func StartProber(ctx context.Context, l *lab.Lab, from, target string) *Prober {
	return StartProberDial(ctx, l.Dialer(from), target)
}

// StartProberDial starts probing http://target/ over connections from dial
// until ctx ends or Stop.
func StartProberDial(ctx context.Context, dial lab.DialFunc, target string) *Prober {
	ctx, cancel := context.WithCancel(ctx)
	p := &Prober{stop: cancel, stopped: make(chan struct{})}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial}, Timeout: time.Second}
	slots := make(chan struct{}, 200)
	// Requests in flight when probing stops end on their own (within the
	// client's timeout) rather than count as cancelled failures.
	reqCtx := context.WithoutCancel(ctx)
	one := func() {
		defer func() { <-slots }()
		start := time.Now()
		local, err := get(reqCtx, hc, "http://"+target+"/")
		if err != nil {
			p.failure(fmt.Sprintf("%s (+%v) from %q: %v", start.Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), local, err),
				Failure{Start: start, At: time.Now(), Local: local, Err: err})
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		at := time.Now()
		i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(at) })
		p.ok = slices.Insert(p.ok, i, at)
	}
	go func() {
		var wg sync.WaitGroup
		defer close(p.stopped)
		defer wg.Wait()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			p.mu.Lock()
			p.sent++
			p.mu.Unlock()
			select {
			case slots <- struct{}{}:
				wg.Go(one)
			default:
				now := time.Now()
				p.failure("", Failure{Start: now, At: now, Err: errNoSlot}) // 200 requests hanging: a failed send
			}
		}
	}()
	return p
}

// get sends one request and returns the connection's local address (it
// names the connection in a packet capture).
func get(ctx context.Context, hc *http.Client, url string) (local string, err error) {
	trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { local = ci.Conn.LocalAddr().String() }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return local, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return local, err
}

// Failure is one failed request.
type Failure struct {
	Start, At time.Time // when the request started and when it failed
	Local     string    // the connection's local address, "" if it had none
	Err       error
}

// errNoSlot is the failure of a request not sent: 200 were hanging.
var errNoSlot = errors.New("not sent: 200 requests in flight")

// FailureRecords returns every request that failed after from, in the
// order seen.
func (p *Prober) FailureRecords(from time.Time) []Failure {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Failure
	for _, f := range p.records {
		if f.At.After(from) {
			out = append(out, f)
		}
	}
	return out
}

// failure records f, and why for the log unless why is "".
func (p *Prober) failure(why string, f Failure) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed++
	p.bad = append(p.bad, f.At)
	p.records = append(p.records, f)
	if why != "" {
		p.errs = append(p.errs, why)
		if len(p.errs) > maxErrs {
			p.errs = p.errs[1:]
		}
	}
}

// Stop stops probing and waits for the requests in flight.
func (p *Prober) Stop() {
	p.stop()
	<-p.stopped
}

// Counts returns how many requests were sent and how many failed.
func (p *Prober) Counts() (sent, failed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.failed
}

// LastErrors returns the last failures with when they started.
func (p *Prober) LastErrors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.errs)
}

// Failures returns when each failure after from was seen.
func (p *Prober) Failures(from time.Time) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for _, b := range p.bad {
		if b.After(from) {
			out = append(out, b)
		}
	}
	return out
}

// QuietFor reports whether no request failed for d.
func (p *Prober) QuietFor(d time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.bad) == 0 || time.Since(p.bad[len(p.bad)-1]) > d
}

// LastSuccess returns when the last success completed (zero if none).
func (p *Prober) LastSuccess() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ok) == 0 {
		return time.Time{}
	}
	return p.ok[len(p.ok)-1]
}

// LongestGap returns the longest time without a successful reply between
// from and to (both inclusive of the successes around them).
func (p *Prober) LongestGap(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(from) })
	j := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(to) })
	var longest time.Duration
	for k := max(i, 1); k < len(p.ok) && k <= j; k++ {
		longest = max(longest, p.ok[k].Sub(p.ok[k-1]))
	}
	return longest
}

// LongestSince returns the longest gap between successes after from,
// counting from from to the first success after it.
func (p *Prober) LongestSince(from time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(from) })
	var longest time.Duration
	for k := max(i, 1); k < len(p.ok); k++ {
		longest = max(longest, p.ok[k].Sub(p.ok[k-1]))
	}
	if i < len(p.ok) && i > 0 {
		longest = max(longest, p.ok[i].Sub(from))
	}
	return longest
}

// Outage returns the longest time without a successful reply from the
// last success before at to the first success after settle; false until
// a success after settle exists.
func (p *Prober) Outage(at, settle time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(at) })
	j := sort.Search(len(p.ok), func(i int) bool { return p.ok[i].After(settle) })
	if i == 0 || j == len(p.ok) {
		return 0, false
	}
	var longest time.Duration
	for k := i; k <= j; k++ {
		longest = max(longest, p.ok[k].Sub(p.ok[k-1]))
	}
	return longest, true
}
