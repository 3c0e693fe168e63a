package cli

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/migrate/metallb"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// The corpus and its golden outputs live with the conversion package.
var (
	corpusDir = filepath.Join("..", "metallb", "testdata")
	goldenDir = filepath.Join(corpusDir, "golden")
)

func corpusFile(name string) string { return filepath.Join(corpusDir, name+".yaml") }

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readObjects(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := metallb.ReadObjects(bytes.NewReader(readBytes(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// build compiles beacon-migrate into a directory of the test.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := testenv.GoBuild(dir, "./cmd/beacon-migrate"); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "beacon-migrate")
}

// run runs the binary and returns stdout, stderr and the exit code.
func run(t *testing.T, bin string, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// TestBinary runs beacon-migrate on files and stdin and checks stdout,
// stderr and the exit code.
func TestBinary(t *testing.T) {
	bin := build(t)
	golden := func(name, ext string) string { return string(readBytes(t, filepath.Join(goldenDir, name+ext))) }
	tests := []struct {
		name   string
		args   []string
		stdin  []byte
		code   int
		stdout string
		stderr []string // substrings, in order; none means empty
	}{
		{"clean from stdin", []string{"-f", "-"}, readBytes(t, corpusFile("l2-simple")), ExitConverted, golden("l2-simple", ".out.yaml"), nil},
		{"findings from a file", []string{"-f", corpusFile("unconvertible")}, nil, ExitFindings, golden("unconvertible", ".out.yaml"),
			[]string{"beacon-migrate: 21 findings", golden("unconvertible", ".findings")}},
		{"speaker namespace", []string{"-f", "-", "--speaker-namespace", "lb"}, readBytes(t, corpusFile("bgp-bfd-communities")), ExitConverted,
			strings.ReplaceAll(golden("bgp-bfd-communities", ".out.yaml"), "namespace: beacon-system", "namespace: lb"), nil},
		{"no input", nil, nil, ExitError, "", []string{"exactly one of -f FILE and --kubeconfig PATH", "usage:"}},
		{"two inputs", []string{"-f", "-", "--kubeconfig", "x"}, nil, ExitError, "", []string{"exactly one of"}},
		{"missing file", []string{"-f", "testdata/nonexistent.yaml"}, nil, ExitError, "", []string{"nonexistent.yaml: no such file"}},
		{"bad yaml", []string{"-f", "-"}, []byte("apiVersion: v1\nkind: [\n"), ExitError, "", []string{"document 1"}},
		{"unknown flag", []string{"--frob"}, nil, ExitError, "", []string{"flag provided but not defined"}},
		{"help", []string{"-h"}, nil, ExitConverted, "", []string{"usage:", "-kubeconfig"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, bin, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", stdout, tt.stdout)
			}
			if len(tt.stderr) == 0 && stderr != "" {
				t.Errorf("stderr not empty:\n%s", stderr)
			}
			rest := stderr
			for _, s := range tt.stderr {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Errorf("stderr lacks %q (in order):\n%s", s, stderr)
					break
				}
				rest = rest[i+len(s):]
			}
		})
	}
}

// cluster is a dynamic client with a mapper from kinds to resources.
type cluster struct {
	dc     dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newCluster(t *testing.T, e *testenv.Env) *cluster {
	t.Helper()
	dc, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{dc: dc, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))}
}

func (c *cluster) resource(t *testing.T, u *unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s: %v", gvk, err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dc.Resource(m.Resource).Namespace(u.GetNamespace())
	}
	return c.dc.Resource(m.Resource)
}

// dryRunApply applies u server-side without persisting it: the API server
// runs defaulting and validation (CEL included) and answers as if applied.
func (c *cluster) dryRunApply(t *testing.T, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	t.Helper()
	return c.resource(t, u).Apply(context.Background(), u.GetName(), u, metav1.ApplyOptions{
		FieldManager: "beacon-migrate-test", Force: true, DryRun: []string{metav1.DryRunAll},
	})
}

// create creates u, accepting one that exists already.
func (c *cluster) create(t *testing.T, u *unstructured.Unstructured) {
	t.Helper()
	_, err := c.resource(t, u).Create(context.Background(), u, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create %s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
}

func (c *cluster) namespace(t *testing.T, name string) {
	t.Helper()
	c.create(t, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": name},
	}})
}

// createServices creates the Services of the corpus, which the converted
// partial Services are applied onto.
func (c *cluster) createServices(t *testing.T) {
	t.Helper()
	for _, u := range readObjects(t, corpusFile("services")) {
		c.namespace(t, u.GetNamespace())
		c.create(t, u)
	}
}

// TestGoldenAcceptedByAPIServer applies every golden output to a real API
// server with Beacon's CRDs, by server-side dry run: the objects
// beacon-migrate writes pass the CRDs' schemas and CEL rules.
func TestGoldenAcceptedByAPIServer(t *testing.T) {
	e := testenv.Need(t, env)
	c := newCluster(t, e)
	c.namespace(t, metallb.DefaultSpeakerNamespace)
	c.createServices(t)
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.out.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden outputs: %v", err)
	}
	services := map[string]*unstructured.Unstructured{}
	for _, u := range readObjects(t, corpusFile("services")) {
		services[u.GetNamespace()+"/"+u.GetName()] = u
	}
	applied := 0
	for _, f := range files {
		for _, u := range readObjects(t, f) {
			got, err := c.dryRunApply(t, u)
			if err != nil {
				t.Errorf("%s: %s %s refused: %v", filepath.Base(f), u.GetKind(), u.GetName(), err)
				continue
			}
			applied++
			if u.GetKind() == "Service" {
				checkServiceApply(t, services[u.GetNamespace()+"/"+u.GetName()], u, got)
			}
		}
	}
	t.Logf("%d objects of %d golden files accepted", applied, len(files))

	// The dry run does validate: what Beacon's CRDs refuse is refused.
	for _, bad := range []string{
		"apiVersion: beaconlb.io/v1alpha1\nkind: BFDProfile\nmetadata: {name: echo}\nspec: {echoMode: true}\n",
		"apiVersion: beaconlb.io/v1alpha1\nkind: IPPool\nmetadata: {name: hostbits}\nspec: {addresses: [198.51.100.17/28]}\n",
		"apiVersion: beaconlb.io/v1alpha1\nkind: BGPPeer\nmetadata: {name: hold}\nspec: {myASN: 1, peerASN: 2, peerAddress: 198.51.100.1, holdTime: 1s}\n",
	} {
		objs, err := metallb.ReadObjects(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.dryRunApply(t, objs[0]); !apierrors.IsInvalid(err) {
			t.Errorf("%s %s: dry run gave %v, want Invalid", objs[0].GetKind(), objs[0].GetName(), err)
		}
	}
}

// checkServiceApply checks that applying a partial Service added its Beacon
// annotations and kept the rest of the Service: its other annotations (the
// MetalLB ones) and its ports.
func checkServiceApply(t *testing.T, orig, partial, got *unstructured.Unstructured) {
	t.Helper()
	if orig == nil {
		t.Errorf("Service %s/%s is not in the corpus", partial.GetNamespace(), partial.GetName())
		return
	}
	want := orig.GetAnnotations()
	for k, v := range partial.GetAnnotations() {
		want[k] = v
	}
	if have := got.GetAnnotations(); !maps.Equal(have, want) {
		t.Errorf("Service %s annotations after apply %v, want %v", got.GetName(), have, want)
	}
	wantPorts, _, _ := unstructured.NestedSlice(orig.Object, "spec", "ports")
	gotPorts, _, _ := unstructured.NestedSlice(got.Object, "spec", "ports")
	if len(gotPorts) != len(wantPorts) || len(gotPorts) == 0 {
		t.Errorf("Service %s has %d ports after apply, want %d", got.GetName(), len(gotPorts), len(wantPorts))
	}
}

// TestKubeconfig reads MetalLB objects from a live API server (MetalLB's
// CRDs installed from testdata) and checks that the output is what the
// same objects give from a file.
func TestKubeconfig(t *testing.T) {
	e := testenv.Need(t, env)
	bin := build(t)
	c := newCluster(t, e)
	c.createServices(t)
	tests := []struct {
		name, namespace string
		files           []string
		crds            bool
	}{
		// Without MetalLB's CRDs its kinds are simply absent; the
		// Services' annotations are still converted.
		{"no CRDs", "metallb-system", nil, false},
		{"CRDs", "metallb-system", []string{"l2-simple", "bgp-bfd-communities", "selectors", "addresspool"}, true},
		{"legacy ConfigMap", "legacy", []string{"legacy-configmap"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.crds {
				// Installing twice is harmless: envtest updates existing CRDs.
				if _, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{
					Paths: []string{filepath.Join("testdata", "metallb-crds.yaml")}, ErrorIfPathMissing: true,
				}); err != nil {
					t.Fatal(err)
				}
				c.mapper.Reset()
			}
			c.namespace(t, tt.namespace)
			var objs []*unstructured.Unstructured
			for _, f := range tt.files {
				for _, u := range readObjects(t, corpusFile(f)) {
					u.SetNamespace(tt.namespace)
					c.create(t, u)
					objs = append(objs, u)
				}
			}
			// The live run also reads every Service with MetalLB annotations.
			for _, u := range readObjects(t, corpusFile("services")) {
				if hasMetalLBAnnotation(u) {
					objs = append(objs, u)
				}
			}
			want := metallb.Convert(objs, metallb.Options{})
			var wantOut bytes.Buffer
			if err := metallb.WriteObjects(&wantOut, want.Objects()); err != nil {
				t.Fatal(err)
			}
			stdout, stderr, code := run(t, bin, nil, "--kubeconfig", e.Kubeconfig, "--namespace", tt.namespace)
			if code != ExitFindings { // the corpus Services have findings
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, ExitFindings, stderr)
			}
			if stdout != wantOut.String() {
				t.Errorf("stdout:\n%s\nwant (the same objects from a file):\n%s", stdout, wantOut.String())
			}
			var wantFindings []string
			for _, f := range want.Findings {
				wantFindings = append(wantFindings, f.String())
			}
			gotFindings := strings.Split(strings.TrimSpace(stderr), "\n")[1:]
			slices.Sort(wantFindings)
			slices.Sort(gotFindings)
			if !slices.Equal(gotFindings, wantFindings) {
				t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(gotFindings, "\n"), strings.Join(wantFindings, "\n"))
			}
		})
	}
}
