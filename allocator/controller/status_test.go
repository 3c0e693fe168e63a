package controller_test

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/provider"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
)

// create makes a cluster-scoped Beacon object and deletes it when the test
// ends.
func (h *harness) create(resource string, obj interface {
	runtime.Object
	GetName() string
}) {
	h.t.Helper()
	if err := h.env.Beacon.Create(h.ctx, resource, obj); err != nil {
		h.t.Fatalf("create %s %s: %v", resource, obj.GetName(), err)
	}
	name := obj.GetName()
	h.t.Cleanup(func() { _ = h.env.Beacon.Delete(context.Background(), resource, name) })
}

// kubectl runs kubectl against the test API server and returns its output.
func (h *harness) kubectl(args ...string) string {
	h.t.Helper()
	out, err := exec.CommandContext(h.ctx, "kubectl", append([]string{"--kubeconfig", h.env.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		h.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// conditions renders an object's conditions as "Type=Status/Reason: message"
// lines, sorted by type.
func conditions(conds []metav1.Condition) string {
	var out []string
	for _, typ := range []string{v1alpha1.ConditionAccepted, v1alpha1.ConditionResolvedRefs} {
		if c := meta.FindStatusCondition(conds, typ); c != nil {
			out = append(out, fmt.Sprintf("%s=%s/%s: %s", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	return strings.Join(out, "\n")
}

// TestConfigStatus: the controller writes Accepted and ResolvedRefs on
// every configuration object, cross-object problems included, updates them
// when the problem is fixed without touching objects whose status holds,
// and `kubectl get` shows them; `kubectl get beacon` lists every kind.
func TestConfigStatus(t *testing.T) {
	h := newHarness(t)
	h.pool("t-st", nil, "198.18.19.0/30")
	good := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "t-st-good"}, Spec: v1alpha1.L2AdvertisementSpec{IPPools: []string{"t-st"}}}
	h.create(client.L2Advertisements, good)
	h.create(client.L2Advertisements, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "t-st-dangling"},
		Spec: v1alpha1.L2AdvertisementSpec{IPPools: []string{"t-st-gone"}}})
	h.create(client.L2Advertisements, &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "t-st-badsel"},
		Spec: v1alpha1.L2AdvertisementSpec{IPPoolSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: "Near", Values: []string{"x"}}}}}})
	peer := v1alpha1.BGPPeerSpec{MyASN: 64512, PeerASN: 64500, PeerAddress: "198.51.100.1", BFDProfile: "t-st-fast"}
	h.create(client.BGPPeers, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "t-st-nobfd"}, Spec: peer})
	peer.PasswordSecretRef = &v1alpha1.SecretKeyRef{Name: "t-st-pw"}
	peer.BFDProfile = ""
	h.create(client.BGPPeers, &v1alpha1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "t-st-pw"}, Spec: peer})
	h.create(client.BGPAdvertisements, &v1alpha1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "t-st-adv"},
		Spec: v1alpha1.BGPAdvertisementSpec{IPPools: []string{"t-st"}, Peers: []string{"t-st-pw", "t-st-ghost"}}})
	h.startController(nil)

	type getter func() (*v1alpha1.ConfigStatus, int64)
	get := func(resource, name string, obj interface {
		runtime.Object
		GetGeneration() int64
	}, st *v1alpha1.ConfigStatus) getter {
		return func() (*v1alpha1.ConfigStatus, int64) {
			if err := h.env.Beacon.Get(h.ctx, resource, name, obj); err != nil {
				t.Fatalf("get %s %s: %v", resource, name, err)
			}
			return st, obj.GetGeneration()
		}
	}
	l2 := func(name string) getter {
		o := &v1alpha1.L2Advertisement{}
		return get(client.L2Advertisements, name, o, &o.Status)
	}
	bgpPeer := func(name string) getter {
		o := &v1alpha1.BGPPeer{}
		return get(client.BGPPeers, name, o, &o.Status)
	}
	bgpAd := func(name string) getter {
		o := &v1alpha1.BGPAdvertisement{}
		return get(client.BGPAdvertisements, name, o, &o.Status)
	}
	bfd := func(name string) getter {
		o := &v1alpha1.BFDProfile{}
		return get(client.BFDProfiles, name, o, &o.Status)
	}
	wait := func(what string, g getter, want string) {
		t.Helper()
		h.eventually(10*time.Second, "status of "+what, func() (bool, string) {
			st, gen := g()
			got := conditions(st.Conditions)
			return got == want && st.ObservedGeneration == gen, fmt.Sprintf("generation %d observed %d:\n%s", gen, st.ObservedGeneration, got)
		})
	}
	const (
		valid    = "Accepted=True/Valid: valid; the speakers use it"
		resolved = "ResolvedRefs=True/Resolved: every named object exists and is valid"
		kept     = "speakers that ran an earlier valid version keep running it, others ignore it"
	)
	wait("good L2Advertisement", l2("t-st-good"), valid+"\n"+resolved)
	wait("dangling L2Advertisement", l2("t-st-dangling"), valid+"\n"+`ResolvedRefs=False/MissingReference: pool "t-st-gone" does not exist or is invalid`)
	wait("L2Advertisement with an invalid selector", l2("t-st-badsel"),
		`Accepted=False/Invalid: ipPoolSelector: "Near" is not a valid label selector operator; the speakers ignore it`)
	wait("peer without its BFD profile", bgpPeer("t-st-nobfd"),
		`Accepted=False/MissingReference: bfdProfile "t-st-fast" does not exist; `+kept+"\n"+
			`ResolvedRefs=False/MissingReference: bfdProfile "t-st-fast" does not exist`)
	wait("peer with a password", bgpPeer("t-st-pw"), valid+"\n"+resolved+"; password Secret t-st-pw is checked by the speakers (see BGPSessionState)")
	wait("advertisement naming a missing peer", bgpAd("t-st-adv"), valid+"\n"+`ResolvedRefs=False/MissingReference: peer "t-st-ghost" does not exist or is invalid`)

	// At a glance: the printer columns.
	columns := func(args []string, res ...string) {
		t.Helper()
		out := h.kubectl(append([]string{"get"}, args...)...)
		for _, re := range res {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("kubectl get %s does not match %s:\n%s", strings.Join(args, " "), re, out)
			}
		}
	}
	getPeers := func(res ...string) {
		t.Helper()
		columns([]string{"bgppeers.beaconlb.io", "t-st-nobfd", "t-st-pw"},
			append([]string{`(?m)^NAME\s+ADDRESS\s+MY ASN\s+PEER ASN\s+BFD\s+ACCEPTED\s+REASON\s+REFS RESOLVED\s+REFS REASON\s+AGE$`}, res...)...)
	}
	columns([]string{"l2advertisements.beaconlb.io", "t-st-good", "t-st-dangling", "t-st-badsel"},
		`(?m)^NAME\s+IPPOOLS\s+.*\sACCEPTED\s+REASON\s+REFS RESOLVED\s+REFS REASON\s+AGE$`,
		`(?m)^t-st-good\s+\["t-st"\]\s.*\sTrue\s+Valid\s+True\s+Resolved\s`,
		`(?m)^t-st-dangling\s+\["t-st-gone"\]\s.*\sTrue\s+Valid\s+False\s+MissingReference\s`,
		`(?m)^t-st-badsel\s.*\sFalse\s+Invalid\s`)
	columns([]string{"bgpadvertisements.beaconlb.io", "t-st-adv"},
		`(?m)^NAME\s+IPPOOLS\s+PEERS\s+.*\sACCEPTED\s+REASON\s+REFS RESOLVED\s+REFS REASON\s+AGE$`,
		`(?m)^t-st-adv\s+\["t-st"\]\s+\["t-st-pw","t-st-ghost"\]\s.*\sTrue\s+Valid\s+False\s+MissingReference\s`)
	getPeers(`(?m)^t-st-nobfd\s+198\.51\.100\.1\s+64512\s+64500\s+t-st-fast\s+False\s+MissingReference\s+False\s+MissingReference\s`,
		`(?m)^t-st-pw\s+198\.51\.100\.1\s+64512\s+64500\s+True\s+Valid\s+True\s+Resolved\s`)

	// The password Secret, which only the speakers may read, as they
	// report it: missing on one node, then no complaint from any.
	report := func(node, problem string) {
		t.Helper()
		name := "t-st-pw-" + node
		want := v1alpha1.BGPSessionState{ObjectMeta: metav1.ObjectMeta{Name: name}, Node: node, Peer: "t-st-pw",
			PeerAddress: "198.51.100.1", State: v1alpha1.SessionConfiguring, PasswordSecret: problem}
		var cur v1alpha1.BGPSessionState
		err := h.env.Beacon.Get(h.ctx, client.BGPSessionStates, name, &cur)
		switch {
		case apierrors.IsNotFound(err):
			h.create(client.BGPSessionStates, &want)
			return
		case err != nil:
			t.Fatal(err)
		}
		want.ResourceVersion = cur.ResourceVersion
		if err := h.env.Beacon.Update(h.ctx, client.BGPSessionStates, name, &want); err != nil {
			t.Fatal(err)
		}
	}
	report("t-st-n1", "")
	report("t-st-n2", v1alpha1.PasswordSecretMissing)
	wait("peer whose Secret a speaker misses", bgpPeer("t-st-pw"),
		valid+"\n"+"ResolvedRefs=False/SecretNotFound: password Secret t-st-pw: not found on node t-st-n2 (see BGPSessionState)")
	getPeers(`(?m)^t-st-pw\s+198\.51\.100\.1\s+64512\s+64500\s+True\s+Valid\s+False\s+SecretNotFound\s`)
	report("t-st-n2", "")
	wait("peer whose Secret no speaker complains about", bgpPeer("t-st-pw"), valid+"\n"+resolved+"; no speaker reports a problem with password Secret t-st-pw (2 reports)")
	getPeers(`(?m)^t-st-pw\s+198\.51\.100\.1\s+64512\s+64500\s+True\s+Valid\s+True\s+Resolved\s`)
	// A report that holds nothing new about the Secret (the session came
	// up) does not rewrite the peer.
	var pwBefore v1alpha1.BGPPeer
	if err := h.env.Beacon.Get(h.ctx, client.BGPPeers, "t-st-pw", &pwBefore); err != nil {
		t.Fatal(err)
	}
	var up v1alpha1.BGPSessionState
	if err := h.env.Beacon.Get(h.ctx, client.BGPSessionStates, "t-st-pw-t-st-n1", &up); err != nil {
		t.Fatal(err)
	}
	up.State = v1alpha1.SessionEstablished
	if err := h.env.Beacon.Update(h.ctx, client.BGPSessionStates, up.Name, &up); err != nil {
		t.Fatal(err)
	}

	// Fixing the reference flips the peer; the good advertisement, whose
	// status holds, is not rewritten.
	before := &v1alpha1.L2Advertisement{}
	if err := h.env.Beacon.Get(h.ctx, client.L2Advertisements, "t-st-good", before); err != nil {
		t.Fatal(err)
	}
	h.create(client.BFDProfiles, &v1alpha1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "t-st-fast"}})
	wait("peer with its BFD profile", bgpPeer("t-st-nobfd"), valid+"\n"+resolved)
	wait("BFD profile", bfd("t-st-fast"), valid)
	columns([]string{"bfdprofiles.beaconlb.io", "t-st-fast"},
		`(?m)^NAME\s+RECEIVE\s+TRANSMIT\s+MULTIPLIER\s+ACCEPTED\s+REASON\s+AGE$`,
		`(?m)^t-st-fast\s.*\sTrue\s+Valid\s`)
	after := &v1alpha1.L2Advertisement{}
	if err := h.env.Beacon.Get(h.ctx, client.L2Advertisements, "t-st-good", after); err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("unchanged L2Advertisement rewritten: resourceVersion %s -> %s\n%s", before.ResourceVersion, after.ResourceVersion, conditions(after.Status.Conditions))
	}
	var pwAfter v1alpha1.BGPPeer
	if err := h.env.Beacon.Get(h.ctx, client.BGPPeers, "t-st-pw", &pwAfter); err != nil {
		t.Fatal(err)
	}
	if pwAfter.ResourceVersion != pwBefore.ResourceVersion {
		t.Errorf("unchanged BGPPeer rewritten: resourceVersion %s -> %s\n%s", pwBefore.ResourceVersion, pwAfter.ResourceVersion, conditions(pwAfter.Status.Conditions))
	}

	// `kubectl get beacon` lists every kind; short names do not clash.
	out := h.kubectl("get", "beacon")
	for _, want := range []string{"ippool.beaconlb.io/t-st", "l2advertisement.beaconlb.io/t-st-good", "bgppeer.beaconlb.io/t-st-pw",
		"bgpadvertisement.beaconlb.io/t-st-adv", "bfdprofile.beaconlb.io/t-st-fast"} {
		if !strings.Contains(out, want) {
			t.Errorf("kubectl get beacon lacks %s:\n%s", want, out)
		}
	}
	for short, want := range map[string]string{"bip": "t-st", "ipp": "t-st", "l2adv": "t-st-dangling", "bgpp": "t-st-nobfd", "bgpadv": "t-st-adv", "bfdp": "t-st-fast"} {
		if out := h.kubectl("get", short, want, "-o", "name"); !strings.Contains(out, "/"+want) {
			t.Errorf("kubectl get %s %s: %s", short, want, out)
		}
	}
}

// TestAllocatedFromPoolAnnotation: the Service names the pool(s) its
// addresses came from, follows a change of pool and loses the annotation
// when its address is released.
func TestAllocatedFromPoolAnnotation(t *testing.T) {
	h := newHarness(t)
	h.pool("t-from4", nil, "198.18.20.0/31")
	h.pool("t-from6", nil, "2001:db8:20::/127")
	h.pool("t-from-other", func(p *v1alpha1.IPPool) { p.Spec.AutoAssign = ptr.To(false) }, "198.18.21.0/31")
	h.startController(nil)
	waitAnnotation := func(name, want string) {
		t.Helper()
		h.eventually(10*time.Second, "allocated-from-pool of "+name, func() (bool, string) {
			s, err := h.getService(name)
			if err != nil {
				return false, err.Error()
			}
			got, ok := s.Annotations[provider.AnnotationAllocatedFrom]
			return got == want && ok == (want != ""), fmt.Sprintf("%q (present %v), ingress %v", got, ok, ingress(s))
		})
	}
	h.service("v4", nil)
	h.waitIPs("v4", "198.18.20.0")
	waitAnnotation("v4", "t-from4")
	h.service("both", func(s *v1.Service) { s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack) })
	h.waitIPs("both", "198.18.20.1", "2001:db8:20::")
	waitAnnotation("both", "t-from4,t-from6")

	h.updateService("v4", func(s *v1.Service) { s.Annotations[provider.AnnotationPool] = "t-from-other" })
	h.waitIPs("v4", "198.18.21.0")
	waitAnnotation("v4", "t-from-other")

	h.updateService("v4", func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeClusterIP })
	h.waitIPs("v4")
	waitAnnotation("v4", "")
	// Nobody else writes it: no Warning about an unknown annotation.
	evs, err := h.env.Kube.CoreV1().Events(h.ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if strings.Contains(e.Message, provider.AnnotationAllocatedFrom) {
			t.Errorf("Event about our own annotation: %s %s", e.Reason, e.Message)
		}
	}
}
