package bgp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beaconlb/beacon/lab"
)

// frr is a real FRR (zebra, bgpd, bfdd) in the router namespace, with its
// own configuration, pid and vty directory.
type frr struct {
	t     *testing.T
	ns    string
	dir   string
	procs map[string]*exec.Cmd
	logs  map[string]*bytes.Buffer
}

// frrConfig is the router side of a test.
type frrConfig struct {
	ASN       uint32
	Neighbors []frrNeighbor
	// BFD profile "fast" timers in ms (0: 100).
	BFDInterval int
	// GracefulShutdown makes the router honour the GRACEFUL_SHUTDOWN
	// community from IPv4 neighbours (local preference 0), as RFC 8326 asks
	// of receivers.
	GracefulShutdown bool
}

type frrNeighbor struct {
	Address  string
	ASN      uint32
	Password string
	BFD      bool
}

func (c frrConfig) bgpd() string {
	var b strings.Builder
	b.WriteString("hostname router\nlog stdout informational\n!\n")
	if c.GracefulShutdown {
		b.WriteString("bgp community-list standard gshut seq 5 permit 65535:0\n!\nroute-map in permit 5\n match community gshut\n set local-preference 0\nexit\n!\nroute-map in permit 10\nexit\n!\n")
	}
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n bgp graceful-restart\n bgp bestpath as-path multipath-relax\n", c.ASN, routerV4)
	for _, n := range c.Neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s timers connect 1\n", n.Address, n.ASN, n.Address)
		if n.Password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", n.Address, n.Password)
		}
		if n.BFD {
			fmt.Fprintf(&b, " neighbor %s bfd profile fast\n", n.Address)
		}
	}
	for _, af := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n", af)
		for _, n := range c.Neighbors {
			if strings.Contains(n.Address, ":") == (af == "ipv6") {
				fmt.Fprintf(&b, "  neighbor %s activate\n", n.Address)
				if c.GracefulShutdown && af == "ipv4" {
					fmt.Fprintf(&b, "  neighbor %s route-map in in\n", n.Address)
				}
			}
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("exit\n")
	return b.String()
}

func (c frrConfig) bfdd() string {
	iv := c.BFDInterval
	if iv == 0 {
		iv = 100
	}
	return fmt.Sprintf("bfd\n profile fast\n  transmit-interval %d\n  receive-interval %d\n  detect-multiplier 3\n exit\nexit\n", iv, iv)
}

// startFRR starts zebra, bgpd and bfdd in the router namespace; they are
// killed when the test ends.
func startFRR(t *testing.T, routerNS string, cfg frrConfig) *frr {
	t.Helper()
	dir, err := os.MkdirTemp("", "bgpt-frr-")
	if err != nil {
		t.Fatal(err)
	}
	f := &frr{t: t, ns: routerNS, dir: dir, procs: map[string]*exec.Cmd{}, logs: map[string]*bytes.Buffer{}}
	t.Cleanup(func() {
		f.stopAll()
		if t.Failed() {
			for d, l := range f.logs {
				t.Logf("--- %s log (tail) ---\n%s", d, tail(l.String(), 3000))
			}
		}
		_ = os.RemoveAll(dir)
	})
	if err := lab.WriteFRRDir(dir, map[string]string{"zebra": "hostname router\n", "bgpd": cfg.bgpd(), "bfdd": cfg.bfdd(), "vtysh": "!\n"}); err != nil {
		t.Fatal(err)
	}
	f.start("zebra")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := lab.WaitZserv(ctx, dir, nil); err != nil {
		t.Fatal(err)
	}
	f.start("bfdd")
	f.start("bgpd")
	waitFor(t, 10*time.Second, "bgpd and bfdd answering", func() (bool, string) {
		_, err1 := f.vtysh("show bgp summary")
		_, err2 := f.vtysh("show bfd peers")
		return err1 == nil && err2 == nil, fmt.Sprint(err1, err2)
	})
	return f
}

func (f *frr) start(daemon string) {
	f.t.Helper()
	argv := append([]string{"netns", "exec", f.ns}, lab.FRRArgv(f.dir, daemon)...)
	cmd := exec.Command("ip", argv...)
	if f.logs[daemon] == nil {
		f.logs[daemon] = &bytes.Buffer{}
	}
	cmd.Stdout, cmd.Stderr = f.logs[daemon], f.logs[daemon]
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.t.Fatalf("start %s: %v", daemon, err)
	}
	f.procs[daemon] = cmd
}

func (f *frr) stop(daemon string) {
	if c := f.procs[daemon]; c != nil {
		_ = c.Process.Kill()
		_ = c.Wait()
		delete(f.procs, daemon)
	}
}

func (f *frr) stopAll() {
	for _, d := range []string{"bgpd", "bfdd", "zebra"} {
		f.stop(d)
	}
}

func (f *frr) vtysh(cmds ...string) (string, error) {
	args := []string{"--vty_socket", filepath.Join(f.dir, "vty"), "--config_dir", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "vtysh", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %v: %w: %s", cmds, err, out)
	}
	return string(out), nil
}

func (f *frr) json(cmd string, into any) error {
	out, err := f.vtysh(cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), into); err != nil {
		return fmt.Errorf("%s: %w: %s", cmd, err, tail(out, 500))
	}
	return nil
}

// route returns the paths FRR holds for prefix (none when absent).
func (f *frr) route(prefix string) ([]lab.BGPPath, error) {
	af := "ipv4"
	if strings.Contains(prefix, ":") {
		af = "ipv6"
	}
	var out struct {
		Paths []json.RawMessage `json:"paths"`
	}
	if err := f.json(fmt.Sprintf("show bgp %s unicast %s json", af, prefix), &out); err != nil {
		return nil, err
	}
	return lab.ParseBGPPaths(out.Paths)
}

// neighborState is bgpd's state of a neighbor ("Established", "Active"...).
func (f *frr) neighborState(addr string) string {
	var out map[string]struct {
		State string `json:"bgpState"`
	}
	if err := f.json("show bgp neighbors "+addr+" json", &out); err != nil {
		return "error: " + err.Error()
	}
	return out[addr].State
}

// fib returns the kernel's route for prefix in the router namespace.
func (f *frr) fib(prefix string) string {
	args := []string{"-n", f.ns}
	if strings.Contains(prefix, ":") {
		args = append(args, "-6")
	}
	out, _ := exec.Command("ip", append(args, "route", "show", prefix)...).CombinedOutput()
	return strings.TrimSpace(string(out))
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %s", d, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
