package kind

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// recorder keeps the timestamped lines of long-running commands (kubectl
// logs -f of every speaker, ip monitor in the router) so that a failed
// request can be shown next to what the cluster did at that moment.
type recorder struct {
	mu    sync.Mutex
	lines []line
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

type line struct {
	at     time.Time
	source string
	text   string
}

func newRecorder(t *testing.T) *recorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{ctx: ctx, stop: cancel}
	t.Cleanup(func() {
		r.stop()
		r.wg.Wait()
	})
	return r
}

// follow runs name with args until the test ends and records its output
// lines under source, stamped when read.
func (r *recorder) follow(source, name string, args ...string) {
	cmd := exec.CommandContext(r.ctx, name, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.add(source, "start: "+err.Error())
		return
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		r.add(source, "start: "+err.Error())
		return
	}
	r.wg.Go(func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			r.add(source, sc.Text())
		}
		_ = cmd.Wait()
	})
}

func (r *recorder) add(source, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lines) < 200_000 {
		r.lines = append(r.lines, line{at: time.Now(), source: source, text: text})
	}
}

// speakerLogs follows the log of every speaker pod, including the ones a
// rollout starts later (polled every 500 ms).
func (c *cluster) speakerLogs(r *recorder) {
	seen := map[string]bool{}
	r.wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			pods, err := c.kube.CoreV1().Pods(beaconNS).List(r.ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=speaker"})
			if err == nil {
				for _, p := range pods.Items {
					if seen[p.Name] || p.Status.Phase != "Running" {
						continue
					}
					seen[p.Name] = true
					r.follow(p.Spec.NodeName+"/"+p.Name, c.env["KUBECTL"], "--kubeconfig", c.env["KUBECONFIG"],
						"-n", beaconNS, "logs", "-f", "--since=5s", p.Name)
				}
			}
			select {
			case <-r.ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// around logs the recorded lines within [from-before, to+after] that keep
// accepts, at most 150.
func (r *recorder) around(t *testing.T, from, to time.Time, before, after time.Duration, keep func(source, text string) bool) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if l.at.Before(from.Add(-before)) || l.at.After(to.Add(after)) || !keep(l.source, l.text) {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s: %s", l.at.Format("15:04:05.000"), l.source, l.text))
	}
	if len(out) > 150 {
		out = append(out[:75], append([]string{fmt.Sprintf("... %d lines left out ...", len(out)-150)}, out[len(out)-75:]...)...)
	}
	t.Logf("recorded from %s to %s:\n%s", from.Add(-before).Format("15:04:05.000"),
		to.Add(after).Format("15:04:05.000"), strings.Join(out, "\n"))
}

// unansweredSYNs returns the client ports of the SYNs to addr port 80 that
// tcpdump (source "lan", -tt) saw between from and to, by their capture
// time, and that got no SYN-ACK.
func (r *recorder) unansweredSYNs(from, to time.Time, addr string) []uint16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	syn, answered := map[uint16]bool{}, map[uint16]bool{}
	for _, l := range r.lines {
		if l.source != "lan" {
			continue
		}
		f := strings.Fields(l.text)
		if len(f) < 12 {
			continue
		}
		secs, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		// ... IPv4 (0x0800), length N: SRC > DST: Flags [S], ...
		i := slices.Index(f, ">")
		i = slices.IndexFunc(f[i+1:], func(s string) bool { return s == ">" }) + i + 1
		if i < 1 || i+2 >= len(f) || f[i+2] != "Flags" {
			continue
		}
		src, dst := f[i-1], strings.TrimSuffix(f[i+1], ":")
		port := func(hostPort string) (uint16, bool) {
			j := strings.LastIndex(hostPort, ".")
			n, err := strconv.ParseUint(hostPort[j+1:], 10, 16)
			return uint16(n), err == nil
		}
		switch {
		case f[i+3] == "[S]," && dst == addr+".80":
			at := time.Unix(0, int64(secs*1e9))
			if p, ok := port(src); ok && !at.Before(from) && !at.After(to) {
				syn[p] = true
			}
		case f[i+3] == "[S.]," && src == addr+".80":
			if p, ok := port(dst); ok {
				answered[p] = true
			}
		}
	}
	var out []uint16
	for p := range syn {
		if !answered[p] {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}
