package badinput

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/allocator/externalips"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/golden"
	"github.com/beaconlb/beacon/internal/testenv"
)

// The manifest for clusters without Helm is the chart template rendered with
// the default values into kube-system.
func TestPlainPolicyMatchesChart(t *testing.T) {
	got := renderPolicy(t, "kube-system", chartValues(t))
	path := filepath.Join(testenv.RepoRoot(), "examples", "externalips-policy.yaml")
	head := []byte("# Generated from charts/beacon/templates/externalips-policy.yaml with the\n" +
		"# chart's default values, for clusters without Helm (go test ./test/badinput -run TestPlainPolicyMatchesChart -update).\n" +
		"# Run beacon-controller with --externalips-param=" + externalips.DefaultName + " and apply the CRDs in charts/beacon/crds first.\n")
	got = append(head, bytes.TrimLeft(got, "\n")...)
	golden.Check(t, path, got)
}

// The externalIPs guard end to end: the chart's policy on the real API
// server, with the param ExternalIPsAllowList written by a real controller.
func TestExternalIPsGuard(t *testing.T) {
	f := newFixture(t)
	release := f.namespace("beacon-system-", nil)
	vals := chartValues(t)
	exemptByName := f.namespace("exempt-name-", nil)
	vals.ExemptNamespaces = []string{exemptByName}
	f.applyPolicy(renderPolicy(t, release, vals), "-guard")

	f.mustPool("t-ext", func(p *v1alpha1.IPPool) { p.Spec.AllowExternalIPs = true; p.Spec.AutoAssign = new(false) },
		"203.0.113.10-203.0.113.20", "2001:db8:203::/124")
	f.mustPool("t-noext", func(p *v1alpha1.IPPool) { p.Spec.AutoAssign = new(false) }, "198.51.100.64/28")
	param := externalips.DefaultName + "-guard"
	f.startController("--externalips-param", param)

	cidrs := func() string {
		var al v1alpha1.ExternalIPsAllowList
		if err := f.env.Beacon.Get(f.ctx, client.ExternalIPsAllowLists, param, &al); err != nil {
			return err.Error()
		}
		return strings.Join(al.CIDRs, ",")
	}
	f.eventually(10*time.Second, "param written", func() (bool, string) {
		d := cidrs()
		return d == "203.0.113.10/31,203.0.113.12/30,203.0.113.16/30,203.0.113.20/32,2001:db8:203::/124", d
	})

	ext := func(ns, name string, ips ...string) *v1.Service {
		return svc(ns, name, func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = ips
		})
	}
	// The policy becomes active asynchronously after creation (and a
	// binding of an earlier test may linger a moment): wait until this
	// binding refuses a foreign address and admits an allowed one.
	var denied error
	f.eventually(30*time.Second, "policy active", func() (bool, string) {
		_, denied = f.create(ext(f.ns, "probe", "198.51.100.70"))
		if denied == nil {
			_ = f.env.Kube.CoreV1().Services(f.ns).Delete(f.ctx, "probe", metav1.DeleteOptions{})
			return false, "created"
		}
		if !strings.Contains(denied.Error(), "binding 'beacon-externalips-guard'") {
			return false, denied.Error()
		}
		if _, err := f.create(ext(f.ns, "probe-ok", "203.0.113.10")); err != nil {
			return false, err.Error()
		}
		_ = f.env.Kube.CoreV1().Services(f.ns).Delete(f.ctx, "probe-ok", metav1.DeleteOptions{})
		return true, ""
	})
	t.Logf("refusal: %v", denied)
	for _, want := range []string{"198.51.100.70", "not inside any IPPool with allowExternalIPs: true", "CVE-2020-8554", "allowed: 203.0.113.10/31"} {
		if !strings.Contains(denied.Error(), want) {
			t.Errorf("refusal %q does not mention %q", denied, want)
		}
	}

	mustCreate := func(s *v1.Service) {
		t.Helper()
		if _, err := f.create(s); err != nil {
			t.Fatalf("create %s/%s %v: %v", s.Namespace, s.Name, s.Spec.ExternalIPs, err)
		}
	}
	mustRefuse := func(s *v1.Service, substr string) {
		t.Helper()
		_, err := f.create(s)
		if err == nil {
			t.Fatalf("%s/%s %v admitted, want refused", s.Namespace, s.Name, s.Spec.ExternalIPs)
		}
		if !strings.Contains(err.Error(), substr) {
			t.Fatalf("%s/%s: refusal %q does not mention %q", s.Namespace, s.Name, err, substr)
		}
	}
	mustCreate(ext(f.ns, "in-range", "203.0.113.15"))
	mustCreate(ext(f.ns, "range-end", "203.0.113.20", "2001:db8:203::f"))
	mustCreate(svc(f.ns, "no-external", nil)) // untouched by the guard
	mustRefuse(ext(f.ns, "past-end", "203.0.113.21"), "203.0.113.21")
	mustRefuse(ext(f.ns, "one-bad", "203.0.113.11", "192.0.2.1"), "spec.externalIPs: 192.0.2.1 not inside")
	mustRefuse(ext(f.ns, "v6-outside", "2001:db8:203::10"), "2001:db8:203::10")

	// Adding a foreign address to an existing Service is refused too.
	s, err := f.get(f.ns, "in-range")
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.ExternalIPs = append(s.Spec.ExternalIPs, "198.51.100.66")
	if _, err := f.env.Kube.CoreV1().Services(f.ns).Update(f.ctx, s, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "198.51.100.66") {
		t.Errorf("update adding 198.51.100.66: got %v, want refused", err)
	}

	// Exempt namespaces: by label and by name.
	byLabel := f.namespace("exempt-label-", map[string]string{vals.ExemptNamespaceLabel: "true"})
	mustCreate(ext(byLabel, "anything", "192.0.2.50"))
	mustCreate(ext(exemptByName, "anything", "192.0.2.51"))
	notExempt := f.namespace("label-false-", map[string]string{vals.ExemptNamespaceLabel: "false"})
	mustRefuse(ext(notExempt, "anything", "192.0.2.52"), "192.0.2.52")

	// Pool changes take effect: t-noext starts allowing externalIPs ...
	f.editPool("t-noext", func(p *v1alpha1.IPPool) { p.Spec.AllowExternalIPs = true })
	f.eventually(15*time.Second, "198.51.100.70 admitted after the pool allows it", func() (bool, string) {
		_, err := f.create(ext(f.ns, "now-ok", "198.51.100.70"))
		return err == nil, errString(err)
	})
	// ... and t-ext stops: new uses are refused, but existing Services keep
	// their addresses and can still be edited.
	f.editPool("t-ext", func(p *v1alpha1.IPPool) { p.Spec.AllowExternalIPs = false })
	f.eventually(15*time.Second, "203.0.113.16 refused after the pool stops allowing it", func() (bool, string) {
		_, err := f.create(ext(f.ns, "now-refused", "203.0.113.16"))
		if err == nil {
			_ = f.env.Kube.CoreV1().Services(f.ns).Delete(f.ctx, "now-refused", metav1.DeleteOptions{})
			return false, "admitted"
		}
		return strings.Contains(err.Error(), "203.0.113.16"), err.Error()
	})
	s, err = f.get(f.ns, "in-range")
	if err != nil {
		t.Fatal(err)
	}
	s.Labels = map[string]string{"edited": "yes"}
	if _, err := f.env.Kube.CoreV1().Services(f.ns).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Errorf("editing a Service whose externalIPs pool stopped allowing them: %v", err)
	}

	// Tampering with the param is undone by the controller.
	var al v1alpha1.ExternalIPsAllowList
	if err := f.env.Beacon.Get(f.ctx, client.ExternalIPsAllowLists, param, &al); err != nil {
		t.Fatal(err)
	}
	al.CIDRs = []string{"0.0.0.0/0", "::/0"}
	if err := f.env.Beacon.Update(f.ctx, client.ExternalIPsAllowLists, param, &al); err != nil {
		t.Fatal(err)
	}
	f.eventually(10*time.Second, "param restored", func() (bool, string) {
		d := cidrs()
		return d == "198.51.100.64/28", d
	})
	if err := f.env.Beacon.Delete(f.ctx, client.ExternalIPsAllowLists, param); err != nil {
		t.Fatal(err)
	}
	f.eventually(10*time.Second, "param re-created", func() (bool, string) {
		d := cidrs()
		return d == "198.51.100.64/28", d
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestGuardReinstall: the guard works again after its policy, binding and
// param were deleted and then created again, as by helm uninstall and
// install, without restarting kube-apiserver. With a ConfigMap as the param,
// kube-apiserver stops its ConfigMap param informer for good once no binding
// uses ConfigMaps, and then refuses every Service write ("no params found")
// for a param it had not seen before. The second install uses new names so
// that the param is one the API server cannot have seen before.
func TestGuardReinstall(t *testing.T) {
	f := newFixture(t)
	release := f.namespace("beacon-system-", nil)
	doc := renderPolicy(t, release, chartValues(t))
	ext := func(name string) *v1.Service {
		return svc(f.ns, name, func(s *v1.Service) {
			s.Spec.Type = v1.ServiceTypeClusterIP
			s.Spec.ExternalIPs = []string{"198.51.100.70"}
		})
	}
	round := 0
	// guardWorks reports whether an ordinary Service is admitted while the
	// binding with suffix refuses a foreign externalIPs address.
	guardWorks := func(suffix string) (bool, string) {
		round++
		plain := svc(f.ns, fmt.Sprintf("plain-%d", round), func(s *v1.Service) { s.Spec.Type = v1.ServiceTypeClusterIP })
		if _, err := f.create(plain); err != nil {
			return false, "ordinary Service: " + err.Error()
		}
		_ = f.env.Kube.CoreV1().Services(f.ns).Delete(f.ctx, plain.Name, metav1.DeleteOptions{})
		_, err := f.create(ext("foreign"))
		if err == nil {
			_ = f.env.Kube.CoreV1().Services(f.ns).Delete(f.ctx, "foreign", metav1.DeleteOptions{})
			return false, "foreign address admitted"
		}
		return strings.Contains(err.Error(), "binding 'beacon-externalips"+suffix+"'"), err.Error()
	}

	f.applyPolicy(doc, "-installed")
	f.eventually(30*time.Second, "guard active", func() (bool, string) { return guardWorks("-installed") })

	// Uninstall: binding, policy and param go. Once the API server no
	// longer enforces the binding, it has also dropped the param informer.
	ar := f.env.Kube.AdmissionregistrationV1()
	name := "beacon-externalips-installed"
	if err := ar.ValidatingAdmissionPolicyBindings().Delete(f.ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := ar.ValidatingAdmissionPolicies().Delete(f.ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.env.Beacon.Delete(f.ctx, client.ExternalIPsAllowLists, name); err != nil {
		t.Fatal(err)
	}
	f.eventually(30*time.Second, "guard gone", func() (bool, string) {
		_, err := f.create(ext("foreign"))
		if err != nil {
			return false, err.Error()
		}
		return f.env.Kube.CoreV1().Services(f.ns).Delete(f.ctx, "foreign", metav1.DeleteOptions{}) == nil, "admitted"
	})

	// Install again: ordinary Services are admitted and the guard refuses.
	f.applyPolicy(doc, "-reinstalled")
	start := time.Now()
	f.eventually(30*time.Second, "guard active again, ordinary Services admitted", func() (bool, string) { return guardWorks("-reinstalled") })
	t.Logf("guard active again %v after the reinstall", time.Since(start).Round(10*time.Millisecond))
}
