package nodeport

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
)

// fakeBatch records queued operations and keeps just enough state (which
// chains and sets exist) to answer TableUse like the kernel.
type fakeBatch struct {
	queued   []string
	flushed  [][]string
	objects  map[string]map[string]bool // "ip beacon" -> "chain x" / "set y"
	failNext error
}

func newFakeNFT() *fakeBatch { return &fakeBatch{objects: map[string]map[string]bool{}} }

func (f *fakeBatch) op(format string, a ...any) {
	f.queued = append(f.queued, fmt.Sprintf(format, a...))
}

func (f *fakeBatch) AddTable(fam Family, t string) { f.op("add table %s %s", fam, t) }
func (f *fakeBatch) DelTable(fam Family, t string) { f.op("delete table %s %s", fam, t) }
func (f *fakeBatch) AddChain(fam Family, t string, c *Chain) {
	f.op("add chain %s %s %s", fam, t, c.Name)
}
func (f *fakeBatch) DelChain(fam Family, t, c string)   { f.op("delete chain %s %s %s", fam, t, c) }
func (f *fakeBatch) FlushChain(fam Family, t, c string) { f.op("flush chain %s %s %s", fam, t, c) }
func (f *fakeBatch) AddRule(fam Family, t, c string, r Rule) error {
	if _, err := encodeRule(fam, r); err != nil {
		return err
	}
	f.op("add rule %s %s %s", fam, t, c)
	return nil
}
func (f *fakeBatch) AddSet(fam Family, t string, s *Set) error {
	f.op("add set %s %s %s", fam, t, s.Name)
	return nil
}
func (f *fakeBatch) DelSet(fam Family, t, s string) { f.op("delete set %s %s %s", fam, t, s) }
func (f *fakeBatch) AddElements(fam Family, t string, s *Set, v []Element) error {
	if len(v) > MaxElementsPerCall {
		return fmt.Errorf("%d elements in one call", len(v))
	}
	f.op("add element %s %s %s %d", fam, t, s.Name, len(v))
	return nil
}
func (f *fakeBatch) DelElements(fam Family, t string, s *Set, v []Element) error {
	f.op("delete element %s %s %s %d", fam, t, s.Name, len(v))
	return nil
}
func (f *fakeBatch) Discard() { f.queued = nil }

func (f *fakeBatch) Commit() error {
	q := f.queued
	f.queued = nil
	if len(q) == 0 {
		return nil
	}
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	f.flushed = append(f.flushed, q)
	for _, op := range q {
		w := strings.Fields(op)
		switch {
		case w[0] == "add" && w[1] == "table":
			if f.objects[w[2]+" "+w[3]] == nil {
				f.objects[w[2]+" "+w[3]] = map[string]bool{}
			}
		case w[0] == "delete" && w[1] == "table":
			delete(f.objects, w[2]+" "+w[3])
		case w[0] == "add" && (w[1] == "chain" || w[1] == "set"):
			f.objects[w[2]+" "+w[3]][w[1]+" "+w[4]] = true
		case w[0] == "delete" && (w[1] == "chain" || w[1] == "set"):
			delete(f.objects[w[2]+" "+w[3]], w[1]+" "+w[4])
		}
	}
	return nil
}

func (f *fakeBatch) Tables(fam Family) (map[string]uint32, error) {
	out := map[string]uint32{}
	for k, objs := range f.objects {
		if name, ok := strings.CutPrefix(k, fam.String()+" "); ok {
			out[name] = uint32(len(objs))
		}
	}
	return out, nil
}

func lastFlush(f *fakeBatch) []string {
	if len(f.flushed) == 0 {
		return nil
	}
	return f.flushed[len(f.flushed)-1]
}

func TestApplierFullThenIncremental(t *testing.T) {
	f := newFakeNFT()
	a := NewApplier(f, nil, testr.New(t))
	in := fixture()
	in.Shards = 1
	f.objects["ip beacon-svc7"] = map[string]bool{} // left from a run with more shards
	st, err := a.Apply(Build(in))
	if err != nil || !st.Full {
		t.Fatalf("first apply: %+v %v", st, err)
	}
	ops := lastFlush(f)
	// The full rebuild replaces all of Beacon's tables atomically,
	// whatever exists.
	if want := []string{
		"add table ip beacon", "delete table ip beacon",
		"add table ip beacon-svc0", "delete table ip beacon-svc0",
		"add table ip beacon-svc7", "delete table ip beacon-svc7",
		"add table ip6 beacon", "delete table ip6 beacon",
		"add table ip6 beacon-svc0", "delete table ip6 beacon-svc0",
		"add table ip beacon",
	}; !slices.Equal(ops[:11], want) {
		t.Errorf("full sync starts with %q, want %q", ops[:11], want)
	}

	// Nothing changed: nothing sent.
	n := len(f.flushed)
	if st, err := a.Apply(Build(in)); err != nil || st.Full || len(f.flushed) != n {
		t.Fatalf("no-op apply: %+v %v, %d flushes", st, err, len(f.flushed)-n)
	}

	// One endpoint goes: only that service's chains are rewritten.
	web := &in.Services[0]
	web.Endpoints = slices.DeleteFunc(slices.Clone(web.Endpoints), func(e Endpoint) bool { return e.Addr == netip.MustParseAddr("198.18.2.2") })
	st, err = a.Apply(Build(in))
	if err != nil || st.Full {
		t.Fatalf("incremental apply: %+v %v", st, err)
	}
	want := []string{
		"flush chain ip beacon-svc0 svc-default/web/tcp/80",
		"add rule ip beacon-svc0 svc-default/web/tcp/80",
	}
	if got := lastFlush(f); !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q", got, want)
	}

	// A new Service: its chain, then the elements pointing to it.
	in.Services = append(in.Services, Service{
		Namespace: "default", Name: "new", ClusterIPs: addrs("198.19.0.99"),
		Ports:     []Port{{Protocol: UDP, Port: 53}},
		Endpoints: []Endpoint{ep("198.18.1.99", "node1", EndpointPort{Protocol: UDP, Port: 53})},
	})
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"add element ip beacon hairpin 1",
		"add chain ip beacon-svc0 svc-default/new/udp/53",
		"add rule ip beacon-svc0 svc-default/new/udp/53",
		"add element ip beacon-svc0 service-ips 1",
	}
	if got := lastFlush(f); !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q", got, want)
	}

	// And it goes away again: references first, then the chain.
	in.Services = in.Services[:len(in.Services)-1]
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	want = []string{
		"delete element ip beacon hairpin 1",
		"delete element ip beacon-svc0 service-ips 1",
		"flush chain ip beacon-svc0 svc-default/new/udp/53",
		"delete chain ip beacon-svc0 svc-default/new/udp/53",
	}
	if got := lastFlush(f); !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q", got, want)
	}
}

// With several shards, a Service alone in its shard brings its table and
// takes it away; the other shards are not touched.
func TestApplierShardTables(t *testing.T) {
	f := newFakeNFT()
	a := NewApplier(f, nil, testr.New(t))
	in := fixture()
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	// Find a name whose shard no fixture Service uses.
	used := map[int]bool{}
	for _, s := range in.Services {
		used[ShardOf(s.Namespace, s.Name, DefaultShards)] = true
	}
	name := ""
	for i := 0; name == ""; i++ {
		if n := fmt.Sprintf("new%d", i); !used[ShardOf("default", n, DefaultShards)] {
			name = n
		}
	}
	shard := ShardTableName(ShardOf("default", name, DefaultShards))
	in.Services = append(in.Services, Service{
		Namespace: "default", Name: name, ClusterIPs: addrs("198.19.0.99"),
		Ports:     []Port{{Protocol: TCP, Port: 80}},
		Endpoints: []Endpoint{ep("198.18.2.99", "node2", EndpointPort{Protocol: TCP, Port: 80})},
	})
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	for _, op := range lastFlush(f) {
		if !strings.HasPrefix(op, "add ") || !strings.Contains(op, " ip "+shard+" ") && !strings.HasSuffix(op, " ip "+shard) {
			t.Errorf("op %q outside the new shard table %s", op, shard)
		}
	}
	if ops := lastFlush(f); len(ops) == 0 || ops[0] != "add table ip "+shard {
		t.Errorf("ops = %q, want the table %s added first", ops, shard)
	}
	in.Services = in.Services[:len(in.Services)-1]
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	if got, want := lastFlush(f), []string{"delete table ip " + shard}; !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q", got, want)
	}
}

func TestApplierAffinityChange(t *testing.T) {
	f := newFakeNFT()
	a := NewApplier(f, nil, testr.New(t))
	in := fixture()
	in.Shards = 1
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	sticky := service(&in, "sticky")
	sticky.Endpoints = sticky.Endpoints[:1]
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	// The rules referring to the endpoint's affinity set go before the set.
	want := []string{
		"flush chain ip beacon-svc0 svc-default/sticky/tcp/80",
		"delete set ip beacon-svc0 aff-default/sticky/tcp/80__198.18.2.40/8080",
		"add rule ip beacon-svc0 svc-default/sticky/tcp/80",
		"add rule ip beacon-svc0 svc-default/sticky/tcp/80",
		"add rule ip beacon-svc0 svc-default/sticky/tcp/80",
	}
	if got := lastFlush(f); !slices.Equal(got, want) {
		t.Errorf("ops = %q, want %q", got, want)
	}
}

func TestApplierRebuildsAfterFailure(t *testing.T) {
	f := newFakeNFT()
	a := NewApplier(f, nil, testr.New(t))
	in := fixture()
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	in.Services[0].Endpoints = in.Services[0].Endpoints[:1]
	f.failNext = errors.New("no buffer space available")
	if _, err := a.Apply(Build(in)); err == nil {
		t.Fatal("want the failure reported")
	}
	// Whatever the kernel did with the failed batch, the next sync rebuilds.
	st, err := a.Apply(Build(in))
	if err != nil || !st.Full {
		t.Fatalf("after failure: %+v %v, want a full rebuild", st, err)
	}
}

func TestApplierNoticesTamperedTable(t *testing.T) {
	f := newFakeNFT()
	a := NewApplier(f, nil, testr.New(t))
	in := fixture()
	in.Shards = 1
	rs := Build(in)
	if _, err := a.Apply(rs); err != nil {
		t.Fatal(err)
	}
	delete(f.objects["ip beacon-svc0"], "chain svc-default/web/tcp/80")
	if st, err := a.Apply(rs); err != nil || !st.Full {
		t.Fatalf("%+v %v, want a full rebuild", st, err)
	}
	delete(f.objects, "ip6 beacon")
	if st, err := a.Apply(rs); err != nil || !st.Full {
		t.Fatalf("%+v %v, want a full rebuild", st, err)
	}
}

func TestApplierChunksElements(t *testing.T) {
	f := newFakeNFT()
	a := NewApplier(f, nil, testr.New(t))
	in := scaleInput(1200, 1)
	in.Shards = 1
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	for _, op := range lastFlush(f) {
		if strings.HasPrefix(op, "add element ip beacon-svc0 service-ips ") {
			calls++
		}
	}
	if calls != 5 { // 2,400 elements
		t.Errorf("%d element calls for service-ips, want 5", calls)
	}
}

func TestModeChangeRebuilds(t *testing.T) {
	f := newFakeNFT()
	a := NewApplier(f, nil, testr.New(t))
	in := fixture()
	if _, err := a.Apply(Build(in)); err != nil {
		t.Fatal(err)
	}
	in.Mode = ModeOff
	st, err := a.Apply(Build(in))
	if err != nil || !st.Full {
		t.Fatalf("%+v %v", st, err)
	}
	if len(f.objects) != 0 {
		t.Errorf("tables left: %v", f.objects)
	}
}

func TestStaleUDP(t *testing.T) {
	fe := ap("198.19.0.53:53")
	lb := ap("203.0.113.5:53")
	old := []UDPPort{{Family: IPv4, Key: "k", Frontends: []netip.AddrPort{fe, lb}, Backends: []netip.AddrPort{ap("198.18.1.4:5353"), ap("198.18.2.4:5353")}}}
	next := []UDPPort{{Family: IPv4, Key: "k", Frontends: []netip.AddrPort{fe, lb}, Backends: []netip.AddrPort{ap("198.18.1.4:5353")}}}
	s := staleUDP(old, next)[IPv4]
	for _, c := range []struct {
		f    Flow
		want bool
	}{
		{Flow{Proto: UDP, OrigDst: lb, ReplySrc: ap("198.18.2.4:5353")}, true},
		{Flow{Proto: UDP, OrigDst: fe, ReplySrc: ap("198.18.2.4:5353")}, true},
		{Flow{Proto: UDP, OrigDst: lb, ReplySrc: ap("198.18.1.4:5353")}, false},
		{Flow{Proto: TCP, OrigDst: lb, ReplySrc: ap("198.18.2.4:5353")}, false},
		{Flow{Proto: UDP, OrigDst: ap("203.0.113.6:53"), ReplySrc: ap("198.18.2.4:5353")}, false},
	} {
		if got := s.match(c.f); got != c.want {
			t.Errorf("match(%+v) = %v, want %v", c.f, got, c.want)
		}
	}
	if staleUDP(next, next)[IPv4] != nil {
		t.Error("no change should need no cleanup")
	}
	// A service that had no endpoints: untranslated flows to it are stale.
	empty := []UDPPort{{Family: IPv4, Key: "k", Frontends: []netip.AddrPort{fe, lb}}}
	s = staleUDP(empty, next)[IPv4]
	if !s.match(Flow{Proto: UDP, OrigDst: lb, ReplySrc: lb}) || s.match(Flow{Proto: UDP, OrigDst: lb, ReplySrc: ap("198.18.1.4:5353")}) {
		t.Error("untranslated flows to a service that gained endpoints should be stale, translated ones not")
	}
}

// A scoped Applier rebuilds and deletes its own tables only, and changes
// only elements when only elements change.
func TestScopedApplierOwnsItsTablesOnly(t *testing.T) {
	f := newFakeNFT()
	f.objects["ip beacon"] = map[string]bool{"chain x": true}
	f.objects["inet other"] = map[string]bool{}
	f.objects["inet mine-old"] = map[string]bool{}
	scope := Scope{Families: []Family{Inet}, Base: "mine", Owns: func(n string) bool { return strings.HasPrefix(n, "mine") }}
	a := NewScopedApplier(f, nil, scope, testr.New(t))
	table := func(addrs ...string) *Ruleset {
		s := &Set{Name: "s4", Fields: []Field{FieldAddr}, Family: IPv4}
		for _, x := range addrs {
			s.Elements = append(s.Elements, Element{Key: Key{Addr: netip.MustParseAddr(x)}})
		}
		c := &Chain{Name: "c", Base: &BaseChain{Type: ChainFilter, Hook: HookPrerouting, Priority: -150},
			Rules: []Rule{{MatchDaddrInSet{Family: IPv4, Set: "s4"}, MatchTCPNoSYN{}, Counter{}, SetCtMark{Mark: 1}, DNATToDaddr{Family: IPv4}}}}
		return &Ruleset{Tables: []*Table{{Family: Inet, Name: "mine", Sets: []*Set{s}, Chains: []*Chain{c}}}}
	}
	for _, step := range []struct {
		name string
		rs   *Ruleset
		want []string
	}{
		{"full", table("198.51.100.1"), []string{
			"add table inet mine", "delete table inet mine", "add table inet mine-old", "delete table inet mine-old",
			"add table inet mine", "add chain inet mine c", "add set inet mine s4", "add element inet mine s4 1", "add rule inet mine c",
		}},
		{"elements", table("198.51.100.2"), []string{
			"delete element inet mine s4 1", "add element inet mine s4 1",
		}},
		{"remove", &Ruleset{}, []string{"add table inet mine", "delete table inet mine"}},
	} {
		if _, err := a.Apply(step.rs); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := lastFlush(f); !slices.Equal(got, step.want) {
			t.Errorf("%s: queued\n%s\nwant\n%s", step.name, strings.Join(got, "\n"), strings.Join(step.want, "\n"))
		}
	}
	if f.objects["ip beacon"] == nil || f.objects["inet other"] == nil {
		t.Errorf("tables outside the scope were touched: %v", f.objects)
	}
}
