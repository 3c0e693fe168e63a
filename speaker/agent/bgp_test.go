package agent_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/cli"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/speaker/agent"
	"github.com/beaconlb/beacon/speaker/bgp"
)

// fakeBGP records the desired state and reports every desired peer as
// Established with its routes announced. (speaker/bgp's own tests run the
// real gobgp against real FRR.)
type fakeBGP struct {
	mu      sync.Mutex
	desired bgp.Desired
	applied int
	ch      chan struct{}
}

func (f *fakeBGP) Apply(d bgp.Desired) {
	f.mu.Lock()
	f.desired = d
	f.applied++
	f.mu.Unlock()
	select {
	case f.ch <- struct{}{}:
	default:
	}
}

func (f *fakeBGP) Sessions() []bgp.Session {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bgp.Session
	for _, p := range f.desired.Peers {
		out = append(out, bgp.Session{Name: p.Name, Address: p.Address, State: "Established", Prefixes: len(p.Routes), Since: time.Unix(1700000000, 0)})
	}
	return out
}

func (f *fakeBGP) Changes() <-chan struct{} { return f.ch }

func (f *fakeBGP) get() bgp.Desired {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.desired
}

// TestAgentBGP: against a real API server, the agent turns BGPPeers,
// BGPAdvertisements, BFDProfiles, a password Secret, Nodes and Services into
// the speaker's desired state, writes BGPSessionState and ServiceAnnouncement
// reports, and keeps the last good peer when an edit breaks it.
func TestAgentBGP(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := e.Kube
	const ns = "beacon-bgp"
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := kube.CoreV1().Namespaces().Create(ctx, &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	must(err)
	_, err = kube.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tor-pw"},
		Data: map[string][]byte{"password": []byte("pw-1")}}, metav1.CreateOptions{})
	must(err)
	node := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bnode1", Labels: map[string]string{"rack": "a"}}}
	node, err = kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	must(err)
	node.Status.Addresses = []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: "198.51.100.11"}}
	_, err = kube.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	must(err)

	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "routed"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"203.0.113.0/24"}
	must(e.Beacon.Create(ctx, client.IPPools, pool))
	must(e.Beacon.Create(ctx, client.BFDProfiles, &v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"},
		Spec: v1alpha1.BFDProfileSpec{ReceiveInterval: ptrTo(int32(100)), TransmitInterval: ptrTo(int32(100))}}))
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "tor"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1", BFDProfile: "fast",
		PasswordSecretRef: &v1alpha1.SecretKeyRef{Name: "tor-pw"},
		NodeSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "a"}},
	}}
	must(e.Beacon.Create(ctx, client.BGPPeers, peer))
	// Selects no node: this node opens no session with it.
	must(e.Beacon.Create(ctx, client.BGPPeers, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.9",
		NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rack": "z"}},
	}}))
	must(e.Beacon.Create(ctx, client.BGPAdvertisements, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "routed"},
		Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"routed"}, Communities: []v1alpha1.Community{"65000:100"}}}))
	svc, err := kube.CoreV1().Services("default").Create(ctx, &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: []v1.ServicePort{{Port: 443}}},
	}, metav1.CreateOptions{})
	must(err)
	svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "203.0.113.5"}}
	_, err = kube.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{})
	must(err)

	fb := &fakeBGP{ch: make(chan struct{}, 1)}
	rec := record.NewFakeRecorder(100)
	a := newAgent(t, agent.Config{
		Node: "bnode1", Clients: cli.Clients{Kube: kube, Beacon: e.Beacon}, Recorder: rec, Log: logr.Discard(), MemberPort: 7946,
		Liveness: &fakeLiveness{alive: map[string]bool{}, ch: make(chan struct{})}, Links: &fakeLinks{ips: map[string][]netip.Addr{}},
		BGP: fb, Namespace: ns,
	})
	actx, acancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = a.Run(actx); close(done) }()
	defer func() { acancel(); <-done }()

	pollFor := func(timeout time.Duration, what string, cond func() (bool, string)) {
		t.Helper()
		var last string
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
			ok, s := cond()
			last = s
			return ok, nil
		})
		if err != nil {
			t.Fatalf("%s: %s", what, last)
		}
	}
	poll := func(what string, cond func() (bool, string)) { t.Helper(); pollFor(15*time.Second, what, cond) }
	render := func(d bgp.Desired) string {
		var b strings.Builder
		fmt.Fprintf(&b, "asn %d id %s", d.ASN, d.RouterID)
		for _, p := range d.Peers {
			fmt.Fprintf(&b, "; %s %s pw=%s", p.Name, p.Address, p.Password)
			if p.BFD != nil {
				fmt.Fprintf(&b, " bfd=%s/%s/%d", p.BFD.Transmit, p.BFD.Receive, p.BFD.Multiplier)
			}
			for _, r := range p.Routes {
				fmt.Fprintf(&b, " %s%v", r.Prefix, r.Communities)
			}
		}
		return b.String()
	}
	want := "asn 64512 id 198.51.100.11; tor 198.51.100.1 pw=pw-1 bfd=100ms/100ms/3 203.0.113.5/32[65000:100]"
	poll("desired state", func() (bool, string) { got := render(fb.get()); return got == want, got })

	// Reports: the session state and the Service's BGP announcement.
	poll("BGPSessionState", func() (bool, string) {
		var s v1alpha1.BGPSessionState
		if err := e.Beacon.Get(ctx, client.BGPSessionStates, "tor-bnode1", &s); err != nil {
			return false, err.Error()
		}
		return s.State == "Established" && s.Prefixes == 1 && s.Node == "bnode1" && s.PeerAddress == "198.51.100.1" && s.Labels[v1alpha1.NodeLabel] == "bnode1" &&
			s.PasswordSecret == "", fmt.Sprintf("%+v", s)
	})
	poll("ServiceAnnouncement via BGP", func() (bool, string) {
		var list v1alpha1.ServiceAnnouncementList
		if err := e.Beacon.List(ctx, "default", client.ServiceAnnouncements, &list); err != nil {
			return false, err.Error()
		}
		for _, sa := range list.Items {
			if sa.Service == "api" && sa.Via == v1alpha1.ViaBGP && sa.Node == "bnode1" && fmt.Sprint(sa.Addresses, sa.Peers) == "[203.0.113.5] [tor]" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", list.Items)
	})

	// The password Secret breaks and is fixed: the report says what is
	// wrong in passwordSecret (for the controller) and in the message, the
	// session keeps the password in use, and the report clears once the
	// Secret is readable. The speaker re-reads a Secret after secretTTL, so
	// each step may take that long plus a resync.
	passwordReport := func(what, wantProblem, wantMsg string) {
		t.Helper()
		pollFor(30*time.Second, what, func() (bool, string) {
			var s v1alpha1.BGPSessionState
			if err := e.Beacon.Get(ctx, client.BGPSessionStates, "tor-bnode1", &s); err != nil {
				return false, err.Error()
			}
			return s.PasswordSecret == wantProblem && strings.Contains(s.Message, wantMsg), fmt.Sprintf("passwordSecret %q message %q", s.PasswordSecret, s.Message)
		})
		if got := render(fb.get()); got != want {
			t.Errorf("desired state changed by a broken password Secret:\n got %s\nwant %s", got, want)
		}
	}
	must(kube.CoreV1().Secrets(ns).Delete(ctx, "tor-pw", metav1.DeleteOptions{}))
	passwordReport("Secret deleted", v1alpha1.PasswordSecretMissing, `password Secret beacon-bgp/tor-pw: secrets "tor-pw" not found: keeping the password in use`)
	_, err = kube.CoreV1().Secrets(ns).Create(ctx, &v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "tor-pw"},
		Data: map[string][]byte{"md5": []byte("pw-1")}}, metav1.CreateOptions{})
	must(err)
	passwordReport("Secret without the key", v1alpha1.PasswordSecretNoKey, `password Secret beacon-bgp/tor-pw has no key "password": keeping the password in use`)
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, "tor-pw", metav1.GetOptions{})
	must(err)
	sec.Data = map[string][]byte{"password": []byte("pw-1")}
	_, err = kube.CoreV1().Secrets(ns).Update(ctx, sec, metav1.UpdateOptions{})
	must(err)
	passwordReport("Secret fixed", "", "")
	var fixed v1alpha1.BGPSessionState
	must(e.Beacon.Get(ctx, client.BGPSessionStates, "tor-bnode1", &fixed))
	if fixed.Message != "" {
		t.Errorf("message left on a fixed session: %q", fixed.Message)
	}

	// A broken edit (a BFD profile that does not exist): the last good
	// configuration stays applied, the report and an Event say why.
	must(e.Beacon.Get(ctx, client.BGPPeers, "tor", peer))
	peer.Spec.BFDProfile = "missing"
	must(e.Beacon.Update(ctx, client.BGPPeers, "tor", peer))
	poll("message on the session report", func() (bool, string) {
		var s v1alpha1.BGPSessionState
		if err := e.Beacon.Get(ctx, client.BGPSessionStates, "tor-bnode1", &s); err != nil {
			return false, err.Error()
		}
		return strings.Contains(s.Message, `bfdProfile "missing" does not exist`) && strings.Contains(s.Message, "last valid configuration"), s.Message
	})
	if got := render(fb.get()); got != want {
		t.Errorf("desired state changed by a broken edit:\n got %s\nwant %s", got, want)
	}
	poll("Warning Event", func() (bool, string) {
		select {
		case ev := <-rec.Events:
			return strings.Contains(ev, "Warning InvalidBGPConfiguration") && strings.Contains(ev, `bfdProfile "missing"`), ev
		default:
			return false, "no event"
		}
	})

	// Local policy and no endpoint on this node: the route goes, and a
	// Withdrawn Event says why.
	svc, err = kube.CoreV1().Services("default").Get(ctx, "api", metav1.GetOptions{})
	must(err)
	svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	_, err = kube.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{})
	must(err)
	poll("Withdrawn Event", func() (bool, string) {
		select {
		case ev := <-rec.Events:
			return ev == "Normal Withdrawn Withdrawn 203.0.113.5 from node bnode1 via BGP: externalTrafficPolicy is Local and the node has no ready endpoint of the Service", ev
		default:
			return false, "no event"
		}
	})
	if d := fb.get(); len(d.Peers) != 1 || len(d.Peers[0].Routes) != 0 {
		t.Errorf("route kept after Withdrawn: %s", render(d))
	}

	// The Service goes: its route and report go too; the session stays.
	must(kube.CoreV1().Services("default").Delete(ctx, "api", metav1.DeleteOptions{}))
	poll("route withdrawn", func() (bool, string) {
		d := fb.get()
		return len(d.Peers) == 1 && len(d.Peers[0].Routes) == 0, render(d)
	})

	// The peer is deleted: no session, no report.
	must(e.Beacon.Delete(ctx, client.BGPPeers, "tor"))
	poll("session gone", func() (bool, string) {
		var list v1alpha1.BGPSessionStateList
		if err := e.Beacon.List(ctx, "", client.BGPSessionStates, &list); err != nil {
			return false, err.Error()
		}
		return len(fb.get().Peers) == 0 && len(list.Items) == 0, fmt.Sprintf("%s %+v", render(fb.get()), list.Items)
	})
}

func ptrTo[T any](v T) *T { return &v }

// The speakers' warnings about cluster-scoped BGP objects show where
// operators look: in `kubectl describe` of the object itself.
func TestAgentBGPWarningsInDescribe(t *testing.T) {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	peer := &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "desc-peer"}, Spec: v1alpha1.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.2", BFDProfile: "desc-missing"}}
	ad := &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "desc-adv"},
		Spec: v1alpha1.BGPAdvertisementSpec{Peers: []string{"desc-ghost"}}}
	must(e.Beacon.Create(ctx, client.BGPPeers, peer))
	defer func() { _ = e.Beacon.Delete(context.Background(), client.BGPPeers, peer.Name) }()
	must(e.Beacon.Create(ctx, client.BGPAdvertisements, ad))
	defer func() { _ = e.Beacon.Delete(context.Background(), client.BGPAdvertisements, ad.Name) }()

	rec, stopRec, err := (&cli.Clients{Config: e.Config}).Recorder(ctx, v1.EventSource{Component: "beacon-speaker"})
	must(err)
	defer stopRec()
	a := newAgent(t, agent.Config{
		Node: "desc-node", Clients: cli.Clients{Kube: e.Kube, Beacon: e.Beacon}, Recorder: rec, Log: logr.Discard(), MemberPort: 7946,
		Liveness: &fakeLiveness{alive: map[string]bool{}, ch: make(chan struct{})}, Links: &fakeLinks{ips: map[string][]netip.Addr{}},
		BGP: &fakeBGP{ch: make(chan struct{}, 1)}, Namespace: "default",
	})
	actx, acancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = a.Run(actx); close(done) }()
	defer func() { acancel(); <-done }()

	waitDescribed(ctx, t, e, "bgppeers.beaconlb.io", peer.Name,
		`Warning\s+InvalidBGPConfiguration\s.*node desc-node: invalid: .*bfdProfile "desc-missing" does not exist`, nil)
	waitDescribed(ctx, t, e, "bgpadvertisements.beaconlb.io", ad.Name,
		`Warning\s+BGPConfigurationWarning\s.*node desc-node: .*"desc-ghost"`, nil)
}
