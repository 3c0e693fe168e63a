// Package cli is the beacon-migrate command: it reads MetalLB configuration
// from a file, stdin or a live cluster, converts it with package metallb,
// writes Beacon YAML to stdout and what it could not convert to stderr.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/beaconlb/beacon/migrate/metallb"
)

// Exit codes.
const (
	// ExitConverted: everything was converted.
	ExitConverted = 0
	// ExitError: nothing was written to stdout (bad flags, unreadable
	// input, API errors).
	ExitError = 1
	// ExitFindings: the output is written, and stderr lists what it lacks.
	ExitFindings = 2
)

// Usage is the command's help text.
const Usage = `usage:
  beacon-migrate -f FILE [flags]           convert MetalLB objects in FILE (- for stdin)
  beacon-migrate --kubeconfig PATH [flags] convert the MetalLB objects of a live cluster

Reads MetalLB's metallb.io objects (IPAddressPool, L2Advertisement,
BGPAdvertisement, BGPPeer, BFDProfile, Community, the deprecated
AddressPool), its legacy ConfigMap
(key "config") and Services with metallb.universe.tf/* or metallb.io/*
annotations; several YAML documents and List objects are fine. Writes
Beacon's objects to stdout, for kubectl apply --server-side -f -; Services
come out partial (name, namespace, Beacon annotations), so a server-side
apply only adds the annotations. Lists what it could not convert on stderr.

Exit code: 0 all converted, 2 converted with findings on stderr, 1 error.

flags:
`

// Main runs the command with args (without the program name) and returns
// the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("beacon-migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, Usage)
		fs.PrintDefaults()
	}
	file := fs.String("f", "", "file to read MetalLB objects from; - reads stdin")
	kubeconfig := fs.String("kubeconfig", "", "read MetalLB objects from the cluster of this kubeconfig instead")
	namespace := fs.String("namespace", "metallb-system", "with --kubeconfig: MetalLB's namespace")
	speakerNS := fs.String("speaker-namespace", metallb.DefaultSpeakerNamespace, "namespace of beacon-speaker, where BGP password Secrets go")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitConverted
		}
		return ExitError
	}
	if fs.NArg() > 0 || (*file == "") == (*kubeconfig == "") {
		_, _ = fmt.Fprintln(stderr, "beacon-migrate: give exactly one of -f FILE and --kubeconfig PATH")
		fs.Usage()
		return ExitError
	}
	var objs []*unstructured.Unstructured
	var err error
	if *file != "" {
		objs, err = readFile(*file, stdin)
	} else {
		objs, err = readCluster(ctx, *kubeconfig, *namespace)
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "beacon-migrate: %v\n", err)
		return ExitError
	}
	res := metallb.Convert(objs, metallb.Options{SpeakerNamespace: *speakerNS})
	if err := metallb.WriteObjects(stdout, res.Objects()); err != nil {
		_, _ = fmt.Fprintf(stderr, "beacon-migrate: %v\n", err)
		return ExitError
	}
	if len(res.Findings) == 0 {
		return ExitConverted
	}
	_, _ = fmt.Fprintf(stderr, "beacon-migrate: %d findings (not converted, or needing a step of yours):\n", len(res.Findings))
	_ = metallb.WriteFindings(stderr, res.Findings)
	return ExitFindings
}

func readFile(name string, stdin io.Reader) ([]*unstructured.Unstructured, error) {
	if name == "-" {
		return metallb.ReadObjects(stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	objs, err := metallb.ReadObjects(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return objs, nil
}
