// Package cli is the beacon-lab command line (up, down, status, exec and
// the hidden daemon), kept out of package main so that tests can run it
// from their own binary.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/beaconlb/beacon/lab"
)

// Usage is the command's help text.
const Usage = `usage:
  beacon-lab up [flags]        build the lab (replacing one made by an earlier up) and leave it running
  beacon-lab down              remove every beacon- namespace, link and process (also after a crash)
  beacon-lab status            show namespaces, addresses, processes and API server health
  beacon-lab exec NS CMD...    run CMD in a lab namespace (host, lan, router, client-lan, client-ext, node1, n1-p1...);
                               in router, vtysh talks to the lab's FRR: beacon-lab exec router vtysh -c 'show bgp summary'
`

// Main runs the command with args (without the program name) and returns
// the exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		_, _ = fmt.Fprint(stderr, Usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "up":
		err = up(ctx, args[1:], stdout, stderr)
	case "down":
		err = lab.DownAll()
	case "status":
		var r *lab.StatusReport
		if r, err = lab.Status(ctx); err == nil {
			_, err = r.WriteTo(stdout)
		}
	case "exec":
		err = execIn(ctx, args[1:], stdout, stderr)
	case "daemon": // started by `up` through Lab.Detach
		err = lab.RunDaemon(ctx)
	case "-h", "--help", "help":
		_, _ = fmt.Fprint(stdout, Usage)
	default:
		_, _ = fmt.Fprint(stderr, Usage)
		return 2
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		_, _ = fmt.Fprintln(stderr, "beacon-lab:", err)
		return 1
	}
	return 0
}

func up(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg lab.Config
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Nodes, "nodes", 3, "number of nodes")
	fs.IntVar(&cfg.PodsPerNode, "pods-per-node", 2, "echo pods per node")
	fs.StringVar(&cfg.AssetsDir, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory with etcd and kube-apiserver (hack/testbin.sh | tail -n1)")
	fs.StringVar(&cfg.CRDDir, "crds", "", "CRD directory (default charts/beacon/crds)")
	fs.StringVar(&cfg.EchoBinary, "echo", "", "beacon-echo binary (default: $BEACON_ECHO, next to beacon-lab, or on PATH)")
	timeout := fs.Duration("timeout", 3*time.Minute, "give up after this long (includes waiting for a test's lab)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.NoEndpointWriter = true // the daemon runs it
	cfg.ReplaceDetached = true
	cfg.Logf = func(f string, a ...any) { _, _ = fmt.Fprintf(stderr, f+"\n", a...) }
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		return err
	}
	if err := l.Detach([]string{self, "daemon"}); err != nil {
		return errors.Join(err, lab.DownAll())
	}
	_, _ = fmt.Fprintf(stdout, "lab is up. kubeconfig (for processes in lab namespaces): %s\n", l.Kubeconfig())
	_, _ = fmt.Fprintf(stdout, "try: beacon-lab exec client-lan curl -s http://%s:%d/\n", l.Pods()[0].IPv4, lab.EchoPort)
	_, _ = fmt.Fprintf(stdout, "     beacon-lab exec host kubectl --kubeconfig %s get nodes,pods -o wide\n", l.Kubeconfig())
	_, _ = fmt.Fprintln(stdout, "     beacon-lab exec router vtysh -c 'show bgp summary'")
	_, _ = fmt.Fprintln(stdout, "remove with: beacon-lab down")
	return nil
}

func execIn(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return errors.New("usage: beacon-lab exec NS CMD [ARGS]")
	}
	ns, argv := args[0], args[1:]
	if argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return errors.New("usage: beacon-lab exec NS CMD [ARGS]")
	}
	if lab.Netns(ns) == lab.Netns(lab.Router) && argv[0] == "vtysh" {
		argv = lab.VtyshArgv(argv[1:]...) // the lab's FRR, not the system's
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	if err := lab.StartIn(ns, cmd); err != nil {
		return err
	}
	return cmd.Wait()
}
