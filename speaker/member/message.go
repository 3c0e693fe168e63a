package member

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Kind is the kind of a message.
type Kind uint8

// Message kinds.
const (
	Beat  Kind = 1
	Leave Kind = 2
	// Dead says that a watched peer went silent (version 3 only).
	Dead Kind = 3
)

func (k Kind) String() string {
	switch k {
	case Beat:
		return "beat"
	case Leave:
		return "leave"
	case Dead:
		return "dead"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Message is one heartbeat or leave notice.
type Message struct {
	Kind Kind
	// Name is the sender's node name.
	Name string
	// Incarnation identifies the sender process: its start time in Unix
	// nanoseconds. A restarted speaker has a larger one.
	Incarnation uint64
	// Seq increases with every message of one incarnation.
	Seq uint64
	// State is the sender's link and claim state. A message with State is
	// encoded as version 2; without, as version 1, which every speaker
	// version parses.
	State *State
	// V3 encodes the message as version 3, which carries the flags below,
	// the Dead kind, and State (an empty one when nil). Parse sets it.
	V3 bool
	// Watch asks the receiver to expect this sender's beats every
	// interval and to declare it dead after its silence; a version 3 beat
	// without it releases the receiver from watching.
	Watch bool
	// Hello asks the receiver for a version 3 beat back: the sender does
	// not know yet that the receiver speaks version 3.
	Hello bool
	// Ack answers a hello: the sender heard this receiver's current
	// process greet it.
	Ack bool
	// Subject is the peer a Dead message is about.
	Subject Subject
}

// Subject identifies a peer's process and the last message a watcher had
// from it.
type Subject struct {
	Name        string
	Incarnation uint64
	Seq         uint64
}

// State is what a speaker reports about itself beyond being alive.
type State struct {
	// NoCarrier lists its interfaces that have lost carrier, by name.
	NoCarrier []Link
	// Claims are the addresses it announces that do not fail back, sorted.
	Claims []netip.Addr
}

// Link is an interface without carrier and its connected prefixes.
type Link struct {
	Name     string
	Prefixes []netip.Prefix
}

// Equal reports whether two states are the same.
func (s State) Equal(o State) bool {
	return slices.Equal(s.Claims, o.Claims) && slices.EqualFunc(s.NoCarrier, o.NoCarrier, func(a, b Link) bool {
		return a.Name == b.Name && slices.Equal(a.Prefixes, b.Prefixes)
	})
}

// Wire format, big-endian:
//
//	0  'B' 'C' 'N' version(1)
//	4  kind(1) flags(1) name length(1) reserved(1)
//	8  incarnation(8)
//	16 seq(8)
//	24 name, then in version 2 the state, then with flagTag a 16-byte
//	   HMAC-SHA256 of everything before it.
//
// The version 2 state is
//
//	links(1), each: name length(1) name prefixes(1), each: bits(1) address
//	claims(2), each: address
//
// where an address is its length (4 or 16) and its bytes.
//
// A version 1 speaker rejects version 2 messages, so a version 2 speaker
// sends version 1 too to every peer it has not yet heard version 2 from
// (see Member.Run).
//
// Version 3 has the flags watch, hello and ack, and the kind dead. A beat or a
// leave carries the state as in version 2; a dead message carries instead
//
//	subject name length(1) name incarnation(8) seq(8)
//
// Versions 1 and 2 reject version 3 messages (its header), so a version 3
// speaker sends the older versions too to every peer it has not yet heard
// version 3 from.
const (
	version1   = 1
	version2   = 2
	version3   = 3
	headerLen  = 24
	tagLen     = 16
	flagTag    = 1
	flagWatch  = 2
	flagHello  = 4
	flagAck    = 8
	maxNameLen = 253 // a Kubernetes node name is a DNS subdomain
	// MaxLinks, MaxPrefixes and MaxClaims bound a state.
	MaxLinks    = 32
	MaxPrefixes = 16
	MaxClaims   = 2048
	maxIfName   = 15 // IFNAMSIZ - 1
	maxAddrLen  = 1 + 16
	// MaxMessageLen bounds a message on the wire.
	MaxMessageLen = headerLen + maxNameLen +
		1 + MaxLinks*(1+maxIfName+1+MaxPrefixes*(1+maxAddrLen)) +
		2 + MaxClaims*maxAddrLen + tagLen
)

// Errors of Parse.
var (
	ErrMalformed = errors.New("malformed message")
	ErrAuth      = errors.New("message authentication failed")
)

// Marshal encodes m, tagged with an HMAC when key is not empty.
func (m Message) Marshal(key []byte) ([]byte, error) {
	if m.Kind != Beat && m.Kind != Leave && (m.Kind != Dead || !m.V3) {
		return nil, fmt.Errorf("marshal: unknown kind %d", m.Kind)
	}
	if !m.V3 && (m.Watch || m.Hello || m.Ack) {
		return nil, errors.New("marshal: flags need version 3")
	}
	if m.Name == "" || len(m.Name) > maxNameLen {
		return nil, fmt.Errorf("marshal: node name must be 1 to %d bytes, got %d", maxNameLen, len(m.Name))
	}
	b := make([]byte, headerLen, headerLen+len(m.Name)+tagLen)
	copy(b, "BCN")
	b[3] = version1
	switch {
	case m.V3:
		b[3] = version3
	case m.State != nil:
		b[3] = version2
	}
	b[4] = byte(m.Kind)
	if len(key) > 0 {
		b[5] = flagTag
	}
	if m.Watch {
		b[5] |= flagWatch
	}
	if m.Hello {
		b[5] |= flagHello
	}
	if m.Ack {
		b[5] |= flagAck
	}
	b[6] = byte(len(m.Name))
	binary.BigEndian.PutUint64(b[8:], m.Incarnation)
	binary.BigEndian.PutUint64(b[16:], m.Seq)
	b = append(b, m.Name...)
	switch {
	case m.Kind == Dead:
		if m.Subject.Name == "" || len(m.Subject.Name) > maxNameLen {
			return nil, fmt.Errorf("marshal: subject name must be 1 to %d bytes", maxNameLen)
		}
		b = append(b, byte(len(m.Subject.Name)))
		b = append(b, m.Subject.Name...)
		b = binary.BigEndian.AppendUint64(b, m.Subject.Incarnation)
		b = binary.BigEndian.AppendUint64(b, m.Subject.Seq)
	case m.V3 && m.State == nil:
		b = append(b, 0, 0, 0) // no links, no claims
	case m.State != nil:
		var err error
		if b, err = m.State.append(b); err != nil {
			return nil, fmt.Errorf("marshal: %w", err)
		}
	}
	if len(key) > 0 {
		b = append(b, tag(key, b)...)
	}
	return b, nil
}

// Parse decodes a message. With a key, only messages carrying a valid tag
// for it are accepted; without one, only untagged messages are, so a
// misconfigured key shows up as rejected messages rather than silently.
func Parse(b, key []byte) (Message, error) {
	if len(b) < headerLen || string(b[:3]) != "BCN" || b[3] < version1 || b[3] > version3 {
		return Message{}, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	v3 := b[3] == version3
	kind, flags, n := Kind(b[4]), b[5], int(b[6])
	if kind != Beat && kind != Leave && (kind != Dead || !v3) {
		return Message{}, fmt.Errorf("%w: unknown kind %d", ErrMalformed, kind)
	}
	known := byte(flagTag)
	if v3 {
		known |= flagWatch | flagHello | flagAck
	}
	if flags&^known != 0 || b[7] != 0 || n == 0 {
		return Message{}, fmt.Errorf("%w: bad flags or name length", ErrMalformed)
	}
	tagged := flags&flagTag != 0
	end := len(b) // of the signed part
	if tagged {
		end -= tagLen
	}
	if end < headerLen+n || (b[3] == version1 && end != headerLen+n) {
		return Message{}, fmt.Errorf("%w: length %d", ErrMalformed, len(b))
	}
	switch {
	case len(key) > 0 && !tagged:
		return Message{}, fmt.Errorf("%w: message is not authenticated", ErrAuth)
	case len(key) == 0 && tagged:
		return Message{}, fmt.Errorf("%w: message is authenticated but no key is configured", ErrAuth)
	case tagged && !hmac.Equal(tag(key, b[:end]), b[end:]):
		return Message{}, fmt.Errorf("%w: bad tag", ErrAuth)
	}
	m := Message{
		Kind:        kind,
		Name:        string(b[headerLen : headerLen+n]),
		Incarnation: binary.BigEndian.Uint64(b[8:]),
		Seq:         binary.BigEndian.Uint64(b[16:]),
		V3:          v3,
		Watch:       flags&flagWatch != 0,
		Hello:       flags&flagHello != 0,
		Ack:         flags&flagAck != 0,
	}
	switch {
	case kind == Dead:
		s, err := parseSubject(b[headerLen+n : end])
		if err != nil {
			return Message{}, fmt.Errorf("%w: subject: %w", ErrMalformed, err)
		}
		m.Subject = s
	case b[3] >= version2:
		st, err := parseState(b[headerLen+n : end])
		if err != nil {
			return Message{}, fmt.Errorf("%w: state: %w", ErrMalformed, err)
		}
		m.State = &st
	}
	return m, nil
}

func (s *State) append(b []byte) ([]byte, error) {
	if len(s.NoCarrier) > MaxLinks || len(s.Claims) > MaxClaims {
		return nil, fmt.Errorf("state: %d links, %d claims: at most %d and %d", len(s.NoCarrier), len(s.Claims), MaxLinks, MaxClaims)
	}
	b = append(b, byte(len(s.NoCarrier)))
	for _, l := range s.NoCarrier {
		if l.Name == "" || len(l.Name) > maxIfName || len(l.Prefixes) > MaxPrefixes {
			return nil, fmt.Errorf("state: link %q with %d prefixes", l.Name, len(l.Prefixes))
		}
		b = append(b, byte(len(l.Name)))
		b = append(b, l.Name...)
		b = append(b, byte(len(l.Prefixes)))
		for _, p := range l.Prefixes {
			if !p.IsValid() {
				return nil, fmt.Errorf("state: link %q: invalid prefix", l.Name)
			}
			b = append(b, byte(p.Bits()))
			b = appendAddr(b, p.Addr())
		}
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Claims)))
	for _, a := range s.Claims {
		if !a.IsValid() {
			return nil, errors.New("state: invalid claim")
		}
		b = appendAddr(b, a)
	}
	return b, nil
}

func appendAddr(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	s := a.AsSlice()
	b = append(b, byte(len(s)))
	return append(b, s...)
}

// reader consumes a version 2 state; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errors.New("truncated")
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() int {
	if b := r.bytes(1); b != nil {
		return int(b[0])
	}
	return 0
}

func (r *reader) addr() netip.Addr {
	n := r.byte()
	if r.err == nil && n != 4 && n != 16 {
		r.err = fmt.Errorf("address length %d", n)
	}
	a, _ := netip.AddrFromSlice(r.bytes(n))
	return a
}

func parseState(b []byte) (State, error) {
	r := &reader{b: b}
	var s State
	links := r.byte()
	if links > MaxLinks {
		return State{}, fmt.Errorf("%d links", links)
	}
	for range links {
		var l Link
		n := r.byte()
		if r.err == nil && (n == 0 || n > maxIfName) {
			return State{}, fmt.Errorf("link name length %d", n)
		}
		l.Name = string(r.bytes(n))
		prefixes := r.byte()
		if prefixes > MaxPrefixes {
			return State{}, fmt.Errorf("%d prefixes", prefixes)
		}
		for range prefixes {
			bits := r.byte()
			a := r.addr()
			if r.err != nil {
				break
			}
			p, err := a.Prefix(bits)
			if err != nil || p.Bits() != bits {
				return State{}, fmt.Errorf("prefix %v/%d", a, bits)
			}
			l.Prefixes = append(l.Prefixes, netip.PrefixFrom(a, bits))
		}
		s.NoCarrier = append(s.NoCarrier, l)
	}
	var claims int
	if c := r.bytes(2); c != nil {
		claims = int(binary.BigEndian.Uint16(c))
	}
	if claims > MaxClaims {
		return State{}, fmt.Errorf("%d claims", claims)
	}
	for range claims {
		a := r.addr()
		if r.err != nil {
			break
		}
		s.Claims = append(s.Claims, a)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return s, r.err
}

func parseSubject(b []byte) (Subject, error) {
	r := &reader{b: b}
	n := r.byte()
	if r.err == nil && n == 0 {
		return Subject{}, errors.New("empty name")
	}
	s := Subject{Name: string(r.bytes(n))}
	if inc := r.bytes(8); inc != nil {
		s.Incarnation = binary.BigEndian.Uint64(inc)
	}
	if seq := r.bytes(8); seq != nil {
		s.Seq = binary.BigEndian.Uint64(seq)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	return s, r.err
}

func tag(key, b []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(nil)[:tagLen]
}
