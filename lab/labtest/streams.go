package labtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/echo"
)

// Stream is one long-lived TCP connection's record.
type Stream struct {
	// Pod and Node answered the first request (the connection's endpoint).
	Pod, Node string
	Requests  int
	// Local is the connection's local address; Opened when it was dialled.
	Local  string
	Opened time.Time
	// Broken says how the stream broke (a failed request, or its
	// connection replaced by a new one); empty while it holds. BrokenAt
	// is when, and Err the failed request's error, if that was it.
	Broken   string
	BrokenAt time.Time
	Err      error
}

// Streams keeps n long-lived TCP connections from a lab namespace to a
// target: each is one HTTP/1.1 keep-alive connection sending a request
// every interval. A stream breaks on its first failed request or when its
// connection is replaced; it then stops.
type Streams struct {
	mu      sync.Mutex
	streams []Stream
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// StartStreams opens n streams from the namespace from to http://target/
// and waits until each has had its first answer (or broke), so that every
// stream is established when it returns.
func StartStreams(ctx context.Context, l *lab.Lab, from, target string, n int, every time.Duration) *Streams {
	return StartStreamsDial(ctx, l.Dialer(from), target, n, every)
}

// StartStreamsDial is StartStreams with connections from dial.
func StartStreamsDial(ctx context.Context, dial lab.DialFunc, target string, n int, every time.Duration) *Streams {
	ctx, cancel := context.WithCancel(ctx)
	s := &Streams{streams: make([]Stream, n), stop: cancel}
	var ready sync.WaitGroup
	for i := range n {
		ready.Add(1)
		s.wg.Go(func() { s.run(ctx, dial, target, i, every, ready.Done) })
	}
	ready.Wait()
	return s
}

func (s *Streams) run(ctx context.Context, dial lab.DialFunc, target string, i int, every time.Duration, ready func()) {
	var once sync.Once
	defer once.Do(ready)
	dials := 0
	tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		opened := time.Now()
		c, err := dial(ctx, network, addr)
		s.mu.Lock()
		defer s.mu.Unlock()
		dials++
		if err == nil && dials == 1 {
			s.streams[i].Local, s.streams[i].Opened = c.LocalAddr().String(), opened
		}
		return c, err
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		rep, err := getReply(hc, "http://"+target+"/")
		s.mu.Lock()
		st := &s.streams[i]
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil:
			st.BrokenAt, st.Err = time.Now(), err
			st.Broken = fmt.Sprintf("%s: request %d failed: %v", st.BrokenAt.Format("15:04:05.000"), st.Requests+1, err)
		case dials > 1:
			st.BrokenAt = time.Now()
			st.Broken = fmt.Sprintf("%s: request %d went on a new connection", st.BrokenAt.Format("15:04:05.000"), st.Requests+1)
		default:
			st.Requests++
			if st.Pod == "" {
				st.Pod, st.Node = rep.Pod, rep.Node
			}
		}
		broken := st.Broken != ""
		s.mu.Unlock()
		once.Do(ready)
		if broken {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func getReply(hc *http.Client, url string) (echo.Reply, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return echo.Reply{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return echo.Reply{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return echo.Reply{}, fmt.Errorf("status %s", resp.Status)
	}
	return echo.ParseReply(string(body))
}

// Stop ends every stream and waits for them.
func (s *Streams) Stop() {
	s.stop()
	s.wg.Wait()
}

// Results returns every stream's record.
func (s *Streams) Results() []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Stream(nil), s.streams...)
}
