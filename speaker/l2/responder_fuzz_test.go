package l2

import (
	"bytes"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// FuzzResponderHandle feeds one untrusted frame to a responder that
// announces vip4 and vip6 (and, when it parses, the frame's own target, so
// that the fuzzer reaches the answering path). It must never panic, answer
// at most once, only for an announced address, and every answer must parse
// back as our claim on the requested address. With fixSum the ICMPv6
// checksum is made valid first.
func FuzzResponderHandle(f *testing.F) {
	for _, fix := range []bool{false, true} {
		f.Add(arpRequestFrame(vip4), false, fix)
		f.Add(arpRequestFrame(vip4), true, fix)
		f.Add(nsFrame(f, vip6, nsOpts{}), false, fix)
		f.Add(nsFrame(f, vip6, nsOpts{noSLL: true, trailer: 6}), true, fix)
		for _, g := range mustGratuitous(otherMAC, vip4) {
			f.Add(g, false, fix)
		}
		f.Add([]byte{}, true, fix)
	}
	link, arpConn, ndpConn, _ := NewFakeLink("eth0", ourMAC)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	r, err := New(Config{Link: link, Logger: logr.Discard(), Metrics: m, Gratuitous: []time.Duration{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, frame []byte, announceTarget, fixSum bool) {
		if fixSum {
			fixChecksum(frame)
		}
		for _, family := range []string{"ipv4", "ipv6"} {
			set := addrSet{vip4: {}, vip6: {}}
			p, perr := parse(frame, family)
			if perr == nil && announceTarget && p.target.IsValid() {
				set[p.target] = struct{}{}
			}
			r.announced.Store(&set)
			in := bytes.Clone(frame)
			r.handle(in, family)
			conn := arpConn
			if family == "ipv6" {
				conn = ndpConn
			}
			var sent [][]byte
			for len(conn.Sent()) > 0 {
				sent = append(sent, <-conn.Sent())
			}
			if len(sent) == 0 {
				continue
			}
			if len(sent) > 1 {
				t.Fatalf("%s: %d frames sent for one input", family, len(sent))
			}
			if perr != nil || p.kind != kindRequest {
				t.Fatalf("%s: answered a frame that is not a request (%v, %+v)", family, perr, p)
			}
			if _, ok := set[p.target]; !ok {
				t.Fatalf("%s: answered for %s, which is not announced", family, p.target)
			}
			back, err := parse(sent[0], family)
			if err != nil || back.kind != kindClaim || back.target != p.target || !bytes.Equal(back.claimMAC, ourMAC) {
				t.Fatalf("%s: answer to %+v parses as %+v, %v", family, p, back, err)
			}
		}
	})
}
