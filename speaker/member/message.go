package member

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is the kind of a message.
type Kind uint8

// Message kinds.
const (
	Beat  Kind = 1
	Leave Kind = 2
)

func (k Kind) String() string {
	switch k {
	case Beat:
		return "beat"
	case Leave:
		return "leave"
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
}

// Wire format, big-endian:
//
//	0  'B' 'C' 'N' version(1)
//	4  kind(1) flags(1) name length(1) reserved(1)
//	8  incarnation(8)
//	16 seq(8)
//	24 name, then with flagTag a 16-byte HMAC-SHA256 of everything before it.
const (
	version    = 1
	headerLen  = 24
	tagLen     = 16
	flagTag    = 1
	maxNameLen = 253 // a Kubernetes node name is a DNS subdomain
	// MaxMessageLen bounds a message on the wire.
	MaxMessageLen = headerLen + maxNameLen + tagLen
)

var magic = [4]byte{'B', 'C', 'N', version}

// Errors of Parse.
var (
	ErrMalformed = errors.New("malformed message")
	ErrAuth      = errors.New("message authentication failed")
)

// Marshal encodes m, tagged with an HMAC when key is not empty.
func (m Message) Marshal(key []byte) ([]byte, error) {
	if m.Kind != Beat && m.Kind != Leave {
		return nil, fmt.Errorf("marshal: unknown kind %d", m.Kind)
	}
	if m.Name == "" || len(m.Name) > maxNameLen {
		return nil, fmt.Errorf("marshal: node name must be 1 to %d bytes, got %d", maxNameLen, len(m.Name))
	}
	b := make([]byte, headerLen, headerLen+len(m.Name)+tagLen)
	copy(b, magic[:])
	b[4] = byte(m.Kind)
	if len(key) > 0 {
		b[5] = flagTag
	}
	b[6] = byte(len(m.Name))
	binary.BigEndian.PutUint64(b[8:], m.Incarnation)
	binary.BigEndian.PutUint64(b[16:], m.Seq)
	b = append(b, m.Name...)
	if len(key) > 0 {
		b = append(b, tag(key, b)...)
	}
	return b, nil
}

// Parse decodes a message. With a key, only messages carrying a valid tag
// for it are accepted; without one, only untagged messages are, so a
// misconfigured key shows up as rejected messages rather than silently.
func Parse(b, key []byte) (Message, error) {
	if len(b) < headerLen || [4]byte(b[:4]) != magic {
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

func tag(key, b []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(b)
	return h.Sum(nil)[:tagLen]
}
