package l2

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
)

// FakeConn is an in-memory Conn for tests: Inject delivers a frame to the
// reader, Sent yields what was written.
type FakeConn struct {
	in        chan []byte
	out       chan []byte
	closed    chan struct{}
	closeOnce sync.Once
}

var _ Conn = (*FakeConn)(nil)

// NewFakeConn returns a FakeConn that buffers up to 1024 written frames.
func NewFakeConn() *FakeConn {
	return &FakeConn{in: make(chan []byte), out: make(chan []byte, 1024), closed: make(chan struct{})}
}

// Inject hands a frame to the next ReadFrame; it blocks until then and
// fails once the conn is closed.
func (c *FakeConn) Inject(frame []byte) error {
	select {
	case c.in <- frame:
		return nil
	case <-c.closed:
		return net.ErrClosed
	}
}

// Sent yields the frames written, in order.
func (c *FakeConn) Sent() <-chan []byte { return c.out }

// ReadFrame implements Conn.
func (c *FakeConn) ReadFrame(b []byte) (int, error) {
	select {
	case f := <-c.in:
		return copy(b, f), nil
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

// WriteFrame implements Conn. It fails rather than block when the test has
// not drained Sent.
func (c *FakeConn) WriteFrame(frame []byte) error {
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	select {
	case c.out <- append([]byte(nil), frame...):
		return nil
	default:
		return errors.New("fake conn: output buffer full")
	}
}

// Close implements Conn.
func (c *FakeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return nil
}

// Closed reports whether Close was called.
func (c *FakeConn) Closed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// FakeGroups records multicast memberships.
type FakeGroups struct {
	mu     sync.Mutex
	joined map[netip.Addr]bool
	// fail lists the groups whose Join fails (see FailJoin).
	fail   map[netip.Addr]bool
	closed bool
}

var _ Groups = (*FakeGroups)(nil)

// NewFakeGroups returns an empty FakeGroups.
func NewFakeGroups() *FakeGroups {
	return &FakeGroups{joined: map[netip.Addr]bool{}, fail: map[netip.Addr]bool{}}
}

// FailJoin makes joining group fail (or succeed again).
func (g *FakeGroups) FailJoin(group netip.Addr, fail bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fail[group] = fail
}

// Joined returns the groups joined, sorted.
func (g *FakeGroups) Joined() []netip.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []netip.Addr
	for a := range g.joined {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Join implements Groups.
func (g *FakeGroups) Join(group netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.closed:
		return net.ErrClosed
	case g.fail[group]:
		return fmt.Errorf("fake: join %s refused", group)
	case g.joined[group]:
		return fmt.Errorf("fake: %s already joined", group)
	}
	g.joined[group] = true
	return nil
}

// Leave implements Groups.
func (g *FakeGroups) Leave(group netip.Addr) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.joined[group] {
		return fmt.Errorf("fake: %s not joined", group)
	}
	delete(g.joined, group)
	return nil
}

// Close implements Groups; it drops every membership, as closing the real
// socket does.
func (g *FakeGroups) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.joined = map[netip.Addr]bool{}
	return nil
}

// NewFakeLink returns a Link with fake sockets for both families.
func NewFakeLink(name string, mac net.HardwareAddr) (*Link, *FakeConn, *FakeConn, *FakeGroups) {
	arp, ndp, groups := NewFakeConn(), NewFakeConn(), NewFakeGroups()
	return &Link{Name: name, MAC: mac, ARP: arp, NDP: ndp, Groups: groups}, arp, ndp, groups
}
