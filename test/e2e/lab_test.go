package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/echo"
	"github.com/beaconlb/beacon/lab/labtest"
)

// Every LAN station reaches every pod, over IPv4 and IPv6, through the
// flat pod routes, and the pod sees the station's own LAN address.
func TestLabFullMesh(t *testing.T) {
	l := labtest.Up(t, lab.Config{}) // defaults: 3 nodes × 2 pods
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, st := range l.Topology().Stations() {
		hc := l.HTTPClient(st.Name)
		for _, p := range l.Pods() {
			for _, a := range []netip.Addr{p.IPv4, p.IPv6} {
				want := st.IPv4
				if a.Is6() {
					want = st.IPv6
				}
				if st.Name == p.Node { // the node talks to its pods from its pod-link address
					want = l.Nodes()[p.NodeIndex-1].GatewayV4
					if a.Is6() {
						want = l.Nodes()[p.NodeIndex-1].GatewayV6
					}
				}
				url := "http://" + net.JoinHostPort(a.String(), strconv.Itoa(lab.EchoPort)) + "/"
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("%s -> %s (%v): %v", st.Name, p.Name, a, err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				r, err := echo.ParseReply(string(b))
				if err != nil || r.Pod != p.Name || r.Node != p.Node || r.Client.Addr() != want {
					t.Errorf("%s -> %s (%v): %q %v, want client %v", st.Name, p.Name, a, b, err, want)
				}
			}
		}
	}
}

// The CLI: `up` leaves a lab owned by its detached daemon after the up
// process is gone; status reports it, exec reaches pods, the daemon writes
// EndpointSlices, and `down` removes every namespace and process.
func TestLabCLI(t *testing.T) {
	labtest.Require(t)
	echoBin := labtest.BuildEcho(t)
	// This test binary is beacon-lab when BEACON_LAB_CLI=1 (see TestMain),
	// which saves linking the real one; its daemon inherits the variable.
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), labtest.UpTimeout)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, os.Args[0], args...)
		cmd.Env = append(os.Environ(), cliEnv+"=1", "BEACON_ECHO="+echoBin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("beacon-lab %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("beacon-lab %s: %v", args[0], time.Since(start).Round(time.Millisecond))
		return string(out)
	}
	run("up", "--nodes=1", "--pods-per-node=1")
	t.Cleanup(func() {
		if t.Failed() {
			_ = lab.DownAll()
		}
	})
	// A test cannot take over a CLI lab: it is told so at once.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := lab.Up(ctx, lab.Config{EchoBinary: echoBin}); err == nil || !strings.Contains(err.Error(), "beacon-lab down") {
		t.Fatalf("Up over a CLI lab: %v", err)
	}
	// `up` again replaces the lab.
	run("up", "--nodes=1", "--pods-per-node=2")

	status := run("status")
	for _, want := range []string{"ready at https://198.51.100.2:6443 (1 nodes, 2 pods)", "beacon-n1-p2", "lab-daemon", "198.51.100.11/24",
		"beacon-client-ext", "198.18.254.2/24", "frr-bgpd", "BGP NEIGHBOR", "2001:db8:100::11"} {
		if !strings.Contains(status, want) {
			t.Errorf("status lacks %q:\n%s", want, status)
		}
	}
	// vtysh in the router talks to the lab's FRR.
	var sum struct {
		IPv4 struct {
			AS    uint32                     `json:"as"`
			Peers map[string]json.RawMessage `json:"peers"`
		} `json:"ipv4Unicast"`
	}
	if out := run("exec", "router", "vtysh", "-c", "show bgp summary json"); json.Unmarshal([]byte(out), &sum) != nil ||
		sum.IPv4.AS != lab.RouterASN || sum.IPv4.Peers["198.51.100.11"] == nil {
		t.Errorf("exec router vtysh: %s", out)
	}

	l, err := lab.Attach()
	if err != nil {
		t.Fatal(err)
	}
	p := l.Pods()[1]
	out := run("exec", "client-lan", "curl", "-sS", "-m", "5", "http://"+net.JoinHostPort(p.IPv4.String(), strconv.Itoa(lab.EchoPort))+"/")
	if r, err := echo.ParseReply(out); err != nil || r.Pod != p.Name || r.Client.Addr() != l.Topology().ClientLAN.IPv4 {
		t.Errorf("exec curl: %q %v", out, err)
	}
	out = run("exec", "client-ext", "curl", "-sS", "-m", "5", "http://"+net.JoinHostPort(p.IPv4.String(), strconv.Itoa(lab.EchoPort))+"/")
	if r, err := echo.ParseReply(out); err != nil || r.Pod != p.Name || r.Client.Addr() != l.Topology().ClientExt.IPv4 {
		t.Errorf("exec curl from client-ext: %q %v", out, err)
	}

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "cli", Namespace: l.Namespace()},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{lab.LabelApp: "echo"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString(lab.PortNameHTTP)}},
		},
	}
	if _, err := l.Kube().CoreV1().Services(l.Namespace()).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		list, err := l.Kube().DiscoveryV1().EndpointSlices(l.Namespace()).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=cli"})
		if err == nil && len(list.Items) == 1 && len(list.Items[0].Endpoints) == 2 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the daemon wrote no EndpointSlice with 2 endpoints: %v %v", list, err)
		case <-tick.C:
		}
	}

	inv, err := lab.TakeInventory()
	if err != nil {
		t.Fatal(err)
	}
	run("down")
	surv, err := inv.Survivors()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range surv {
		t.Errorf("survived beacon-lab down: %s pid %d", p.Name, p.Pid)
	}
	after, err := lab.TakeInventory()
	if err != nil {
		t.Fatal(err)
	}
	if !after.Empty() {
		t.Errorf("leftovers after beacon-lab down: %v", after)
	}
	if out := run("status"); !strings.Contains(out, "no lab on this machine") {
		t.Errorf("status after down:\n%s", out)
	}
}
