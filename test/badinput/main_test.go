package badinput

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// fixture is one test's view of the API server, with its own namespace.
type fixture struct {
	t   *testing.T
	env *testenv.Env
	ctx context.Context
	ns  string
	// owner, when set, gets the cleanups instead of t, so that what a
	// subtest creates lives until the whole test ends.
	owner *testing.T
}

func (f *fixture) cleanup(fn func()) {
	if f.owner != nil {
		f.owner.Cleanup(fn)
		return
	}
	f.t.Cleanup(fn)
}

func newFixture(t *testing.T) *fixture {
	e := testenv.Need(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	f := &fixture{t: t, env: e, ctx: ctx}
	f.ns = f.namespace("t-", nil)
	return f
}

// namespace creates a namespace (GenerateName prefix) and removes its
// Services (finalizers stripped) when the test ends.
func (f *fixture) namespace(prefix string, lbls map[string]string) string {
	f.t.Helper()
	ns, err := f.env.Kube.CoreV1().Namespaces().Create(f.ctx, &v1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix, Labels: lbls},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatalf("create namespace: %v", err)
	}
	f.cleanup(func() {
		ctx := context.Background()
		svcs, _ := f.env.Kube.CoreV1().Services(ns.Name).List(ctx, metav1.ListOptions{})
		if svcs != nil {
			for _, s := range svcs.Items {
				_, _ = f.env.Kube.CoreV1().Services(ns.Name).Patch(ctx, s.Name, types.MergePatchType,
					[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
				_ = f.env.Kube.CoreV1().Services(ns.Name).Delete(ctx, s.Name, metav1.DeleteOptions{})
			}
		}
		_ = f.env.Kube.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

// pool creates an IPPool and deletes it when the test ends.
func (f *fixture) pool(name string, mut func(*v1alpha1.IPPool), addrs ...string) error {
	p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, a := range addrs {
		p.Spec.Addresses = append(p.Spec.Addresses, v1alpha1.AddressBlock(a))
	}
	if mut != nil {
		mut(p)
	}
	err := f.env.Beacon.Create(f.ctx, client.IPPools, p)
	if err == nil {
		f.cleanup(func() { _ = f.env.Beacon.Delete(context.Background(), client.IPPools, name) })
	}
	return err
}

func (f *fixture) mustPool(name string, mut func(*v1alpha1.IPPool), addrs ...string) {
	f.t.Helper()
	if err := f.pool(name, mut, addrs...); err != nil {
		f.t.Fatalf("create pool %s: %v", name, err)
	}
}

func (f *fixture) editPool(name string, mut func(*v1alpha1.IPPool)) {
	f.t.Helper()
	err := wait.PollUntilContextTimeout(f.ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		p := &v1alpha1.IPPool{}
		if err := f.env.Beacon.Get(ctx, client.IPPools, name, p); err != nil {
			return false, err
		}
		mut(p)
		err := f.env.Beacon.Update(ctx, client.IPPools, name, p)
		if apierrors.IsConflict(errors.Unwrap(err)) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		f.t.Fatalf("edit pool %s: %v", name, err)
	}
}

// svc is a LoadBalancer Service on port 80 in namespace ns.
func svc(ns, name string, mut func(*v1.Service)) *v1.Service {
	s := &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: map[string]string{}},
		Spec: v1.ServiceSpec{
			Type:     v1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": name},
			Ports:    []v1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: v1.ProtocolTCP}},
		},
	}
	if mut != nil {
		mut(s)
	}
	return s
}

func (f *fixture) create(s *v1.Service) (*v1.Service, error) {
	return f.env.Kube.CoreV1().Services(s.Namespace).Create(f.ctx, s, metav1.CreateOptions{})
}

func (f *fixture) get(ns, name string) (*v1.Service, error) {
	return f.env.Kube.CoreV1().Services(ns).Get(f.ctx, name, metav1.GetOptions{})
}

func ingress(s *v1.Service) string {
	var out []string
	for _, in := range s.Status.LoadBalancer.Ingress {
		out = append(out, in.IP)
	}
	return strings.Join(out, ",")
}

// eventually polls cond every 50 ms until it holds or the timeout passes.
func (f *fixture) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	f.t.Helper()
	testenv.Poll(f.t, f.ctx, 50*time.Millisecond, timeout, what, cond)
}

// waitIngress waits until the Service's ingress is want ("" = none yet is
// not accepted; use a non-empty want) and returns it.
func (f *fixture) waitIngress(ns, name, want string) {
	f.t.Helper()
	f.eventually(15*time.Second, "ingress of "+ns+"/"+name, func() (bool, string) {
		s, err := f.get(ns, name)
		if err != nil {
			return false, err.Error()
		}
		return ingress(s) == want, ingress(s)
	})
}

// events returns "Reason: message" of the Warning Events on an object.
func (f *fixture) events(ns, name string) []string {
	evs, err := f.env.Kube.CoreV1().Events(ns).List(f.ctx, metav1.ListOptions{})
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, e := range evs.Items {
		if e.InvolvedObject.Name == name && e.Type == v1.EventTypeWarning {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}

// controllerProc is one beacon-controller process.
type controllerProc struct {
	cmd     *exec.Cmd
	log     *bytes.Buffer
	mu      *sync.Mutex
	health  string
	exited  chan struct{}
	waitErr error
}

// controllerBinary builds cmd/beacon-controller once per test binary.
func controllerBinary(t *testing.T) string {
	t.Helper()
	return filepath.Join(testenv.BuildOnce(t, "./cmd/beacon-controller"), "beacon-controller")
}

// startController runs beacon-controller against the test API server until
// the test ends, and waits until it is ready.
func (f *fixture) startController(args ...string) *controllerProc {
	f.t.Helper()
	bin := controllerBinary(f.t)
	p := &controllerProc{log: &bytes.Buffer{}, mu: &sync.Mutex{}, health: testenv.FreeAddr(f.t), exited: make(chan struct{})}
	all := append([]string{
		"--kubeconfig", f.env.Kubeconfig,
		"--leader-elect=false",
		"--metrics-addr", testenv.FreeAddr(f.t),
		"--health-addr", p.health,
		"-v=2",
	}, args...)
	p.cmd = exec.Command(bin, all...)
	w := &lockedWriter{mu: p.mu, w: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		f.t.Fatalf("start controller: %v", err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	f.t.Cleanup(func() {
		if p.alive() {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
			case <-time.After(10 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if f.t.Failed() {
			f.t.Logf("--- controller log (tail) ---\n%s", testenv.Tail(p.output(), 4000))
		}
	})
	f.eventually(30*time.Second, "controller ready", func() (bool, string) {
		if !p.alive() {
			return false, "exited: " + p.output()
		}
		return p.ready(), ""
	})
	return p
}

func (p *controllerProc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *controllerProc) ready() bool {
	resp, err := http.Get("http://" + p.health + "/readyz")
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func (p *controllerProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// guardValues mirrors externalIPsGuard in charts/beacon/values.yaml.
type guardValues struct {
	Enabled              bool     `json:"enabled"`
	ExemptNamespaceLabel string   `json:"exemptNamespaceLabel"`
	ExemptNamespaces     []string `json:"exemptNamespaces"`
}

// chartValues reads the chart's default externalIPsGuard values.
func chartValues(t *testing.T) guardValues {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "charts", "beacon", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		ExternalIPsGuard guardValues `json:"externalIPsGuard"`
	}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(&v); err != nil {
		t.Fatalf("values.yaml: %v", err)
	}
	return v.ExternalIPsGuard
}

// renderPolicy renders the chart's externalips-policy.yaml with Go's
// text/template (the template uses no Helm-only functions) and returns its
// documents.
func renderPolicy(t *testing.T, releaseNS string, vals guardValues) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "charts", "beacon", "templates", "externalips-policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tpl, err := template.New("policy").Option("missingkey=error").Parse(string(src))
	if err != nil {
		t.Fatalf("parse template: %v", err)
	}
	var out bytes.Buffer
	data := map[string]any{
		"Release": map[string]any{"Namespace": releaseNS},
		"Values": map[string]any{"externalIPsGuard": map[string]any{
			"enabled": vals.Enabled, "exemptNamespaceLabel": vals.ExemptNamespaceLabel, "exemptNamespaces": vals.ExemptNamespaces,
		}},
	}
	if err := tpl.Execute(&out, data); err != nil {
		t.Fatalf("render template: %v", err)
	}
	return out.Bytes()
}

// applyPolicy creates the rendered documents and removes them at the end.
// The policy, binding and param get the suffix: the API server's admission
// plugin forgets a deleted binding only asynchronously, so each test uses its
// own (and its controller runs with --externalips-param beacon-externalips
// plus the suffix).
func (f *fixture) applyPolicy(doc []byte, suffix string) {
	f.t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(doc), 4096)
	for {
		var raw map[string]any
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			f.t.Fatalf("decode policy: %v", err)
		}
		if raw == nil {
			continue
		}
		js, err := jsonOf(raw)
		if err != nil {
			f.t.Fatal(err)
		}
		ar := f.env.Kube.AdmissionregistrationV1()
		switch raw["kind"] {
		case "ValidatingAdmissionPolicy":
			var p admissionv1.ValidatingAdmissionPolicy
			mustDecode(f.t, js, &p)
			p.Name += suffix
			if _, err := ar.ValidatingAdmissionPolicies().Create(f.ctx, &p, metav1.CreateOptions{}); err != nil {
				f.t.Fatalf("create policy: %v", err)
			}
			f.t.Cleanup(func() {
				_ = ar.ValidatingAdmissionPolicies().Delete(context.Background(), p.Name, metav1.DeleteOptions{})
			})
		case "ValidatingAdmissionPolicyBinding":
			var b admissionv1.ValidatingAdmissionPolicyBinding
			mustDecode(f.t, js, &b)
			b.Name += suffix
			b.Spec.PolicyName += suffix
			if b.Spec.ParamRef != nil {
				b.Spec.ParamRef.Name += suffix
			}
			if _, err := ar.ValidatingAdmissionPolicyBindings().Create(f.ctx, &b, metav1.CreateOptions{}); err != nil {
				f.t.Fatalf("create binding: %v", err)
			}
			f.t.Cleanup(func() {
				_ = ar.ValidatingAdmissionPolicyBindings().Delete(context.Background(), b.Name, metav1.DeleteOptions{})
			})
		case "ExternalIPsAllowList":
			var al v1alpha1.ExternalIPsAllowList
			mustDecode(f.t, js, &al)
			al.Name += suffix
			if err := f.env.Beacon.Create(f.ctx, client.ExternalIPsAllowLists, &al); err != nil {
				f.t.Fatalf("create allow list: %v", err)
			}
			f.t.Cleanup(func() {
				_ = f.env.Beacon.Delete(context.Background(), client.ExternalIPsAllowLists, al.Name)
			})
		default:
			f.t.Fatalf("unexpected kind %v in the policy template", raw["kind"])
		}
	}
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

func mustDecode(t *testing.T, js []byte, into any) {
	t.Helper()
	if err := json.Unmarshal(js, into); err != nil {
		t.Fatalf("decode %s: %v", js, err)
	}
}
