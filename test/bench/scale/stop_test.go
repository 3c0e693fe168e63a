package scale

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab"
)

// TestBenchStopPending: one speaker announcing SCALE_STOP_SERVICES
// addresses (default 3,000) by L2 gets SIGTERM while most of its reports
// are still unwritten (its client writes 5 per second); it prints how
// long the process took to exit, and the same for BEACON_SPEAKER_BASELINE,
// another speaker build, after it.
func TestBenchStopPending(t *testing.T) {
	if os.Getenv("BEACON_BENCH") != "stop" {
		t.Skip("runs with BEACON_BENCH=stop: it takes minutes and the machine's one lab")
	}
	n := 3000
	if s := os.Getenv("SCALE_STOP_SERVICES"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 100 || v > 10240 {
			t.Fatalf("SCALE_STOP_SERVICES=%q: want 100 ≤ n ≤ 10240", s)
		}
		n = v
	}
	b := newBench(t, 30*time.Minute)
	b.createServices(0, n)
	b.poolAndAdvertisement()
	b.startController()
	b.waitIngress(n)
	b.stop("beacon-controller")

	builds := []struct{ name, path string }{{"this build", filepath.Join(b.bin, "beacon-speaker")}}
	if other := os.Getenv("BEACON_SPEAKER_BASELINE"); other != "" {
		builds = append(builds, struct{ name, path string }{"baseline " + other, other})
	}
	for _, mode := range []string{"off", "external"} {
		for _, build := range builds {
			b.stopPending(build.name, build.path, mode, n)
		}
	}
}

// stopPending starts the speaker at path in node1 with reports cleared,
// sends SIGTERM once it has written a few, and prints how long it took to
// exit.
func (b *bench) stopPending(name, path, mode string, n int) {
	t := b.t
	b.clearReports()
	p, err := b.l.StartProcess(lab.ProcessSpec{Name: "speaker-node1", Netns: "node1", Argv: []string{
		path, "--kubeconfig", b.l.Kubeconfig(), "--node-name", "node1", "--dataplane=" + mode, "--namespace=default",
	}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.Poll(t, b.ctx, time.Second, 5*time.Minute, "reports being written", func() (bool, string) {
		got := b.reports()
		return got >= 20, fmt.Sprint(got)
	})
	pending := n - b.reports()
	if err := syscall.Kill(p.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took := testenv.Poll(t, b.ctx, 10*time.Millisecond, 2*time.Minute, "the speaker exits", func() (bool, string) {
		return !p.Alive(), ""
	})
	b.emit(fmt.Sprintf("%s: speaker --dataplane=%s announcing %d addresses, about %d reports pending: exited %v after SIGTERM\n",
		name, mode, n, pending, took.Round(time.Millisecond)))
	_ = b.l.StopProcess("speaker-node1")
}

// clearReports deletes every ServiceAnnouncement of the bench's namespace.
func (b *bench) clearReports() {
	var list v1alpha1.ServiceAnnouncementList
	if err := b.bc.List(b.ctx, benchNS, client.ServiceAnnouncements, &list); err != nil {
		b.t.Fatal(err)
	}
	g, gctx := errgroup.WithContext(b.ctx)
	g.SetLimit(24)
	for _, sa := range list.Items {
		g.Go(func() error { return b.bc.DeleteIn(gctx, benchNS, client.ServiceAnnouncements, sa.Name) })
	}
	if err := g.Wait(); err != nil {
		b.t.Fatal(err)
	}
}
