package nodeport

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/beaconlb/beacon/internal/golden"
)

// mutate changes one random thing of the input, as a watch event would.
func mutate(r *rand.Rand, in *Input, next *int) string {
	svcs := in.Services
	i := r.IntN(len(svcs))
	s := &svcs[i]
	switch r.IntN(9) {
	case 0:
		in.Services = slices.Delete(slices.Clone(svcs), i, i+1)
		return "delete " + s.Name
	case 1:
		n := *next
		*next++
		c := cloneService(s)
		c.Name = fmt.Sprintf("new%d", n)
		in.Services = append(slices.Clone(svcs), c)
		return "add " + c.Name + " (a copy: its keys conflict)"
	case 2:
		if len(s.Endpoints) > 0 {
			s.Endpoints = s.Endpoints[1:]
		}
		return "endpoint gone from " + s.Name
	case 3:
		s.Endpoints = append(slices.Clone(s.Endpoints), Endpoint{
			Addr: netip.AddrFrom4([4]byte{198, 18, 9, byte(r.IntN(250))}), NodeName: "node1", Ready: true,
			Ports: []EndpointPort{{Name: "http", Protocol: TCP, Port: 8080}},
		})
		return "local endpoint added to " + s.Name
	case 4:
		s.LoadBalancerIPs = []netip.Addr{netip.AddrFrom4([4]byte{203, 0, 113, byte(r.IntN(4))})}
		return "LB IP of " + s.Name
	case 5:
		s.ExternalLocal = !s.ExternalLocal
		return "policy of " + s.Name
	case 6:
		if len(s.Endpoints) > 0 {
			s.Endpoints = slices.Clone(s.Endpoints)
			s.Endpoints[0].Ready = !s.Endpoints[0].Ready
		}
		return "readiness in " + s.Name
	case 7:
		in.Services = slices.Clone(svcs)
		r.Shuffle(len(in.Services), func(i, j int) { in.Services[i], in.Services[j] = in.Services[j], in.Services[i] })
		return "reordered"
	default:
		if r.IntN(2) == 0 {
			in.Mode = ModeExternal
		} else {
			in.Mode = ModeFull
		}
		return "mode " + string(in.Mode)
	}
}

func rulesetText(rs *Ruleset) string {
	return fmt.Sprintf("%s\nUDP %v\nhealth %v\nwarnings %q", rs, rs.UDP, rs.Health, rs.Warnings)
}

// A Builder fed a stream of changes returns what a fresh Build returns.
func TestBuilderMatchesBuild(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	in := fixture()
	in.Services = append(in.Services, scaleInput(60, 3).Services...)
	for i := range in.Services {
		in.Services[i].Namespace = "default"
	}
	b := NewBuilder()
	next := 0
	for step := range 300 {
		what := mutate(r, &in, &next)
		got, want := rulesetText(b.Build(in)), rulesetText(Build(in))
		if got != want {
			t.Fatalf("step %d (%s): incremental build differs:\n%s", step, what, golden.Diff(want, got))
		}
	}
}

// One changed Service rebuilds only its shard table; the others are the
// previous tables, which the Applier skips.
func TestBuilderReusesTables(t *testing.T) {
	in := scaleInput(500, 2)
	b := NewBuilder()
	prev := b.Build(in)
	s := &in.Services[123]
	s.Endpoints = s.Endpoints[:1] // the local one stays: hairpin unchanged
	next := b.Build(in)
	var changed []string
	for _, t := range next.Tables {
		if prev.Table(t.Family, t.Name) != t {
			changed = append(changed, t.Family.String()+" "+t.Name)
		}
	}
	want := []string{"ip " + ShardTableName(ShardOf(s.Namespace, s.Name, DefaultShards))}
	if !slices.Equal(changed, want) {
		t.Errorf("rebuilt tables %q, want %q", changed, want)
	}
}

func cloneService(s *Service) Service {
	c := *s
	c.ClusterIPs = slices.Clone(s.ClusterIPs)
	c.LoadBalancerIPs = slices.Clone(s.LoadBalancerIPs)
	c.ExternalIPs = slices.Clone(s.ExternalIPs)
	c.SourceRanges = slices.Clone(s.SourceRanges)
	c.Ports = slices.Clone(s.Ports)
	c.Endpoints = slices.Clone(s.Endpoints)
	for i := range c.Endpoints {
		c.Endpoints[i].Ports = slices.Clone(c.Endpoints[i].Ports)
	}
	return c
}
