package nodeport

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// scaleInput is n Services with a ClusterIP, a LoadBalancer IP (ports
// spread so that 203.0.113.0/24 suffices), a NodePort for the first
// 2,000, and eps endpoints each, one of them on this node. Every tenth
// Service has externalTrafficPolicy Local and every hundredth session
// affinity.
func scaleInput(n, eps int) Input {
	in := Input{NodeName: "node1", NodeAddresses: []netip.Addr{nodeV4}}
	for i := range n {
		s := Service{
			Namespace:       fmt.Sprintf("ns%d", i%50),
			Name:            fmt.Sprintf("svc%d", i),
			ClusterIPs:      []netip.Addr{netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})},
			LoadBalancerIPs: []netip.Addr{netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 250)})},
			ExternalLocal:   i%10 == 0,
			Ports:           []Port{{Name: "http", Protocol: TCP, Port: uint16(1000 + i/250)}},
		}
		if i < 2000 {
			s.Ports[0].NodePort = uint16(30000 + i)
		}
		if i%100 == 0 {
			s.AffinityTimeout = time.Hour
		}
		for j := range eps {
			k := i*eps + j
			node := "node2"
			if j == 0 {
				node = "node1"
			}
			s.Endpoints = append(s.Endpoints, Endpoint{
				Addr:     netip.AddrFrom4([4]byte{198, 18, byte(k >> 8), byte(k)}),
				NodeName: node, Ready: true, Serving: true,
				Ports: []EndpointPort{{Name: "http", Protocol: TCP, Port: 8080}},
			})
		}
		in.Services = append(in.Services, s)
	}
	return in
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			in := scaleInput(n, 5)
			b.ReportAllocs()
			for b.Loop() {
				Build(in)
			}
		})
	}
}

// BenchmarkKernelProgram programs n Services × 5 endpoints into an empty
// namespace and reports build-s (Build), program-s (Apply: the kernel
// holds every rule when it returns) and sync-s (both). Then, with all
// present, it changes one Service's endpoints (a different Service each
// time) and reports one-change-ms: the Syncer's path, a Builder that
// rebuilds only that Service plus an Apply of the difference (median of
// the changes), and, as the same-run baseline, one-change-rebuild-ms: a
// fresh Build of everything plus the same Apply, and one-change-ratio,
// one change over the full sync. Run with -benchtime=1x for one
// measurement.
func BenchmarkKernelProgram(b *testing.B) {
	requireRoot(b)
	const changes = 9
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			ns := newNS(b, fmt.Sprintf("beacon-np-bench-%d", n))
			ka, err := NewKernelApplier(KernelConfig{NetNS: int(ns.h)}, logr.Discard())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ka.Close() })
			in := scaleInput(n, 5)
			var build, program time.Duration
			var one, rebuild []time.Duration
			var rules, elements int
			for b.Loop() {
				b.StopTimer()
				if _, err := ka.Apply(Build(Input{Mode: ModeOff})); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				bl := NewBuilder()
				start := time.Now()
				rs := bl.Build(in)
				build += time.Since(start)
				start = time.Now()
				st, err := ka.Apply(rs)
				if err != nil || !st.Full {
					b.Fatalf("full apply: %+v %v", st, err)
				}
				program += time.Since(start)
				rules, elements = rs.Counts()
				b.Logf("full: %+v", st)

				// The Builder's changes first: a fresh Build shares no
				// table with what the Applier holds, so after one every
				// table is compared in full once.
				cur := in
				for i := range 2 * changes {
					next := cur
					next.Services = slices.Clone(cur.Services)
					s := &next.Services[(n/2+i*97)%n]
					s.Endpoints = s.Endpoints[:len(s.Endpoints)-1]
					start = time.Now()
					if i < changes {
						rs = bl.Build(next)
					} else {
						rs = Build(next)
					}
					st, err = ka.Apply(rs)
					d := time.Since(start)
					if err != nil || st.Full {
						b.Fatalf("one change: %+v %v", st, err)
					}
					if i < changes {
						one = append(one, d)
						b.Logf("one change: %v %+v", d, st)
					} else {
						rebuild = append(rebuild, d)
					}
					cur = next
				}
			}
			per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
			b.ReportMetric(per(build), "build-s")
			b.ReportMetric(per(program), "program-s")
			b.ReportMetric(per(build+program), "sync-s")
			b.ReportMetric(median(one).Seconds()*1000, "one-change-ms")
			b.ReportMetric(median(rebuild).Seconds()*1000, "one-change-rebuild-ms")
			b.ReportMetric(median(one).Seconds()/per(build+program), "one-change-ratio")
			b.ReportMetric(float64(rules), "rules")
			b.ReportMetric(float64(elements), "elements")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkBuilderOneChange is the model half of one change at 10,000
// Services: a Builder rebuilding one changed Service, against a fresh
// Build of everything (the same-run baseline).
func BenchmarkBuilderOneChange(b *testing.B) {
	in := scaleInput(10000, 5)
	step := func(i int) Input {
		next := in
		next.Services = slices.Clone(in.Services)
		s := &next.Services[(i*97)%len(in.Services)]
		s.Endpoints = s.Endpoints[:len(s.Endpoints)-1]
		return next
	}
	b.Run("builder", func(b *testing.B) {
		bl := NewBuilder()
		bl.Build(in)
		i := 0
		for b.Loop() {
			bl.Build(step(i))
			i++
		}
	})
	b.Run("rebuild", func(b *testing.B) {
		i := 0
		for b.Loop() {
			Build(step(i))
			i++
		}
	})
}

// BenchmarkQueueFull measures the user-space half of a full sync: turning
// a Ruleset into marshalled netlink messages, with no kernel involved.
func BenchmarkQueueFull(b *testing.B) {
	rs := Build(scaleInput(10000, 5))
	msgs := 0
	kb, err := newKernelBatch(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	a := NewApplier(discardBatch{kb, &msgs}, nil, logr.Discard())
	b.ReportAllocs()
	for b.Loop() {
		a.Invalidate()
		if _, err := a.Apply(rs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(msgs), "messages")
}

// discardBatch marshals like the kernel batch and counts the messages
// instead of sending them.
type discardBatch struct {
	*kernelBatch
	msgs *int
}

func (d discardBatch) Commit() error {
	if err := d.cut(); err != nil {
		return err
	}
	*d.msgs = len(d.pending)
	d.pending = nil
	return nil
}

// BenchmarkKernelOneChangeKube is the speaker's whole path for one change
// with 10,000 Services present: API objects through a KubeConverter, a
// Builder and an Apply into a namespace; each iteration gives one
// EndpointSlice a new resourceVersion with one endpoint fewer or more.
func BenchmarkKernelOneChangeKube(b *testing.B) {
	requireRoot(b)
	ns := newNS(b, "beacon-np-bench-kube")
	ka, err := NewKernelApplier(KernelConfig{NetNS: int(ns.h)}, logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ka.Close() })
	svcs, eps := kubeScale(10000, 5)
	var conv KubeConverter
	bl := NewBuilder()
	input := func() Input {
		return Input{NodeName: "node1", NodeAddresses: []netip.Addr{nodeV4}, Services: conv.Services(svcs, eps, nil)}
	}
	if _, err := ka.Apply(bl.Build(input())); err != nil {
		b.Fatal(err)
	}
	i := 0
	var conv_, build, apply []time.Duration
	for b.Loop() {
		k := (i * 97) % len(eps)
		sl := eps[k].DeepCopy()
		if i%2 == 0 {
			sl.Endpoints = sl.Endpoints[1:]
		}
		sl.ResourceVersion = fmt.Sprint(i + 2)
		eps[k] = sl
		i++
		t0 := time.Now()
		in := input()
		t1 := time.Now()
		rs := bl.Build(in)
		t2 := time.Now()
		st, err := ka.Apply(rs)
		if err != nil || st.Full {
			b.Fatalf("%+v %v", st, err)
		}
		conv_, build, apply = append(conv_, t1.Sub(t0)), append(build, t2.Sub(t1)), append(apply, time.Since(t2))
	}
	b.ReportMetric(median(conv_).Seconds()*1000, "convert-ms")
	b.ReportMetric(median(build).Seconds()*1000, "build-ms")
	b.ReportMetric(median(apply).Seconds()*1000, "apply-ms")
}
