package nodeport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Batch queues the operations of one nftables transaction, in model terms;
// Commit sends them atomically. The Applier only talks to a Batch, so the
// diff logic is tested with a recording fake.
type Batch interface {
	AddTable(fam Family, table string)
	DelTable(fam Family, table string)
	AddChain(fam Family, table string, c *Chain)
	DelChain(fam Family, table, chain string)
	FlushChain(fam Family, table, chain string)
	AddRule(fam Family, table, chain string, r Rule) error
	AddSet(fam Family, table string, s *Set) error
	DelSet(fam Family, table, set string)
	AddElements(fam Family, table string, s *Set, els []Element) error
	DelElements(fam Family, table string, s *Set, els []Element) error
	// Commit sends the queued operations as one transaction; an empty
	// batch sends nothing.
	Commit() error
	// Discard drops the queued operations.
	Discard()
	// Tables lists the tables of the family the kernel holds, with the
	// number of chains and sets in each (the table's use count).
	Tables(fam Family) (map[string]uint32, error)
}

// google/nftables v0.3.0 asks for an ack on every message of a batch and
// for an echo of every rule. The kernel then builds and queues one echoed
// rule plus one ack per message: at 10,000 Services that is over 100,000
// replies, a third of the commit time, and the cause of the ENOBUFS trap
// (the replies overflow the socket, yet the batch commits). So Beacon uses
// the library only to marshal tables, chains, sets and elements (its Conn
// dials a capturing fake), marshals rules itself from a cache of encoded
// statements (most statements repeat across rules and syncs), and sends
// each batch on its own socket with neither flag: the kernel then answers
// only errors, and a trailing GETGEN request fences them.

// kernelBatch is the Batch of the KernelApplier.
type kernelBatch struct {
	lib       *nftables.Conn // in capture mode
	libQueued bool           // lib holds operations not yet cut
	captured  []netlink.Message
	pending   []netlink.Message
	sets      map[setRef]*nftables.Set
	stmts     map[stmtKey][]byte
	send      *batchSender
	read      *nftables.Conn
}

type setRef struct {
	fam         Family
	table, name string
}

type stmtKey struct {
	fam Family
	s   Stmt
}

// maxStmtCache bounds the encoded-statement cache; it is dropped when full.
const maxStmtCache = 1 << 18

func newKernelBatch(send *batchSender, read *nftables.Conn) (*kernelBatch, error) {
	b := &kernelBatch{send: send, read: read, sets: map[setRef]*nftables.Set{}, stmts: map[stmtKey][]byte{}}
	lib, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		if req != nil {
			b.captured = append(b.captured[:0], req...)
		}
		return nil, nil // no replies: the library's ack loop sees none
	}))
	if err != nil {
		return nil, fmt.Errorf("nftables marshaller: %w", err)
	}
	b.lib = lib
	return b, nil
}

// cut moves what the library queued, in order, to pending.
func (b *kernelBatch) cut() error {
	if !b.libQueued {
		return nil
	}
	b.libQueued = false
	b.captured = nil
	if err := b.lib.Flush(); err != nil {
		return fmt.Errorf("marshal nftables batch: %w", err)
	}
	if n := len(b.captured); n > 2 { // without batch begin and end
		b.pending = append(b.pending, b.captured[1:n-1]...)
	}
	b.captured = nil
	return nil
}

func (b *kernelBatch) queued() { b.libQueued = true }

func (b *kernelBatch) AddTable(fam Family, table string) {
	b.lib.AddTable(nftTable(fam, table))
	b.queued()
}

func (b *kernelBatch) DelTable(fam Family, table string) {
	b.lib.DelTable(nftTable(fam, table))
	for r := range b.sets {
		if r.fam == fam && r.table == table {
			delete(b.sets, r)
		}
	}
	b.queued()
}

func (b *kernelBatch) AddChain(fam Family, table string, c *Chain) {
	b.lib.AddChain(nftChain(nftTable(fam, table), c))
	b.queued()
}

func (b *kernelBatch) DelChain(fam Family, table, chain string) {
	b.lib.DelChain(&nftables.Chain{Name: chain, Table: nftTable(fam, table)})
	b.queued()
}

func (b *kernelBatch) FlushChain(fam Family, table, chain string) {
	b.lib.FlushChain(&nftables.Chain{Name: chain, Table: nftTable(fam, table)})
	b.queued()
}

func (b *kernelBatch) AddSet(fam Family, table string, s *Set) error {
	ns := nftSet(nftTable(fam, table), fam, s)
	if err := b.lib.AddSet(ns, nil); err != nil {
		return fmt.Errorf("set %s: %w", s.Name, err)
	}
	b.sets[setRef{fam, table, s.Name}] = ns
	b.queued()
	return nil
}

func (b *kernelBatch) DelSet(fam Family, table, set string) {
	b.lib.DelSet(&nftables.Set{Name: set, Table: nftTable(fam, table)})
	delete(b.sets, setRef{fam, table, set})
	b.queued()
}

func (b *kernelBatch) set(fam Family, table string, s *Set) *nftables.Set {
	r := setRef{fam, table, s.Name}
	ns, ok := b.sets[r]
	if !ok {
		ns = nftSet(nftTable(fam, table), fam, s)
		b.sets[r] = ns
	}
	return ns
}

func (b *kernelBatch) AddElements(fam Family, table string, s *Set, els []Element) error {
	b.queued()
	return b.lib.SetAddElements(b.set(fam, table, s), nftElements(fam, s, els))
}

func (b *kernelBatch) DelElements(fam Family, table string, s *Set, els []Element) error {
	b.queued()
	return b.lib.SetDeleteElements(b.set(fam, table, s), nftElements(fam, s, els))
}

func nftElements(fam Family, s *Set, els []Element) []nftables.SetElement {
	out := make([]nftables.SetElement, len(els))
	for i, e := range els {
		out[i] = nftElement(fam, s, e)
	}
	return out
}

// AddRule marshals a NEWRULE message like google/nftables does (without
// the ack and echo flags), from cached statement encodings.
func (b *kernelBatch) AddRule(fam Family, table, chain string, r Rule) error {
	if err := b.cut(); err != nil {
		return err
	}
	if len(b.stmts) > maxStmtCache {
		clear(b.stmts)
	}
	encs := make([][]byte, len(r))
	n := 0
	for i, s := range r {
		enc, ok := b.stmts[stmtKey{fam, s}]
		if !ok {
			ex, err := encodeRule(fam, Rule{s})
			if err != nil {
				return fmt.Errorf("chain %s: %w", chain, err)
			}
			for _, e := range ex {
				m, err := expr.Marshal(byte(fam.nft()), e)
				if err != nil {
					return fmt.Errorf("chain %s: marshal %T: %w", chain, e, err)
				}
				enc = appendAttr(enc, unix.NLA_F_NESTED|unix.NFTA_LIST_ELEM, m)
			}
			b.stmts[stmtKey{fam, s}] = enc
		}
		encs[i] = enc
		n += len(enc)
	}
	data := make([]byte, 0, 4+2*4+align4(len(table)+1)+align4(len(chain)+1)+n)
	data = append(data, byte(fam.nft()), unix.NFNETLINK_V0, 0, 0)
	data = appendStringAttr(data, unix.NFTA_RULE_TABLE, table)
	data = appendStringAttr(data, unix.NFTA_RULE_CHAIN, chain)
	data = binary.NativeEndian.AppendUint16(data, uint16(4+n))
	data = binary.NativeEndian.AppendUint16(data, unix.NLA_F_NESTED|unix.NFTA_RULE_EXPRESSIONS)
	for _, enc := range encs {
		data = append(data, enc...) // attributes are 4-aligned already
	}
	b.pending = append(b.pending, netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE),
			Flags: netlink.Request | netlink.Create | unix.NLM_F_APPEND,
		},
		Data: data,
	})
	return nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// appendStringAttr appends a NUL-terminated string attribute.
func appendStringAttr(b []byte, typ uint16, s string) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(s)+1))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendAttr appends one netlink attribute (host-order header, payload
// padded to 4 bytes).
func appendAttr(b []byte, typ uint16, payload []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(payload)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func (b *kernelBatch) Commit() error {
	err := b.cut()
	msgs := b.pending
	b.pending = nil
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	return b.send.commit(msgs)
}

func (b *kernelBatch) Discard() {
	_ = b.cut()
	b.pending = nil
}

func (b *kernelBatch) Tables(fam Family) (map[string]uint32, error) {
	ts, err := b.read.ListTablesOfFamily(fam.nft())
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint32, len(ts))
	for _, t := range ts {
		// google/nftables v0.3.0 decodes NFTA_TABLE_USE in host byte
		// order; it is big-endian on the wire.
		out[t.Name] = binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Use))
	}
	return out, nil
}

// batchSender sends nf_tables batches on its own netlink socket.
type batchSender struct {
	conn *netlink.Conn
	// stale is set when replies of a batch may be left unread.
	stale bool
}

// maxReportedErrors bounds the errors kept from one failed batch (the
// kernel reports every failing message).
const maxReportedErrors = 5

// fenceTimeout bounds the wait for the kernel's answers to a batch (which
// arrive within microseconds of sendmsg returning).
const fenceTimeout = 30 * time.Second

// commit sends msgs between batch begin and end markers, without ack or
// echo requests, and collects the errors the kernel reports.
func (s *batchSender) commit(msgs []netlink.Message) error {
	marker := func(t uint16) netlink.Message {
		return netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
			Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
		}
	}
	batch := make([]netlink.Message, 0, len(msgs)+2)
	batch = append(batch, marker(unix.NFNL_MSG_BATCH_BEGIN))
	for _, m := range msgs {
		m.Header.Length, m.Header.Sequence, m.Header.PID = 0, 0, 0 // let the socket number them
		m.Header.Flags &^= netlink.Acknowledge | netlink.Echo
		batch = append(batch, m)
	}
	batch = append(batch, marker(unix.NFNL_MSG_BATCH_END))
	if s.stale {
		if err := s.drain(); err != nil {
			return err
		}
	}
	if _, err := s.conn.SendMessages(batch); err != nil {
		return fmt.Errorf("send nftables batch of %d messages: %w", len(msgs), err)
	}
	// The kernel processed the batch within sendmsg and queued an error
	// for each failing message; the fence's answer comes after them.
	fence, err := s.conn.Send(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return fmt.Errorf("send nftables fence: %w", err)
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(fenceTimeout)); err != nil {
		return fmt.Errorf("nftables socket deadline: %w", err)
	}
	var errs []error
	failed := 0
	for {
		replies, err := s.conn.Receive()
		if err != nil {
			failed++
			if len(errs) < maxReportedErrors {
				errs = append(errs, err)
			}
			// Kernel error replies come back as bare errnos; a socket
			// error (ENOBUFS, a timeout) leaves the outcome unknown, and
			// the caller rebuilds from scratch anyway.
			var se *os.SyscallError
			if errors.As(err, &se) || errors.Is(err, os.ErrDeadlineExceeded) {
				s.stale = true
				break
			}
			continue
		}
		done := false
		for _, m := range replies {
			if m.Header.Sequence == fence.Header.Sequence && m.Header.Type == netlink.Error {
				done = true
			}
		}
		if done {
			break
		}
	}
	if failed > 0 {
		return fmt.Errorf("nftables batch of %d messages rejected (%d errors): %w", len(msgs), failed, errors.Join(errs...))
	}
	return nil
}

// drain discards replies left from an earlier batch whose reading was cut
// short (ENOBUFS), so that they are not taken for this batch's.
func (s *batchSender) drain() error {
	for range 1 << 20 {
		// A deadline already past would not even try to read.
		if err := s.conn.SetReadDeadline(time.Now().Add(10 * time.Millisecond)); err != nil {
			return fmt.Errorf("nftables socket deadline: %w", err)
		}
		if _, err := s.conn.Receive(); errors.Is(err, os.ErrDeadlineExceeded) {
			s.stale = false
			return nil
		}
	}
	return errors.New("nftables socket: endless stale replies")
}
