package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/provider"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// bgpSite configures BGP mode in the lab: pool "bgp" (203.0.113.0/24,
// 2001:db8:203::/120) announced with communities to the router by every
// node over IPv4 and IPv6, with BFD and graceful restart. node3 peers
// through its own BGPPeer whose password Secret is wrong at first (the
// router expects "s3cret" from node3).
func bgpSite(t *testing.T) (*site, *lab.Lab) {
	return bgpSiteWith(t, lab.Config{Nodes: 3, PodsPerNode: 1, Router: lab.RouterConfig{
		Passwords: map[string]string{"node3": "s3cret"},
	}}, 300)
}

// bgpSiteWith is bgpSite with a lab configuration (no password for node3
// when cfg.Router.Passwords has none), the BFD interval in ms and extra
// speaker flags.
func bgpSiteWith(t *testing.T, cfg lab.Config, bfdMillis int32, speakerArgs ...string) (*site, *lab.Lab) {
	return bgpSite3(t, labtest.Up(t, cfg), cfg, bfdMillis, 4*time.Minute, speakerArgs...)
}

// bgpSiteWithin is bgpSiteWith for a benchmark: it queues up to 30 minutes
// behind other lab suites, and its site calls may run until limit.
func bgpSiteWithin(t *testing.T, cfg lab.Config, bfdMillis int32, limit time.Duration) (*site, *lab.Lab) {
	return bgpSite3(t, labtest.UpWithin(t, cfg, 30*time.Minute), cfg, bfdMillis, limit)
}

func bgpSite3(t *testing.T, l *lab.Lab, cfg lab.Config, bfdMillis int32, limit time.Duration, speakerArgs ...string) (*site, *lab.Lab) {
	s := &site{labtest.StartBeaconArgs(t, l, limit, speakerArgs...)}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx := s.Ctx
	_, err := l.Kube().CoreV1().Secrets("default").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "router-node3"},
		StringData: map[string]string{"password": "wrong"}}, metav1.CreateOptions{})
	must(err)
	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "bgp"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{v1alpha1.AddressBlock(lab.BGPPoolV4.String()), v1alpha1.AddressBlock(lab.BGPPoolV6.String())}
	pool.Spec.AutoAssign = ptr.To(false)
	must(s.BC.Create(ctx, client.IPPools, pool))
	must(s.BC.Create(ctx, client.BFDProfiles, &v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "lab"},
		Spec: v1alpha1.BFDProfileSpec{ReceiveInterval: ptr.To(bfdMillis), TransmitInterval: ptr.To(bfdMillis), DetectMultiplier: ptr.To(int32(3))}}))
	topo := l.Topology()
	notNode3 := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: corev1.LabelHostname, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"node3"}}}}
	onlyNode3 := &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelHostname: "node3"}}
	gr := &v1alpha1.GracefulRestart{Enabled: true, RestartTime: &metav1.Duration{Duration: 60 * time.Second}}
	for _, p := range []struct {
		name, addr string
		sel        *metav1.LabelSelector
		pw         string
	}{
		{"router", topo.Router.IPv4.String(), notNode3, ""},
		{"router6", topo.Router.IPv6.String(), notNode3, ""},
		{"router-node3", topo.Router.IPv4.String(), onlyNode3, "router-node3"},
		{"router6-node3", topo.Router.IPv6.String(), onlyNode3, "router-node3"},
	} {
		obj := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: p.name}, Spec: v1alpha1.BGPPeerSpec{
			MyASN: v1alpha1.ASN(lab.NodeASN), PeerASN: v1alpha1.ASN(lab.RouterASN), PeerAddress: p.addr,
			HoldTime: &metav1.Duration{Duration: 9 * time.Second}, NodeSelector: p.sel, GracefulRestart: gr, BFDProfile: "lab",
		}}
		if p.pw != "" && cfg.Router.Passwords["node3"] != "" {
			obj.Spec.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: p.pw}
		}
		must(s.BC.Create(ctx, client.BGPPeers, obj))
	}
	must(s.BC.Create(ctx, client.BGPAdvertisements, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "bgp"},
		Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"bgp"}, Communities: []v1alpha1.Community{"64513:100", "64513:1:2"}}}))
	return s, l
}

func bgpService(name string, policy corev1.ServiceExternalTrafficPolicy, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: map[string]string{provider.AnnotationPool: "bgp"}},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			ExternalTrafficPolicy: policy,
			IPFamilyPolicy:        ptr.To(corev1.IPFamilyPolicyRequireDualStack),
			Selector:              selector,
			Ports:                 []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
}

func hostPrefix(ip string) netip.Prefix {
	a := netip.MustParseAddr(ip)
	return netip.PrefixFrom(a, a.BitLen())
}

// nodeAddrs returns the named nodes' addresses of ip's family.
func nodeAddrs(l *lab.Lab, ip string, names ...string) []netip.Addr {
	v6 := netip.MustParseAddr(ip).Is6()
	var out []netip.Addr
	for _, n := range l.Nodes() {
		if !slices.Contains(names, n.Name) {
			continue
		}
		if v6 {
			out = append(out, n.IPv6)
		} else {
			out = append(out, n.IPv4)
		}
	}
	return out
}

func (s *site) waitNextHops(ip string, within time.Duration, nodes ...string) time.Duration {
	s.T.Helper()
	ctx, cancel := context.WithTimeout(s.Ctx, within)
	defer cancel()
	start := time.Now()
	if got, err := s.L.Router().WaitFIBNextHops(ctx, hostPrefix(ip), nodeAddrs(s.L, ip, nodes...)...); err != nil {
		s.T.Fatalf("router FIB for %s: next hops %v, want nodes %v: %v", ip, got, nodes, err)
	}
	return time.Since(start)
}

func (s *site) session(name string) v1alpha1.BGPSessionState {
	var st v1alpha1.BGPSessionState
	_ = s.BC.Get(s.Ctx, client.BGPSessionStates, name, &st)
	return st
}

// TestBGP runs BGP mode end to end against the lab's FRR router: routes
// with one next hop per eligible node, communities, traffic from client-ext,
// TCP MD5 (a wrong password keeps a session down with a clear status, the
// right one brings it up), Local policy, withdrawal, BFD on a link cut and
// graceful restart of a speaker without a failed request.
func TestBGP(t *testing.T) {
	s, l := bgpSite(t)
	r := l.Router()
	s.Apply(bgpService("web", corev1.ServiceExternalTrafficPolicyCluster, map[string]string{lab.LabelApp: "echo"}))
	ips := s.Ingress("web")
	t.Logf("web got %v", ips)

	// node3's session stays down (wrong password): nodes 1 and 2 only.
	for _, ip := range ips {
		s.waitNextHops(ip, 30*time.Second, "node1", "node2")
	}
	// Polled: a BFD session that flaps while the speakers start (seen once
	// in CI under load) resets its BGP session, which comes back in seconds.
	s.Poll(30*time.Second, "two multipath routes with the communities", func() (bool, string) {
		paths, err := r.Paths(s.Ctx, hostPrefix(ips[0]))
		if err != nil || len(paths) != 2 {
			return false, fmt.Sprintf("paths %+v %v", paths, err)
		}
		for _, p := range paths {
			if !slices.Contains(p.Communities, "64513:100") || !slices.Contains(p.LargeCommunities, "64513:1:2") || !p.Multipath {
				return false, fmt.Sprintf("path %+v: want communities 64513:100 and 64513:1:2, multipath", p)
			}
		}
		return true, ""
	})
	for _, ip := range ips {
		s.Poll(10*time.Second, "HTTP from client-ext to "+ip, func() (bool, string) {
			rep, err := s.get(lab.ClientExt, ip, 80)
			return err == nil && rep.Pod != "", fmt.Sprint(rep, err)
		})
	}
	s.Poll(30*time.Second, "node3's session reported down with a password hint", func() (bool, string) {
		st := s.session("router-node3-node3")
		return st.State != v1alpha1.SessionEstablished && st.State != "" && strings.Contains(st.Message, "password"), fmt.Sprintf("%+v", st)
	})
	s.Poll(30*time.Second, "node1's session reported up with BFD and prefixes", func() (bool, string) {
		st := s.session("router-node1")
		return st.State == v1alpha1.SessionEstablished && st.BFDState == "Up" && st.Prefixes >= 1, fmt.Sprintf("%+v", st)
	})

	// The right password: node3 joins the ECMP set.
	sec, err := l.Kube().CoreV1().Secrets("default").Get(s.Ctx, "router-node3", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"password": []byte("s3cret")}
	if _, err := l.Kube().CoreV1().Secrets("default").Update(s.Ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		s.waitNextHops(ip, 45*time.Second, "node1", "node2", "node3")
	}

	// Local policy: only node1 has the endpoint; the echo server sees the
	// real client address; the route goes when the endpoint goes.
	s.Apply(bgpService("local", corev1.ServiceExternalTrafficPolicyLocal, map[string]string{"app": "n1-p1"}))
	lips := s.Ingress("local")
	for _, ip := range lips {
		s.waitNextHops(ip, 20*time.Second, "node1")
	}
	ext := l.Topology().ClientExt
	for _, ip := range lips {
		want := ext.IPv4
		if netip.MustParseAddr(ip).Is6() {
			want = ext.IPv6
		}
		s.Poll(10*time.Second, "client address preserved via "+ip, func() (bool, string) {
			rep, err := s.get(lab.ClientExt, ip, 80)
			return err == nil && rep.Pod == "n1-p1" && rep.Client.Addr() == want, fmt.Sprint(rep, err)
		})
	}
	if err := l.SetPodReady(s.Ctx, "n1-p1", false); err != nil {
		t.Fatal(err)
	}
	for _, ip := range lips {
		s.waitNextHops(ip, 20*time.Second) // withdrawn
	}
	if err := l.SetPodReady(s.Ctx, "n1-p1", true); err != nil {
		t.Fatal(err)
	}
	s.waitNextHops(lips[0], 20*time.Second, "node1")
	if err := l.Kube().CoreV1().Services("default").Delete(s.Ctx, "local", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range lips {
		s.waitNextHops(ip, 20*time.Second) // Service deleted: withdrawn
	}

	// Graceful restart: restart node1's speaker (SIGTERM, then start)
	// while client-ext sends requests; none fails.
	var sent, failed atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			sent.Add(1)
			if _, err := s.get(lab.ClientExt, ips[0], 80); err != nil {
				failed.Add(1)
				t.Logf("request failed during the restart: %v", err)
			}
		}
	}()
	s.StopSpeaker("node1")
	s.Poll(15*time.Second, "router to see node1 go", func() (bool, string) {
		var n map[string]struct {
			State string `json:"bgpState"`
		}
		a := nodeAddrs(l, ips[0], "node1")[0].String()
		err := r.VtyshJSON(s.Ctx, "show bgp neighbors "+a+" json", &n)
		return err == nil && n[a].State != "Established", fmt.Sprint(n, err)
	})
	s.StartSpeaker("node1")
	s.Poll(30*time.Second, "node1's session back", func() (bool, string) {
		st := s.session("router-node1")
		return st.State == v1alpha1.SessionEstablished, fmt.Sprintf("%+v", st)
	})
	s.waitNextHops(ips[0], 20*time.Second, "node1", "node2", "node3")
	close(stop)
	<-done
	t.Logf("graceful restart of node1's speaker: %d requests, %d failed", sent.Load(), failed.Load())
	if failed.Load() != 0 || sent.Load() < 10 {
		t.Errorf("graceful restart: %d of %d requests failed", failed.Load(), sent.Load())
	}

	// BFD: cut node2's LAN link (its switch port); the router drops it
	// from the ECMP set well before the 9 s hold time.
	if err := l.SetCable(s.Ctx, "node2", false); err != nil {
		t.Fatal(err)
	}
	d := s.waitNextHops(ips[0], 3*time.Second, "node1", "node3")
	t.Logf("node2's link cut: out of the ECMP set after %v (BFD 300 ms x 3)", d.Round(time.Millisecond))
	if err := l.SetCable(s.Ctx, "node2", true); err != nil {
		t.Fatal(err)
	}
	s.waitNextHops(ips[0], 30*time.Second, "node1", "node2", "node3")

	// Service deleted: every route withdrawn.
	if err := l.Kube().CoreV1().Services("default").Delete(s.Ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		s.waitNextHops(ip, 20*time.Second)
	}
}
