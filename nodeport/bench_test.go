package nodeport

import (
	"fmt"
	"net/netip"
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
// holds every rule when it returns) and sync-s (both), then changes one
// Service's endpoints with all present (one-change-ms, Build and Apply).
// Run with -benchtime=1x for one measurement; the reported figures are
// per iteration.
func BenchmarkKernelProgram(b *testing.B) {
	requireRoot(b)
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			ns := newNS(b, fmt.Sprintf("beacon-np-bench-%d", n))
			ka, err := NewKernelApplier(KernelConfig{NetNS: int(ns.h)}, logr.Discard())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = ka.Close() })
			in := scaleInput(n, 5)
			changed := scaleInput(n, 5)
			changed.Services[n/2].Endpoints = changed.Services[n/2].Endpoints[1:]
			var build, program, one time.Duration
			var rules, elements int
			for b.Loop() {
				b.StopTimer()
				if _, err := ka.Apply(Build(Input{Mode: ModeOff})); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				rs := Build(in)
				build += time.Since(start)
				start = time.Now()
				st, err := ka.Apply(rs)
				if err != nil || !st.Full {
					b.Fatalf("full apply: %+v %v", st, err)
				}
				program += time.Since(start)
				rules, elements = rs.Counts()
				b.Logf("full: %+v", st)

				start = time.Now()
				st, err = ka.Apply(Build(changed))
				if err != nil || st.Full {
					b.Fatalf("one change: %+v %v", st, err)
				}
				one += time.Since(start)
				b.Logf("one change: %+v", st)
			}
			per := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) }
			b.ReportMetric(per(build), "build-s")
			b.ReportMetric(per(program), "program-s")
			b.ReportMetric(per(build+program), "sync-s")
			b.ReportMetric(per(one)*1000, "one-change-ms")
			b.ReportMetric(float64(rules), "rules")
			b.ReportMetric(float64(elements), "elements")
		})
	}
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
