package labtest

import (
	"bufio"
	"context"
	"errors"
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
	// Broken says how the stream broke (its first failed request); empty
	// while it holds. BrokenAt is when, Err the request's error.
	Broken   string
	BrokenAt time.Time
	Err      error
}

// Streams keeps n long-lived TCP connections from a lab namespace to a
// target: each is one HTTP/1.1 keep-alive connection sending a request
// every interval. A stream breaks on its first failed request (a reset, a
// timeout of 2 s, the server closing it); it then stops.
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
	// One connection, driven by hand rather than by an http.Transport,
	// which would dial a new one when the old was reset while idle and
	// hide the reset.
	record := func(err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := &s.streams[i]
		st.BrokenAt, st.Err = time.Now(), err
		st.Broken = fmt.Sprintf("%s: request %d failed: %v", st.BrokenAt.Format("15:04:05.000"), st.Requests+1, err)
	}
	opened := time.Now()
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	conn, err := dial(dctx, "tcp", target)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			record(err)
		}
		return
	}
	defer func() { _ = conn.Close() }()
	s.mu.Lock()
	s.streams[i].Local, s.streams[i].Opened = conn.LocalAddr().String(), opened
	s.mu.Unlock()
	br := bufio.NewReader(conn)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		rep, err := request(conn, br, target)
		if err != nil {
			if ctx.Err() == nil {
				record(err)
			}
			return
		}
		s.mu.Lock()
		st := &s.streams[i]
		st.Requests++
		if st.Pod == "" {
			st.Pod, st.Node = rep.Pod, rep.Node
		}
		s.mu.Unlock()
		once.Do(ready)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// request sends one GET on conn and reads the echo reply, within 2 s.
func request(conn net.Conn, br *bufio.Reader, host string) (echo.Reply, error) {
	if err := conn.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return echo.Reply{}, err
	}
	if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
		return echo.Reply{}, err
	}
	resp, err := http.ReadResponse(br, nil)
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
	if resp.Close {
		return echo.Reply{}, errors.New("the server closes the connection")
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
