package badinput

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/allocator/externalips"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

// input is one malformed or hostile write. Exactly one of rejected and
// reported is set: the API server refuses it with a message containing
// rejected, or it is admitted and reported() must become true (an Event on
// the Service, a pool condition, ...) with a clear message.
type input struct {
	name     string
	write    func(f *fixture, ns string) error
	rejected string
	reported func(f *fixture, ns string) (bool, string)
}

// hostileNS is where the hostile Services live.
const hostileName = "hostile"

func service(mut func(*v1.Service)) func(f *fixture, ns string) error {
	return func(f *fixture, ns string) error {
		_, err := f.create(svc(ns, hostileName, mut))
		return err
	}
}

func annotated(kv ...string) func(*v1.Service) {
	return func(s *v1.Service) {
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func both(muts ...func(*v1.Service)) func(*v1.Service) {
	return func(s *v1.Service) {
		for _, m := range muts {
			m(s)
		}
	}
}

func ports(ps ...int32) func(*v1.Service) {
	return func(s *v1.Service) {
		s.Spec.Ports = nil
		for _, p := range ps {
			s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: fmt.Sprint("p", p), Port: p, Protocol: v1.ProtocolTCP})
		}
	}
}

// event waits for a Warning Event on the hostile Service.
func event(reason, substr string) func(f *fixture, ns string) (bool, string) {
	return func(f *fixture, ns string) (bool, string) {
		evs := f.events(ns, hostileName)
		for _, e := range evs {
			if strings.HasPrefix(e, reason+": ") && strings.Contains(e, substr) {
				return true, e
			}
		}
		return false, strings.Join(evs, " | ")
	}
}

// noAddress adds to a report check that the Service got no address.
func noAddress(check func(f *fixture, ns string) (bool, string)) func(f *fixture, ns string) (bool, string) {
	return func(f *fixture, ns string) (bool, string) {
		ok, msg := check(f, ns)
		if s, err := f.get(ns, hostileName); err == nil && ingress(s) != "" {
			return false, "got an address: " + ingress(s)
		}
		return ok, msg
	}
}

func gotAddress(want string) func(f *fixture, ns string) (bool, string) {
	return func(f *fixture, ns string) (bool, string) {
		s, err := f.get(ns, hostileName)
		if err != nil {
			return false, err.Error()
		}
		return ingress(s) == want, ingress(s)
	}
}

func pool(name string, mut func(*v1alpha1.IPPool), addrs ...string) func(f *fixture, ns string) error {
	return func(f *fixture, _ string) error { return f.pool(name, mut, addrs...) }
}

// poolCondition waits for a pool condition with the status and a message
// containing substr.
func poolCondition(name, typ string, status metav1.ConditionStatus, substr string) func(f *fixture, ns string) (bool, string) {
	return func(f *fixture, _ string) (bool, string) {
		p := &v1alpha1.IPPool{}
		if err := f.env.Beacon.Get(f.ctx, client.IPPools, name, p); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(p.Status.Conditions, typ)
		if c == nil {
			return false, fmt.Sprintf("no %s condition: %+v", typ, p.Status.Conditions)
		}
		return c.Status == status && strings.Contains(c.Message, substr), c.Reason + ": " + c.Message
	}
}

func l2(name string, mut func(*v1alpha1.L2Advertisement)) func(f *fixture, ns string) error {
	return func(f *fixture, _ string) error {
		a := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
		mut(a)
		err := f.env.Beacon.Create(f.ctx, client.L2Advertisements, a)
		if err == nil {
			f.cleanup(func() { _ = f.env.Beacon.Delete(context.Background(), client.L2Advertisements, name) })
		}
		return err
	}
}

// l2Parsed checks how the speakers' shared parser (config) judges the
// stored advertisement: want "" means valid, else an error containing want.
func l2Parsed(name, want string) func(f *fixture, ns string) (bool, string) {
	return func(f *fixture, _ string) (bool, string) {
		a := v1alpha1.L2Advertisement{}
		if err := f.env.Beacon.Get(f.ctx, client.L2Advertisements, name, &a); err != nil {
			return false, err.Error()
		}
		got := config.ParseL2Advertisements([]v1alpha1.L2Advertisement{a}, nil)
		err := got.Invalid[name]
		if want == "" {
			return err == nil && got.ByName[name] != nil, fmt.Sprint(err)
		}
		return err != nil && strings.Contains(err.Error(), want), fmt.Sprint(err)
	}
}

func blocks(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("198.18.70.%d/32", i)
	}
	return out
}

func names(n int, f string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(f, i)
	}
	return out
}

// existing is a Service made before the hostile inputs; its addresses must
// survive them unchanged.
type existing struct {
	ns, name string
	mut      func(*v1.Service)
	want     string
}

// TestHostileInputs runs every input against one controller, then checks
// that the controller still runs and that earlier allocations are intact.
func TestHostileInputs(t *testing.T) {
	f := newFixture(t)
	release := f.namespace("beacon-system-", nil)
	f.applyPolicy(renderPolicy(t, release, chartValues(t)), "-hostile")
	keepNS := f.namespace("keep-", nil)
	tenantNS := f.namespace("tenant-", nil)

	f.mustPool("bi-keep", func(p *v1alpha1.IPPool) {
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: 1}
	}, "198.18.60.0/28", "2001:db8:60::/124")
	f.mustPool("bi-tenant", func(p *v1alpha1.IPPool) {
		p.Spec.AutoAssign = new(false)
		p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: []string{tenantNS}}
	}, "198.18.61.0/29")
	f.mustPool("bi-ext", func(p *v1alpha1.IPPool) {
		p.Spec.AutoAssign = new(false)
		p.Spec.AllowExternalIPs = true
	}, "198.18.62.0/29")
	proc := f.startController("--externalips-param", externalips.DefaultName+"-hostile")
	// Wait until this test's policy admits what bi-ext allows (a binding of
	// an earlier test may linger a moment).
	f.eventually(30*time.Second, "externalIPs policy active", func() (bool, string) {
		s := svc(keepNS, "ext-probe", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = []string{"198.18.62.1"}
		})
		if _, err := f.create(s); err != nil {
			return false, err.Error()
		}
		_ = f.env.Kube.CoreV1().Services(keepNS).Delete(f.ctx, s.Name, metav1.DeleteOptions{})
		_, err := f.create(svc(keepNS, "ext-probe2", func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = []string{"198.18.63.1"}
		}))
		if err == nil {
			_ = f.env.Kube.CoreV1().Services(keepNS).Delete(f.ctx, "ext-probe2", metav1.DeleteOptions{})
			return false, "198.18.63.1 admitted"
		}
		return strings.Contains(err.Error(), "binding 'beacon-externalips-hostile'"), err.Error()
	})

	v6 := func(s *v1.Service) { s.Spec.IPFamilies = []v1.IPFamily{v1.IPv6Protocol} }
	dual := func(s *v1.Service) {
		p := v1.IPFamilyPolicyRequireDualStack
		s.Spec.IPFamilyPolicy = &p
	}
	shared := annotated("beaconlb.io/allow-shared-ip", "k", "beaconlb.io/ips", "198.18.60.12")
	keep := []existing{
		{keepNS, "auto", nil, "198.18.60.0"},
		{keepNS, "six", v6, "2001:db8:60::"},
		{keepNS, "dual", dual, "198.18.60.1,2001:db8:60::1"},
		{keepNS, "req", annotated("beaconlb.io/ips", "198.18.60.10"), "198.18.60.10"},
		{keepNS, "lbip", func(s *v1.Service) { s.Spec.LoadBalancerIP = "198.18.60.11" }, "198.18.60.11"},
		{keepNS, "share-a", both(shared, ports(80)), "198.18.60.12"},
		{keepNS, "share-b", both(shared, ports(443)), "198.18.60.12"},
		{tenantNS, "tenant", annotated("beaconlb.io/pool", "bi-tenant"), "198.18.61.0"},
	}
	for _, k := range keep {
		if _, err := f.create(svc(k.ns, k.name, k.mut)); err != nil {
			t.Fatalf("create %s/%s: %v", k.ns, k.name, err)
		}
		f.waitIngress(k.ns, k.name, k.want) // in order: deterministic addresses
	}

	extPolicyMsg := "not inside any IPPool with allowExternalIPs: true"
	inputs := []input{
		// IPPool: refused by the CRD schema and CEL rules.
		{name: "pool CIDR prefix too long", write: pool("bi-p1", nil, "198.51.100.0/33"), rejected: `"198.51.100.0/33" is neither a CIDR`},
		{name: "pool CIDR with host bits", write: pool("bi-p2", nil, "198.51.100.1/24"), rejected: "has host bits set"},
		{name: "pool reversed IPv4 range", write: pool("bi-p3", nil, "198.51.100.20-198.51.100.10"), rejected: "has its first address after its last"},
		{name: "pool reversed IPv6 range", write: pool("bi-p4", nil, "2001:db8::20-2001:db8::10"), rejected: "has its first address after its last"},
		{name: "pool range mixing families", write: pool("bi-p5", nil, "198.51.100.1-2001:db8::1"), rejected: "mixes IPv4 and IPv6"},
		{name: "pool without addresses", write: pool("bi-p6", nil), rejected: "spec.addresses"},
		{name: "pool with an empty block", write: pool("bi-p7", nil, ""), rejected: "spec.addresses[0]"},
		{name: "pool block garbage", write: pool("bi-p8", nil, "not-an-ip"), rejected: `"not-an-ip" is neither a CIDR`},
		{name: "pool range with three parts", write: pool("bi-p9", nil, "198.51.100.1-198.51.100.2-198.51.100.3"), rejected: "is neither a CIDR"},
		{name: "pool negative priority", write: pool("bi-p10", func(p *v1alpha1.IPPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Priority: -1}
		}, "198.51.100.0/24"), rejected: "priority"},
		{name: "pool with 65 blocks", write: pool("bi-p11", nil, blocks(65)...), rejected: "spec.addresses: Too many"},
		{name: "pool block over 100 characters", write: pool("bi-p12", nil, "2001:0db8:0000:0000:0000:0000:0000:0001-2001:0db8:0000:0000:0000:0000:0000:0002"+strings.Repeat(" ", 30)), rejected: "Too long"},
		{name: "pool name not a DNS name", write: pool("Bi_P13", nil, "198.51.100.0/24"), rejected: "metadata.name"},
		{name: "pool CIDR with a zone", write: pool("bi-p14", nil, "fe80::%eth0/64"), rejected: "is neither a CIDR"},
		{name: "pool CIDR with leading zeros", write: pool("bi-p15", nil, "198.51.100.010/32"), rejected: "is neither a CIDR"},
		{name: "pool too many namespaces", write: pool("bi-p16", func(p *v1alpha1.IPPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{Namespaces: names(257, "ns-%d")}
		}, "198.51.100.0/24"), rejected: "Too many"},
		// IPPool: admitted, reported in the pool's status.
		{name: "pool IPv4-mapped IPv6 CIDR", write: pool("bi-p17", nil, "::ffff:198.51.100.0/120"), rejected: "is neither a CIDR"},
		{name: "pool reaching into IPv4-mapped IPv6", write: pool("bi-p20", nil, "::/80"),
			reported: poolCondition("bi-p20", v1alpha1.PoolReady, metav1.ConditionFalse, "the IPv4-mapped addresses")},
		{name: "pool overlapping an older pool", write: pool("bi-p21", nil, "198.18.60.8/29", "198.18.63.0/30"),
			reported: poolCondition("bi-p21", v1alpha1.PoolConflicting, metav1.ConditionTrue, "overlaps older pool(s) bi-keep")},
		{name: "pool identical to an older pool", write: pool("bi-p22", nil, "198.18.60.0/28", "2001:db8:60::/124"),
			reported: poolCondition("bi-p22", v1alpha1.PoolReady, metav1.ConditionFalse, "every address of this pool is declared by older pools")},
		{name: "pool 0.0.0.0/0", write: pool("bi-p23", nil, "0.0.0.0/0"),
			reported: poolCondition("bi-p23", v1alpha1.PoolReady, metav1.ConditionFalse, `"this network" addresses`)},
		{name: "pool of loopback addresses", write: pool("bi-loop", nil, "127.0.0.0/30"),
			reported: poolCondition("bi-loop", v1alpha1.PoolReady, metav1.ConditionFalse, "loopback addresses (127.0.0.0/8), which cannot be Service addresses")},
		{name: "pool of multicast addresses", write: pool("bi-p24", nil, "ff02::/120"),
			reported: poolCondition("bi-p24", v1alpha1.PoolReady, metav1.ConditionFalse, "multicast")},
		{name: "pool with a bad namespaceSelector operator", write: pool("bi-p25", func(p *v1alpha1.IPPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{NamespaceSelector: &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Likes", Values: []string{"x"}}}}}
		}, "198.18.64.0/30"), reported: poolCondition("bi-p25", v1alpha1.PoolReady, metav1.ConditionFalse, "serviceAllocation.namespaceSelector")},
		{name: "pool with a bad serviceSelector key", write: pool("bi-p26", func(p *v1alpha1.IPPool) {
			p.Spec.ServiceAllocation = &v1alpha1.ServiceAllocation{ServiceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bad key": "x"}}}
		}, "198.18.64.4/30"), reported: poolCondition("bi-p26", v1alpha1.PoolReady, metav1.ConditionFalse, "serviceAllocation.serviceSelector")},
		{name: "pool IPv6 /64 (huge)", write: pool("bi-huge", func(p *v1alpha1.IPPool) { p.Spec.AutoAssign = new(false) }, "2001:db8:64::/64"),
			reported: func(f *fixture, _ string) (bool, string) {
				p := &v1alpha1.IPPool{}
				if err := f.env.Beacon.Get(f.ctx, client.IPPools, "bi-huge", p); err != nil {
					return false, err.Error()
				}
				st := p.Status.IPv6
				return st != nil && st.Total == math.MaxInt64 && meta.IsStatusConditionTrue(p.Status.Conditions, v1alpha1.PoolReady), fmt.Sprintf("%+v", st)
			}},
		{name: "pool with a 253-character name", write: pool(strings.Repeat("p", 253), func(p *v1alpha1.IPPool) { p.Spec.AutoAssign = new(false) }, "198.18.65.0/30"),
			reported: poolCondition(strings.Repeat("p", 253), v1alpha1.PoolReady, metav1.ConditionTrue, "")},

		// Services: requested addresses and pool names.
		{name: "requested IP garbage", write: service(annotated("beaconlb.io/ips", "not-an-ip")),
			reported: noAddress(event(controller.EventAllocationFailed, `requested address "not-an-ip" is not a plain IPv4 or IPv6 address`))},
		{name: "requested IP annotation empty", write: service(annotated("beaconlb.io/ips", " ")),
			reported: noAddress(event(controller.EventAllocationFailed, "annotation beaconlb.io/ips is empty"))},
		{name: "requested IP only commas", write: service(annotated("beaconlb.io/ips", ",,,")),
			reported: noAddress(event(controller.EventAllocationFailed, `requested address "" is not a plain`))},
		{name: "requested IP with a zone", write: service(annotated("beaconlb.io/ips", "fe80::1%eth0")),
			reported: noAddress(event(controller.EventAllocationFailed, `"fe80::1%eth0" is not a plain`))},
		{name: "requested IPv4-mapped IPv6", write: service(annotated("beaconlb.io/ips", "::ffff:198.18.60.3")),
			reported: noAddress(event(controller.EventAllocationFailed, `"::ffff:198.18.60.3" is not a plain`))},
		{name: "two requested IPv4 addresses", write: service(annotated("beaconlb.io/ips", "198.18.60.3,198.18.60.4")),
			reported: noAddress(event(controller.EventAllocationFailed, "requests two IPv4 addresses"))},
		{name: "requested IPv6 on an IPv4 Service", write: service(annotated("beaconlb.io/ips", "2001:db8:60::5")),
			reported: noAddress(event(controller.EventAllocationFailed, "is IPv6, but Service"))},
		{name: "requested IP held by another Service", write: service(annotated("beaconlb.io/ips", "198.18.60.0")),
			reported: noAddress(event(controller.EventAllocationFailed, "198.18.60.0 is in use by Service "+keepNS+"/auto"))},
		{name: "requested IP of a dual-stack Service's IPv6", write: service(both(v6, annotated("beaconlb.io/ips", "2001:db8:60::1"))),
			reported: noAddress(event(controller.EventAllocationFailed, "2001:db8:60::1 is in use by Service "+keepNS+"/dual"))},
		{name: "requested IP outside every pool", write: service(annotated("beaconlb.io/ips", "192.0.2.77")),
			reported: noAddress(event(controller.EventAllocationFailed, "192.0.2.77 lies in no IP pool"))},
		{name: "requested IP in a pool of another namespace", write: service(annotated("beaconlb.io/ips", "198.18.61.1")),
			reported: noAddress(event(controller.EventAllocationFailed, `198.18.61.1 belongs to pool "bi-tenant", which does not serve Service`))},
		{name: "pool of another namespace by name", write: service(annotated("beaconlb.io/pool", "bi-tenant")),
			reported: noAddress(event(controller.EventAllocationFailed, `pool "bi-tenant" named by beaconlb.io/pool does not serve Service`))},
		{name: "unknown pool name", write: service(annotated("beaconlb.io/pool", "no-such-pool")),
			reported: noAddress(event(controller.EventAllocationFailed, `pool "no-such-pool" named by beaconlb.io/pool does not exist`))},
		{name: "invalid pool by name", write: service(annotated("beaconlb.io/pool", "bi-loop")),
			reported: noAddress(event(controller.EventAllocationFailed, `pool "bi-loop" named by beaconlb.io/pool is invalid`))},
		{name: "requested IP in the wrong named pool", write: service(annotated("beaconlb.io/pool", "bi-ext", "beaconlb.io/ips", "198.18.60.5")),
			reported: noAddress(event(controller.EventAllocationFailed, `198.18.60.5 belongs to pool "bi-keep", not to pool "bi-ext"`))},
		{name: "pool name with garbage", write: service(annotated("beaconlb.io/pool", "../../etc/passwd\n")),
			reported: noAddress(event(controller.EventAllocationFailed, `pool "../../etc/passwd" named by beaconlb.io/pool does not exist`))},

		// Services: sharing.
		{name: "shared IP without a sharing key", write: service(annotated("beaconlb.io/ips", "198.18.60.12")),
			reported: noAddress(event(controller.EventAllocationFailed, "198.18.60.12 is in use by Service"))},
		{name: "shared IP with another key", write: service(both(ports(8080), annotated("beaconlb.io/ips", "198.18.60.12", "beaconlb.io/allow-shared-ip", "other"))),
			reported: noAddress(event(controller.EventAllocationFailed, `198.18.60.12 is shared under key "k"`))},
		{name: "shared IP with a clashing port", write: service(both(ports(443), annotated("beaconlb.io/ips", "198.18.60.12", "beaconlb.io/allow-shared-ip", "k"))),
			reported: noAddress(event(controller.EventAllocationFailed, "port 443/TCP is used by both Service "+keepNS+"/share-b"))},
		{name: "shared IP with Local policy and other pods", write: service(both(ports(8443), annotated("beaconlb.io/ips", "198.18.60.12", "beaconlb.io/allow-shared-ip", "k"),
			func(s *v1.Service) { s.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal })),
			reported: noAddress(event(controller.EventAllocationFailed, "externalTrafficPolicy Local"))},

		// Services: spec.loadBalancerIP.
		// The API server does not validate spec.loadBalancerIP (deprecated).
		{name: "loadBalancerIP garbage", write: service(func(s *v1.Service) { s.Spec.LoadBalancerIP = "999.1.1.1" }),
			reported: noAddress(event(controller.EventAllocationFailed, `requested address "999.1.1.1" is not a plain`))},
		{name: "loadBalancerIP CIDR", write: service(func(s *v1.Service) { s.Spec.LoadBalancerIP = "198.18.60.0/28" }),
			reported: noAddress(event(controller.EventAllocationFailed, `requested address "198.18.60.0/28" is not a plain`))},
		{name: "loadBalancerIP conflicting with the annotation", write: service(both(annotated("beaconlb.io/ips", "198.18.60.6"), func(s *v1.Service) { s.Spec.LoadBalancerIP = "198.18.60.7" })),
			reported: noAddress(event(controller.EventAllocationFailed, "spec.loadBalancerIP 198.18.60.7 conflicts with annotation"))},
		{name: "loadBalancerIP held by another Service", write: service(func(s *v1.Service) { s.Spec.LoadBalancerIP = "198.18.60.11" }),
			reported: noAddress(event(controller.EventAllocationFailed, "198.18.60.11 is in use by Service "+keepNS+"/lbip"))},

		// Services: annotations and names.
		{name: "unknown beaconlb.io annotation", write: service(annotated("beaconlb.io/ipz", "198.18.60.9", "beaconlb.io/ips", "198.18.60.9")),
			reported: func(f *fixture, ns string) (bool, string) {
				ok, msg := event(controller.EventInvalidRequest, `unknown annotation "beaconlb.io/ipz" ignored`)(f, ns)
				if got, addr := gotAddress("198.18.60.9")(f, ns); !got {
					return false, "address " + addr
				}
				return ok, msg
			}},
		{name: "request in the huge IPv6 pool", write: service(both(v6, annotated("beaconlb.io/ips", "2001:db8:64::ffff:ffff:ffff:fffe", "beaconlb.io/pool", "bi-huge"))),
			reported: gotAddress("2001:db8:64:0:ffff:ffff:ffff:fffe")},
		{name: "Service name not a DNS label", write: func(f *fixture, ns string) error {
			_, err := f.create(svc(ns, "Bad.Name", nil))
			return err
		}, rejected: "metadata.name"},
		{name: "annotation key not qualified", write: service(annotated("beaconlb.io/ips/x", "1")), rejected: "metadata.annotations"},

		// externalIPs (the chart's admission policy).
		{name: "externalIPs hijacking a LoadBalancer address", write: service(func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = []string{"198.18.60.0"}
		}), rejected: "spec.externalIPs: 198.18.60.0 " + extPolicyMsg},
		{name: "externalIPs hijacking a node LAN address", write: service(func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = []string{"198.18.62.1", "198.51.100.11"}
		}), rejected: "spec.externalIPs: 198.51.100.11 " + extPolicyMsg},
		{name: "externalIPs loopback", write: service(func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = []string{"127.0.0.1"}
		}), rejected: "127.0.0.1"},
		{name: "externalIPs garbage", write: service(func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = []string{"not-an-ip"}
		}), rejected: "spec.externalIPs[0]"},

		// L2Advertisement.
		{name: "L2 interface name too long", write: l2("bi-l1", func(a *v1alpha1.L2Advertisement) {
			a.Spec.Interfaces = []v1alpha1.InterfaceName{"eth0123456789012"}
		}), rejected: "spec.interfaces[0]"},
		{name: "L2 interface name with a colon", write: l2("bi-l2", func(a *v1alpha1.L2Advertisement) {
			a.Spec.Interfaces = []v1alpha1.InterfaceName{"eth0:1"}
		}), rejected: `"eth0:1" is not a valid interface name`},
		{name: "L2 interface name ..", write: l2("bi-l3", func(a *v1alpha1.L2Advertisement) {
			a.Spec.Interfaces = []v1alpha1.InterfaceName{".."}
		}), rejected: `".." is not a valid interface name`},
		{name: "L2 empty pool name", write: l2("bi-l4", func(a *v1alpha1.L2Advertisement) { a.Spec.IPPools = []string{""} }), rejected: "spec.ipPools[0]"},
		{name: "L2 257 pool names", write: l2("bi-l5", func(a *v1alpha1.L2Advertisement) { a.Spec.IPPools = names(257, "pool-%d") }), rejected: "Too many"},
		{name: "L2 duplicate interfaces", write: l2("bi-l6", func(a *v1alpha1.L2Advertisement) {
			a.Spec.Interfaces = []v1alpha1.InterfaceName{"eth0", "eth0"}
		}), rejected: "Duplicate value"},
		// Admitted by design (names of pools that do not exist yet select
		// nothing until they appear), parsed as valid.
		{name: "L2 unknown pool names", write: l2("bi-l7", func(a *v1alpha1.L2Advertisement) { a.Spec.IPPools = []string{"no-such-pool"} }),
			reported: l2Parsed("bi-l7", "")},
		// Admitted by the API server (label selectors in CRDs are not
		// validated); the speakers' parser rejects the advertisement.
		{name: "L2 bad ipPoolSelector operator", write: l2("bi-l8", func(a *v1alpha1.L2Advertisement) {
			a.Spec.IPPoolSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "x", Operator: "Near"}}}
		}), reported: l2Parsed("bi-l8", "Near")},
		{name: "L2 empty selectors", write: l2("bi-l9", func(a *v1alpha1.L2Advertisement) {
			a.Spec.IPPoolSelector = &metav1.LabelSelector{}
			a.Spec.NodeSelector = &metav1.LabelSelector{}
		}), reported: l2Parsed("bi-l9", "")},
	}
	if len(inputs) < 40 {
		t.Fatalf("only %d inputs", len(inputs))
	}
	rejected, reported := 0, 0
	for i, in := range inputs {
		ok := t.Run(in.name, func(t *testing.T) {
			sub := &fixture{t: t, env: f.env, ctx: f.ctx, owner: f.t}
			// Each input gets a fresh namespace so that its Service and
			// Events stand alone.
			ns := sub.namespace(fmt.Sprintf("in%02d-", i), nil)
			err := in.write(sub, ns)
			if in.rejected != "" {
				if err == nil {
					t.Fatalf("admitted, want refused with %q", in.rejected)
				}
				if !strings.Contains(err.Error(), in.rejected) {
					t.Fatalf("refused with %q, want message containing %q", err, in.rejected)
				}
				t.Logf("refused: %v", err)
				rejected++
				return
			}
			if err != nil {
				t.Fatalf("refused by the API server (%v), want admitted and reported", err)
			}
			var last string
			sub.eventually(15*time.Second, "report", func() (bool, string) {
				ok, msg := in.reported(sub, ns)
				last = msg
				return ok, msg
			})
			t.Logf("reported: %s", last)
			reported++
		})
		if !ok && !proc.alive() {
			t.Fatalf("controller exited after %q:\n%s", in.name, testenv.Tail(proc.output(), 4000))
		}
	}
	t.Logf("%d inputs: %d refused by the API server, %d admitted and reported", len(inputs), rejected, reported)

	// The controller survived: same process, ready, no panic logged.
	if !proc.alive() {
		t.Fatalf("controller exited: %v\n%s", proc.waitErr, testenv.Tail(proc.output(), 4000))
	}
	if !proc.ready() {
		t.Error("controller not ready after the inputs")
	}
	if out := proc.output(); regexp.MustCompile(`(?m)^(panic:|goroutine \d+ \[running\])|Observed a panic`).MatchString(out) {
		t.Errorf("controller log shows a panic:\n%s", testenv.Tail(out, 4000))
	}
	// It still allocates: a probe Service gets the next free address.
	f.mustCreate(svc(keepNS, "probe", nil))
	f.waitIngress(keepNS, "probe", "198.18.60.2")
	// Existing allocations are unchanged, and no address is held twice.
	for _, k := range keep {
		s, err := f.get(k.ns, k.name)
		if err != nil {
			t.Fatal(err)
		}
		if got := ingress(s); got != k.want {
			t.Errorf("%s/%s: address changed to %q, want %q", k.ns, k.name, got, k.want)
		}
	}
	all, err := f.env.Kube.CoreV1().Services("").List(f.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Addr]string{}
	for _, s := range all.Items {
		for _, in := range s.Status.LoadBalancer.Ingress {
			a := netip.MustParseAddr(in.IP)
			sharedOK := s.Annotations["beaconlb.io/allow-shared-ip"] != ""
			if o, dup := owner[a]; dup && !sharedOK {
				t.Errorf("%s held by %s and %s/%s", a, o, s.Namespace, s.Name)
			}
			owner[a] = s.Namespace + "/" + s.Name
		}
	}
	// Pool status matches: 7 distinct addresses of bi-keep are in use (auto,
	// dual, req, lbip, shared, probe and the hostile request .9) plus two
	// IPv6 (six, dual).
	f.eventually(10*time.Second, "bi-keep status", func() (bool, string) {
		p := &v1alpha1.IPPool{}
		if err := f.env.Beacon.Get(f.ctx, client.IPPools, "bi-keep", p); err != nil {
			return false, err.Error()
		}
		v4, v6 := p.Status.IPv4, p.Status.IPv6
		return v4 != nil && v6 != nil && v4.Used == 7 && v4.Total == 16 && v6.Used == 2, fmt.Sprintf("%+v %+v", v4, v6)
	})
}

func (f *fixture) mustCreate(s *v1.Service) {
	f.t.Helper()
	if _, err := f.create(s); err != nil {
		f.t.Fatalf("create %s/%s: %v", s.Namespace, s.Name, err)
	}
}
