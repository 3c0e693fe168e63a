package member

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/beaconlb/beacon/internal/testenv"
)

var testState = &State{
	NoCarrier: []Link{
		{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24"), netip.MustParsePrefix("2001:db8:100::11/64")}},
		{Name: "eth2"},
	},
	Claims: []netip.Addr{netip.MustParseAddr("198.51.100.201"), netip.MustParseAddr("2001:db8:100::201")},
}

func TestStateRoundTrip(t *testing.T) {
	many := &State{}
	for i := range MaxClaims {
		many.Claims = append(many.Claims, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}))
	}
	for _, key := range [][]byte{nil, []byte("secret")} {
		for _, m := range []Message{
			{Kind: Beat, Name: "node1", Incarnation: 1, Seq: 2, State: &State{}},
			{Kind: Beat, Name: "node1", Incarnation: 1, Seq: 2, State: testState},
			{Kind: Leave, Name: "node1", Incarnation: 1, Seq: 3, State: testState},
			{Kind: Beat, Name: "node1", Incarnation: 1, Seq: 4, State: many},
		} {
			b, err := m.Marshal(key)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MaxMessageLen {
				t.Fatalf("%d bytes, more than MaxMessageLen %d", len(b), MaxMessageLen)
			}
			got, err := Parse(b, key)
			if err != nil || !reflect.DeepEqual(got, m) {
				t.Fatalf("key %q: Parse(Marshal(%+v)) = %+v, %v", key, m, got, err)
			}
		}
	}
}

// Version 2 is shared by speakers of different versions too: pin it.
func TestStateWireFormat(t *testing.T) {
	b, err := Message{Kind: Beat, Name: "n1", Incarnation: 1, Seq: 2, State: &State{
		NoCarrier: []Link{{Name: "e0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}}},
		Claims:    []netip.Addr{netip.MustParseAddr("198.51.100.201")},
	}}.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "42434e02" + "01000200" + "0000000000000001" + "0000000000000002" + "6e31" +
		"01" + "02" + "6530" + "01" + "18" + "04" + "c633640b" +
		"0001" + "04" + "c63364c9"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("wire = %s\nwant   %s", got, want)
	}
}

func TestStateParseRejects(t *testing.T) {
	good, _ := Message{Kind: Beat, Name: "n1", Incarnation: 1, Seq: 2, State: testState}.Marshal(nil)
	body := headerLen + 2
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated state", good[:len(good)-1]},
		{"no state", good[:body]},
		{"trailing byte", append(slices.Clone(good), 0)},
		{"too many links", append(slices.Clone(good[:body]), MaxLinks+1)},
		{"empty link name", append(slices.Clone(good[:body]), 1, 0, 0, 0, 0)},
		{"bad address length", append(slices.Clone(good[:body]), 0, 0, 1, 5, 1, 2, 3, 4, 5)},
		{"prefix too long", append(slices.Clone(good[:body]), 1, 1, 'e', 1, 33, 4, 1, 2, 3, 4, 0, 0)},
		{"too many claims", binary.BigEndian.AppendUint16(append(slices.Clone(good[:body]), 0), MaxClaims+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.b, nil); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse = %v, want %v", err, ErrMalformed)
			}
		})
	}
	tooMany := &State{Claims: make([]netip.Addr, MaxClaims+1)}
	if _, err := (Message{Kind: Beat, Name: "n1", State: tooMany}).Marshal(nil); err == nil {
		t.Error("Marshal accepted too many claims")
	}
	// The tag covers the state.
	key := []byte("k")
	tagged, _ := Message{Kind: Beat, Name: "n1", Incarnation: 1, Seq: 2, State: testState}.Marshal(key)
	tagged[len(tagged)-tagLen-1] ^= 1
	if _, err := Parse(tagged, key); !errors.Is(err, ErrAuth) {
		t.Fatalf("Parse of a changed claim = %v, want %v", err, ErrAuth)
	}
}

func TestTableState(t *testing.T) {
	now := time.Unix(1000, 0)
	tb := NewTable("self", time.Second, now)
	st := func(claims ...string) *State {
		s := &State{}
		for _, c := range claims {
			s.Claims = append(s.Claims, netip.MustParseAddr(c))
		}
		return s
	}
	steps := []struct {
		name    string
		msg     Message
		changed bool
		want    *State
	}{
		{"version 1 beat: alive, no state", Message{Kind: Beat, Name: "p", Incarnation: 1, Seq: 1}, true, nil},
		{"version 2 beat: state", Message{Kind: Beat, Name: "p", Incarnation: 1, Seq: 2, State: st("198.51.100.201")}, true, st("198.51.100.201")},
		{"same state: no change", Message{Kind: Beat, Name: "p", Incarnation: 1, Seq: 3, State: st("198.51.100.201")}, false, st("198.51.100.201")},
		{"version 1 copy keeps the state", Message{Kind: Beat, Name: "p", Incarnation: 1, Seq: 4}, false, st("198.51.100.201")},
		{"claim dropped", Message{Kind: Beat, Name: "p", Incarnation: 1, Seq: 5, State: st()}, true, st()},
		{"stale state ignored", Message{Kind: Beat, Name: "p", Incarnation: 1, Seq: 5, State: st("198.51.100.202")}, false, st()},
		{"restart as an older version: state gone", Message{Kind: Beat, Name: "p", Incarnation: 2, Seq: 1}, true, nil},
		{"upgraded again", Message{Kind: Beat, Name: "p", Incarnation: 3, Seq: 1, State: st("198.51.100.203")}, true, st("198.51.100.203")},
	}
	for _, s := range steps {
		now = now.Add(10 * time.Millisecond)
		if got := tb.Receive(s.msg, now); got != s.changed {
			t.Fatalf("%s: changed = %v, want %v", s.name, got, s.changed)
		}
		p := tb.Peers()[0]
		if !reflect.DeepEqual(p.State, s.want) || tb.SpeaksState("p") != (s.want != nil) {
			t.Fatalf("%s: state %+v, want %+v", s.name, p.State, s.want)
		}
	}
}

// recording counts, per destination, the versions of the messages sent.
type recording struct {
	net.PacketConn
	mu   sync.Mutex
	sent map[string][]byte // destination -> versions, in order
}

func (r *recording) WriteTo(b []byte, addr net.Addr) (int, error) {
	r.mu.Lock()
	r.sent[addr.String()] = append(r.sent[addr.String()], b[3])
	r.mu.Unlock()
	return r.PacketConn.WriteTo(b, addr)
}

func (r *recording) versions(to string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent[to])
}

// A speaker of this version and one of version 1 (the parser below is
// version 1's, frozen) see each other alive; two speakers of this version
// exchange their state and stop sending version 1 to each other, and with
// watchers version 2 too.
func TestMixedVersions(t *testing.T) {
	for _, watchers := range []int{0, 3} {
		t.Run(fmt.Sprintf("watchers=%d", watchers), func(t *testing.T) { testMixedVersions(t, watchers) })
	}
}

func testMixedVersions(t *testing.T, watchers int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	listen := func() net.PacketConn {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return pc
	}
	oldConn := listen()
	defer func() { _ = oldConn.Close() }()
	addr := func(pc net.PacketConn) netip.AddrPort { return pc.LocalAddr().(*net.UDPAddr).AddrPort() }
	var new1, new2 *recording
	var members []*Member
	peers := map[string]netip.AddrPort{"old": addr(oldConn)}
	for _, name := range []string{"new1", "new2"} {
		r := &recording{PacketConn: listen(), sent: map[string][]byte{}}
		m, err := New(Config{Name: name, Conn: r, Watchers: watchers, Logger: testr.New(t).WithName(name)})
		if err != nil {
			t.Fatal(err)
		}
		peers[name] = addr(r)
		members = append(members, m)
		if new1 == nil {
			new1 = r
		} else {
			new2 = r
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, m := range members {
		m.SetPeers(peers)
		wg.Go(func() {
			if err := m.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	// The old speaker: version 1 beats to both, version 1 parsing.
	var oldAccepted, oldRejected sync.Map // sender -> count
	count := func(m *sync.Map, k string) int {
		v, _ := m.Load(k)
		n, _ := v.(int)
		return n
	}
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := oldConn.ReadFrom(buf)
			if err != nil {
				return
			}
			if msg, err := parseV1(buf[:n], nil); err == nil {
				oldAccepted.Store(msg.Name, count(&oldAccepted, msg.Name)+1)
			} else {
				oldRejected.Store(string(buf[headerLen:headerLen+int(buf[6])]), count(&oldRejected, string(buf[headerLen:headerLen+int(buf[6])]))+1)
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(DefaultInterval)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			b, _ := Message{Kind: Beat, Name: "old", Incarnation: 7, Seq: seq}.Marshal(nil)
			for _, n := range []string{"new1", "new2"} {
				_, _ = oldConn.WriteTo(b, net.UDPAddrFromAddrPort(peers[n]))
			}
			select {
			case <-ctx.Done():
				_ = oldConn.Close()
				return
			case <-tick.C:
			}
		}
	})

	members[0].SetClaims([]netip.Addr{netip.MustParseAddr("198.51.100.201")})
	members[0].SetNoCarrier([]Link{{Name: "eth0", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.11/24")}}})
	testenv.Poll(t, ctx, 10*time.Millisecond, 5*time.Second, "everyone alive, state exchanged", func() (bool, string) {
		st, ok := members[1].State("new1")
		_, oldOK := members[0].State("old")
		view := fmt.Sprintf("new1 sees %v, new2 sees %v, new1's state at new2 %+v (%v), old's state at new1 reported: %v, old accepted %d/%d",
			members[0].AliveNames(), members[1].AliveNames(), st, ok, oldOK, count(&oldAccepted, "new1"), count(&oldAccepted, "new2"))
		return slices.Equal(members[0].AliveNames(), []string{"new1", "new2", "old"}) &&
			slices.Equal(members[1].AliveNames(), []string{"new1", "new2", "old"}) &&
			ok && len(st.Claims) == 1 && len(st.NoCarrier) == 1 && !oldOK &&
			count(&oldAccepted, "new1") >= 10 && count(&oldAccepted, "new2") >= 10, view
	})
	// The old speaker keeps getting version 1 (and drops version 2);
	// between new speakers, version 1 stopped after the first beats.
	before := count(&oldAccepted, "new1")
	testenv.Poll(t, ctx, 10*time.Millisecond, 2*time.Second, "old keeps hearing new1", func() (bool, string) {
		return count(&oldAccepted, "new1") >= before+5, fmt.Sprint(count(&oldAccepted, "new1"))
	})
	if count(&oldRejected, "new1") == 0 {
		t.Error("the old speaker rejected no version 2 message: the test does not exercise it")
	}
	for _, c := range []struct {
		r  *recording
		to netip.AddrPort
	}{{new1, peers["new2"]}, {new2, peers["new1"]}} {
		v := c.r.versions(c.to.String())
		latest := byte(version2)
		if watchers > 0 {
			latest = version3
		}
		if len(v) < 12 || slices.ContainsFunc(v[len(v)-10:], func(b byte) bool { return b != latest }) {
			t.Errorf("versions sent to %s: %v, want only %d at last", c.to, v, latest)
		}
	}
	if v := new1.versions(peers["old"].String()); len(v) < 20 || !slices.Contains(v[len(v)-10:], version1) {
		t.Errorf("versions sent to the old speaker: %v", v)
	}
}

// parseV1 is Parse of version 1 as released (frozen): what an older speaker
// runs.
func parseV1(b, key []byte) (Message, error) {
	if len(b) < headerLen || [4]byte(b[:4]) != [4]byte{'B', 'C', 'N', 1} {
		return Message{}, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	kind, flags, n := Kind(b[4]), b[5], int(b[6])
	if kind != Beat && kind != Leave {
		return Message{}, fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
	}
	if flags&^flagTag != 0 || b[7] != 0 || n == 0 {
		return Message{}, fmt.Errorf("%w: bad flags or name length", ErrMalformed)
	}
	want := headerLen + n
	if flags&flagTag != 0 {
		want += tagLen
	}
	if len(b) != want {
		return Message{}, fmt.Errorf("%w: length %d, want %d", ErrMalformed, len(b), want)
	}
	switch tagged := flags&flagTag != 0; {
	case len(key) > 0 && !tagged:
		return Message{}, fmt.Errorf("%w: message is not authenticated", ErrAuth)
	case len(key) == 0 && tagged:
		return Message{}, fmt.Errorf("%w: message is authenticated but no key is configured", ErrAuth)
	case tagged && !hmac.Equal(tag(key, b[:headerLen+n]), b[headerLen+n:]):
		return Message{}, fmt.Errorf("%w: bad tag", ErrAuth)
	}
	return Message{
		Kind:        kind,
		Name:        string(b[headerLen : headerLen+n]),
		Incarnation: binary.BigEndian.Uint64(b[8:]),
		Seq:         binary.BigEndian.Uint64(b[16:]),
	}, nil
}
