package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
	"github.com/beaconlb/beacon/speaker/agent"
)

// TestL2KernelAnswersIPVS reproduces what kube-proxy in ipvs mode does to
// ARP on a node, without IPVS (this kernel has none): an interface
// kube-ipvs0, kept down, holds the Service's addresses, and arp_ignore
// stays 0. kube-proxy's is a dummy device; this kernel has no dummy
// driver either, so kube-ipvs0 here is an ifb device, another software
// device without a wire; what the kernel answers depends only on the
// address being local and on arp_ignore, not on the device type.
//
// The node that lost the election then answers ARP for the address too
// (the LAN sees two MACs), not NDP; its speaker reports it with a Warning
// Event on its Node and beacon_l2_kernel_answered_addresses. What
// kube-proxy's strictARP sets (arp_ignore=1, arp_announce=2) stops the
// kernel's answers, and the report clears.
func TestL2KernelAnswersIPVS(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 2, PodsPerNode: 1})
	s := startBeacon(t, l)
	s.LANPool()
	s.Apply(echoService("web", "n1-p1", nil))
	var v4, v6 netip.Addr
	for _, ip := range s.Ingress("web") {
		a := netip.MustParseAddr(ip)
		if a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	announcer, _ := s.AnsweredBy(v4.String(), 20*time.Second, func(n string) bool { return n == s.announcerOf("web", v4.String()) })
	var other string
	for _, n := range l.Nodes() {
		if n.Name != announcer {
			other = n.Name
		}
	}
	macOf := func(name string) string {
		n, _ := l.Node(name)
		return n.MAC.String()
	}
	t.Logf("web got %s and %s; %s (%s) announces %s, %s (%s) does not", v4, v6, announcer, macOf(announcer), v4, other, macOf(other))
	if got := s.metric(other, `beacon_l2_kernel_answered_addresses{family="ipv4"}`); got != 0 {
		t.Errorf("before kube-ipvs0: %s's gauge is %v, want 0", other, got)
	}

	// kube-proxy's ipvs mode on the other node, as far as ARP is
	// concerned.
	ns := lab.Netns(other)
	sysctls := []string{"net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce"}
	saved := map[string]string{}
	for _, k := range sysctls {
		out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-n", k).Output()
		if err != nil {
			t.Fatalf("read %s in %s: %v", k, ns, err)
		}
		saved[k] = strings.TrimSpace(string(out))
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "-n", ns, "link", "del", "kube-ipvs0").Run()
		for _, k := range sysctls {
			_ = exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", k+"="+saved[k]).Run()
		}
	})
	if saved["net.ipv4.conf.all.arp_ignore"] != "0" {
		t.Fatalf("%s has net.ipv4.conf.all.arp_ignore=%s, want the kernel's default 0", other, saved["net.ipv4.conf.all.arp_ignore"])
	}
	run(t, "ip", "-n", ns, "link", "add", "kube-ipvs0", "type", "ifb")
	run(t, "ip", "-n", ns, "addr", "add", v4.String()+"/32", "dev", "kube-ipvs0")
	run(t, "ip", "-n", ns, "addr", "add", v6.String()+"/128", "dev", "kube-ipvs0")
	added := time.Now()

	// The premise, on the real kernel: both nodes answer ARP for v4.
	both := []string{macOf(announcer), macOf(other)}
	slices.Sort(both)
	var before []string
	s.Poll(10*time.Second, "ARP answers for "+v4.String()+" from both nodes", func() (bool, string) {
		before = s.Resolve(v4.String())
		slices.Sort(before)
		return slices.Equal(before, both), fmt.Sprint(before)
	})
	t.Logf("with %s on %s's kube-ipvs0 and arp_ignore 0: ARP for %s answered by %v", v4, other, v4, before)
	// NDP: the kernel answers only for addresses on the receiving
	// interface.
	owner6 := s.announcerOf("web", v6.String())
	if owner6 == "" {
		t.Fatalf("no single node reports announcing %s", v6)
	}
	for range 3 {
		if got := s.Resolve(v6.String()); !slices.Equal(got, []string{macOf(owner6)}) {
			t.Errorf("NDP for %s answered by %v, want its announcer %s (%s) only", v6, got, owner6, macOf(owner6))
		} else {
			t.Logf("NDP for %s answered by %v (%s)", v6, got, owner6)
		}
	}

	// The other node's speaker says so.
	s.Poll(30*time.Second, other+" reports the kernel's answers", func() (bool, string) {
		v := s.metric(other, `beacon_l2_kernel_answered_addresses{family="ipv4"}`)
		return v == 1, fmt.Sprint(v)
	})
	t.Logf("gauge of %s at 1 %v after kube-ipvs0 got the addresses", other, time.Since(added).Round(time.Millisecond))
	s.waitEvent(other, agent.EventKernelAnswers, v4.String()+" on "+lab.LANInterface+" (interface kube-ipvs0 holds it; effective arp_ignore of eth0 is 0)")
	s.waitEvent(other, agent.EventKernelAnswers, "set ipvs.strictARP: true")
	warning := s.nodeEventText(other, agent.EventKernelAnswers)
	if !strings.HasPrefix(warning, corev1.EventTypeWarning+" ") {
		t.Errorf("%s Event is %q, want a Warning", agent.EventKernelAnswers, warning)
	}
	t.Logf("%v after kube-ipvs0 got the addresses: Event on Node %s: %s %s", time.Since(added).Round(time.Millisecond), other, agent.EventKernelAnswers, warning)
	if v := s.metric(other, `beacon_l2_kernel_answered_addresses{family="ipv6"}`); v != 0 {
		t.Errorf("%s's gauge for ipv6 is %v, want 0 (the kernel answers NDP only for addresses on the receiving interface)", other, v)
	}
	if v := s.metric(announcer, `beacon_l2_kernel_answered_addresses{family="ipv4"}`); v != 0 {
		t.Errorf("%s's gauge is %v, want 0: its kernel holds no Service address", announcer, v)
	}

	// What strictARP sets.
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
	strict := time.Now()
	var after []string
	s.Poll(10*time.Second, "ARP answers for "+v4.String()+" from "+announcer+" only", func() (bool, string) {
		after = s.Resolve(v4.String())
		return slices.Equal(after, []string{macOf(announcer)}), fmt.Sprint(after)
	})
	t.Logf("with arp_ignore=1 and arp_announce=2 on %s: ARP for %s answered by %v", other, v4, after)
	s.Poll(30*time.Second, other+"'s gauge back to 0", func() (bool, string) {
		v := s.metric(other, `beacon_l2_kernel_answered_addresses{family="ipv4"}`)
		return v == 0, fmt.Sprint(v)
	})
	t.Logf("gauge of %s back to 0 %v after the sysctls", other, time.Since(strict).Round(time.Millisecond))
	// The Normal Event may wait out the Warning's rate limit (30 s).
	var cleared string
	s.Poll(60*time.Second, agent.EventKernelAnswersCleared+" on "+other, func() (bool, string) {
		cleared = s.nodeEventText(other, agent.EventKernelAnswersCleared)
		return cleared != "", ""
	})
	if !strings.HasPrefix(cleared, corev1.EventTypeNormal+" ") {
		t.Errorf("%s Event is %q, want a Normal one", agent.EventKernelAnswersCleared, cleared)
	}
	t.Logf("%v after the sysctls: Event on Node %s: %s %s", time.Since(strict).Round(time.Millisecond), other, agent.EventKernelAnswersCleared, cleared)
	if got := s.Resolve(v4.String()); !slices.Equal(got, []string{macOf(announcer)}) {
		t.Errorf("ARP for %s answered by %v at the end, want %s only", v4, got, macOf(announcer))
	}
	// One Event each, not one per sync (the speaker synced every 5 s or
	// more often all along).
	for _, reason := range []string{agent.EventKernelAnswers, agent.EventKernelAnswersCleared} {
		evs, err := l.Kube().CoreV1().Events("default").List(s.Ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.kind=Node,reason=" + reason})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range evs.Items {
			n += int(max(e.Count, 1))
		}
		if n != 1 {
			t.Errorf("%d %s Events over the nodes, want 1", n, reason)
		}
	}
}

// run runs a command and fails the test if it fails.
func run(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}
