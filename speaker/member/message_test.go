package member

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("secret")} {
		for _, m := range []Message{
			{Kind: Beat, Name: "node1", Incarnation: 1, Seq: 2},
			{Kind: Leave, Name: strings.Repeat("n", maxNameLen), Incarnation: 1<<63 + 5, Seq: 1<<64 - 1},
		} {
			b, err := m.Marshal(key)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b, key)
			if err != nil || got != m {
				t.Fatalf("key %q: Parse(Marshal(%+v)) = %+v, %v", key, m, got, err)
			}
		}
	}
}

// The wire format is shared by speakers of different versions: pin it.
func TestMessageWireFormat(t *testing.T) {
	b, err := Message{Kind: Beat, Name: "n1", Incarnation: 0x0102030405060708, Seq: 9}.Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(b), "42434e01"+"01000200"+"0102030405060708"+"0000000000000009"+"6e31"; got != want {
		t.Fatalf("wire = %s, want %s", got, want)
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := Message{Kind: Beat, Name: "node1", Incarnation: 1, Seq: 1}.Marshal(nil)
	tagged, _ := Message{Kind: Beat, Name: "node1", Incarnation: 1, Seq: 1}.Marshal([]byte("k1"))
	mutate := func(b []byte, i int, v byte) []byte {
		c := bytes.Clone(b)
		c[i] = v
		return c
	}
	for _, tc := range []struct {
		name string
		b    []byte
		key  []byte
		want error
	}{
		{"empty", nil, nil, ErrMalformed},
		{"short", good[:10], nil, ErrMalformed},
		{"bad magic", mutate(good, 0, 'X'), nil, ErrMalformed},
		{"other version", mutate(good, 3, 2), nil, ErrMalformed},
		{"unknown kind", mutate(good, 4, 9), nil, ErrMalformed},
		{"unknown flag", mutate(good, 5, 2), nil, ErrMalformed},
		{"reserved byte", mutate(good, 7, 1), nil, ErrMalformed},
		{"zero name length", mutate(good, 6, 0), nil, ErrMalformed},
		{"name longer than packet", mutate(good, 6, 200), nil, ErrMalformed},
		{"trailing bytes", append(bytes.Clone(good), 0), nil, ErrMalformed},
		{"untagged with key", good, []byte("k1"), ErrAuth},
		{"tagged without key", tagged, nil, ErrAuth},
		{"wrong key", tagged, []byte("k2"), ErrAuth},
		{"tampered", mutate(tagged, 20, 0xff), []byte("k1"), ErrAuth},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Parse(tc.b, tc.key); !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestMarshalRejects(t *testing.T) {
	for _, m := range []Message{
		{Kind: 0, Name: "a"},
		{Kind: Beat},
		{Kind: Beat, Name: strings.Repeat("n", maxNameLen+1)},
	} {
		if _, err := m.Marshal(nil); err == nil {
			t.Errorf("Marshal(%+v) succeeded", m)
		}
	}
}

// FuzzParse checks that Parse never panics and that what it accepts
// re-encodes to the same bytes.
func FuzzParse(f *testing.F) {
	for _, key := range []string{"", "k"} {
		for _, m := range []Message{
			{Kind: Beat, Name: "node1", Incarnation: 1, Seq: 2},
			{Kind: Leave, Name: "a", Incarnation: 1 << 62, Seq: 1},
		} {
			b, _ := m.Marshal([]byte(key))
			f.Add(b, key)
		}
	}
	f.Add([]byte("BCN\x01"), "")
	f.Add([]byte{}, "k")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		m, err := Parse(b, []byte(key))
		if err != nil {
			return
		}
		again, err := m.Marshal([]byte(key))
		if err != nil {
			t.Fatalf("accepted %x but cannot re-encode %+v: %v", b, m, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, re-encodes to %x", b, again)
		}
	})
}
