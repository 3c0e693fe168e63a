package kind

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSourceRanges: loadBalancerSourceRanges admits the client behind the
// router and refuses the host on the LAN, and every admitted connection is
// translated once. The proof is a kernel trace on the announcing node: the
// SYN of each connection, traced through every nftables chain (Beacon's
// tables and kube-proxy's iptables-nft ones), meets exactly one DNAT and at
// most one source NAT, and the refused SYNs end in a drop. kube-proxy's
// iptables counters for the address show what kube-proxy did itself.
func TestSourceRanges(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 3)
	client := netip.MustParseAddr(c.env["CLIENT_IP"])
	ip := c.expose(t, ns, "web", fmt.Sprintf(`--overrides={"apiVersion":"v1","spec":{"loadBalancerSourceRanges":["%s/32"]}}`, client))
	c.clientGet(t, ip)
	// The host's connection attempt resolves the address by ARP, which
	// names the announcing node.
	_, _ = run(ctx, "curl", "-sS", "--max-time", "1", "http://"+ip.String()+"/")
	node := c.announcer(t, ip)
	kubeProxyBefore := c.kubeProxyCounters(t, node, ip)

	tr := c.startTrace(t, node, ip)
	// Until the monitor is subscribed, SYNs go by untraced.
	eventually(t, 30*time.Second, "the trace sees a SYN from the client", func() error {
		_, _ = c.exec(ctx, c.env["CLIENT"], "curl", "-sS", "--max-time", "2", "http://"+ip.String()+"/")
		if len(tr.bySource()[client]) == 0 {
			return fmt.Errorf("no trace yet")
		}
		return nil
	})
	tr.reset()
	const n = 10
	admitted, refused := 0, 0
	for range n {
		if out, err := c.exec(ctx, c.env["CLIENT"], "curl", "-sS", "--max-time", "2", "http://"+ip.String()+"/"); err == nil {
			if _, err := parseReply(out); err == nil {
				admitted++
			}
		}
		// A refused SYN gets no answer at all: a short timeout is enough.
		if _, err := run(ctx, "curl", "-sS", "--max-time", "0.3", "http://"+ip.String()+"/"); err != nil {
			refused++
		}
	}
	host := netip.MustParseAddr(strings.TrimSpace(hostAddr(t, c.env["LAN_CIDR"])))
	// The last events may still be on their way from the kernel.
	eventually(t, 10*time.Second, "traces of every attempt", func() error {
		by := tr.bySource()
		if len(by[client]) < n || len(by[host]) < n {
			return fmt.Errorf("%d traces from the client, %d from the host", len(by[client]), len(by[host]))
		}
		return nil
	})
	tr.stop()
	by := tr.bySource()
	kubeProxyAfter := c.kubeProxyCounters(t, node, ip)

	t.Logf("%s (announced by %s), source ranges [%s/32]: client %s: %d of %d admitted; host %s: %d of %d refused",
		ip, node, client, client, admitted, n, host, refused, n)
	if admitted != n {
		t.Errorf("client in the source ranges: %d of %d requests answered", admitted, n)
	}
	if refused != n {
		t.Errorf("host outside the source ranges: %d of %d requests refused", refused, n)
	}

	dnatBy := map[string]int{}
	for _, tc := range by[client] {
		dnats, snats := tc.translations()
		for _, d := range dnats {
			dnatBy[d]++
		}
		if len(dnats) != 1 || len(snats) > 1 {
			t.Errorf("client SYN %s translated %d times (DNAT) and %d times (SNAT), want once and at most once:\n%s",
				tc.id, len(dnats), len(snats), strings.Join(tc.lines, "\n"))
		}
	}
	dropBy := map[string]int{}
	for _, tc := range by[host] {
		d := tc.dropper()
		dropBy[d]++
		if d == "" {
			t.Errorf("host SYN %s was not dropped:\n%s", tc.id, strings.Join(tc.lines, "\n"))
		}
		if dnats, _ := tc.translations(); len(dnats) > 0 {
			t.Errorf("host SYN %s was translated before the drop: %v", tc.id, dnats)
		}
	}
	t.Logf("client SYNs traced: %d; translated (DNAT) by chain: %v", len(by[client]), dnatBy)
	t.Logf("host SYNs traced: %d; dropped by chain: %v", len(by[host]), dropBy)
	if len(kubeProxyAfter) == 0 {
		t.Logf("no iptables rule names %s (kube-proxy mode %q): the trace shows its nftables chains", ip, c.env["KUBE_PROXY_MODE"])
	}
	for rule, after := range kubeProxyAfter {
		t.Logf("kube-proxy iptables rule for %s: %d packets during the test (%s)", ip, after-kubeProxyBefore[rule], rule)
	}
	for _, tc := range by[client][:1] {
		t.Logf("trace of one admitted SYN:\n%s", strings.Join(tc.lines, "\n"))
	}
}

// hostAddr returns this machine's address on the nodes' LAN.
func hostAddr(t *testing.T, lan string) string {
	t.Helper()
	pfx := netip.MustParsePrefix(lan)
	out, err := run(context.Background(), "ip", "-o", "-4", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil && pfx.Contains(p.Addr()) {
			return p.Addr().String()
		}
	}
	t.Fatalf("no address of this machine in %s", lan)
	return ""
}

// kubeProxyCounters reads the packet counters of kube-proxy's iptables rules
// that name ip, by rule.
func (c *cluster) kubeProxyCounters(t *testing.T, node string, ip netip.Addr) map[string]uint64 {
	t.Helper()
	out, err := c.exec(context.Background(), node, "iptables-save", "-c")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^\[(\d+):\d+\] (.*)$`)
	m := map[string]uint64{}
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, ip.String()+"/32") {
			continue
		}
		if g := re.FindStringSubmatch(l); g != nil {
			var v uint64
			_, _ = fmt.Sscan(g[1], &v)
			m[g[2]] = v
		}
	}
	return m
}

// trace is nft monitor trace on one node for the SYNs to one address.
type trace struct {
	cmd    *exec.Cmd
	stopIn func() // ends the monitor inside the node
	done   chan struct{}
	pid    chan string // the monitor's process id inside the node
	mu     sync.Mutex
	ids    map[string]*tracedPacket
}

// tracedPacket is what the kernel reported for one traced packet.
type tracedPacket struct {
	id    string
	src   netip.Addr
	lines []string
}

// traceTable sets nftrace: its chain is the first event of every trace.
const traceTable = "e2e-trace"

var traceLine = regexp.MustCompile(`^trace id (\S+) (.*)$`)
var traceSrc = regexp.MustCompile(` ip saddr (\S+) `)

// startTrace adds a table that sets nftrace on SYNs to ip:80 before any
// other chain sees them, and starts nft monitor trace. Both go at cleanup.
func (c *cluster) startTrace(t *testing.T, node string, ip netip.Addr) *trace {
	t.Helper()
	ctx := context.Background()
	rules := fmt.Sprintf("table ip %s {\n chain pre { type filter hook prerouting priority -350; policy accept; ip daddr %s tcp dport 80 tcp flags syn meta nftrace set 1; }\n}\n", traceTable, ip)
	cmd := exec.CommandContext(ctx, c.env["ENGINE"], "exec", "-i", node, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft on %s: %v: %s", node, err, out)
	}
	t.Cleanup(func() {
		if _, err := c.exec(ctx, node, "nft", "delete", "table", "ip", traceTable); err != nil {
			t.Errorf("remove the trace table: %v", err)
		}
	})
	tr := &trace{done: make(chan struct{}), pid: make(chan string, 1), ids: map[string]*tracedPacket{}}
	// The shell prints the process id that stop ends (killing podman exec
	// leaves the process in the node running); timeout bounds the monitor
	// even if the test dies before stop.
	tr.cmd = exec.Command(c.env["ENGINE"], "exec", node, "sh", "-c", "echo $$; exec timeout 120 nft monitor trace")
	out, err := tr.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(tr.done)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		if sc.Scan() {
			tr.pid <- strings.TrimSpace(sc.Text())
		}
		close(tr.pid)
		for sc.Scan() {
			tr.add(sc.Text())
		}
	}()
	tr.stopIn = func() {
		if pid, ok := <-tr.pid; ok {
			_, _ = c.exec(context.Background(), node, "kill", pid)
		}
	}
	t.Cleanup(tr.stop)
	return tr
}

func (tr *trace) add(line string) {
	g := traceLine.FindStringSubmatch(line)
	if g == nil {
		return
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	p := tr.ids[g[1]]
	if p == nil {
		// The rest of a trace whose start came before reset.
		if !strings.HasPrefix(g[2], "ip "+traceTable+" ") {
			return
		}
		p = &tracedPacket{id: g[1]}
		tr.ids[g[1]] = p
	}
	if !p.src.IsValid() {
		if s := traceSrc.FindStringSubmatch(line); s != nil {
			p.src, _ = netip.ParseAddr(s[1])
		}
	}
	p.lines = append(p.lines, g[2])
}

func (tr *trace) reset() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.ids = map[string]*tracedPacket{}
}

// stop ends the monitor and waits for its last lines.
func (tr *trace) stop() {
	tr.stopIn()
	<-tr.done
	_ = tr.cmd.Wait()
}

func (tr *trace) bySource() map[netip.Addr][]*tracedPacket {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	m := map[netip.Addr][]*tracedPacket{}
	for _, p := range tr.ids {
		m[p.src] = append(m[p.src], p)
	}
	return m
}

// chainOf returns "family table chain" of a trace line.
func chainOf(line string) string {
	f := strings.Fields(line)
	if len(f) < 3 {
		return line
	}
	return strings.Join(f[:3], " ")
}

// translations returns the chains whose rules translated the packet's
// destination and its source.
func (p *tracedPacket) translations() (dnat, snat []string) {
	for _, l := range p.lines {
		if !strings.Contains(l, " rule ") {
			continue
		}
		switch {
		// Native nftables NAT, or iptables-nft's xt targets.
		case strings.Contains(l, " dnat to ") || strings.Contains(l, `target DNAT`):
			dnat = append(dnat, chainOf(l))
		case strings.Contains(l, " masquerade") || strings.Contains(l, " snat to ") ||
			strings.Contains(l, `target MASQUERADE`) || strings.Contains(l, `target SNAT`):
			snat = append(snat, chainOf(l))
		}
	}
	return dnat, snat
}

// dropper returns the chain that dropped the packet, or "".
func (p *tracedPacket) dropper() string {
	for _, l := range p.lines {
		if strings.Contains(l, "(verdict drop)") || strings.HasSuffix(l, "policy drop") {
			return chainOf(l)
		}
	}
	return ""
}
