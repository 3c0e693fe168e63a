package chart

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/beaconlb/beacon/internal/golden"
)

// valueSets are the renders kept as golden files: testdata/<name>.values.yaml
// in, testdata/<name>.golden out. "default" uses the chart's values only.
var valueSets = []string{"default", "bgp-monitoring", "class-full-controlplane", "controller-only"}

func valuesArgs(name string) []string {
	if name == "default" {
		return nil
	}
	return []string{"-f", filepath.Join("testdata", name+".values.yaml")}
}

func TestLint(t *testing.T) {
	for _, name := range valueSets {
		t.Run(name, func(t *testing.T) {
			out := helm(t, append([]string{"lint", "--strict", chartDir()}, valuesArgs(name)...)...)
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint:\n%s", out)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.HasPrefix(line, "[WARNING]") || strings.HasPrefix(line, "[ERROR]") {
					t.Errorf("helm lint: %s", line)
				}
			}
		})
	}
}

// The random heartbeat key differs on every render.
var memberKey = regexp.MustCompile(`(?m)^(  member-key: ).*$`)

func render(t *testing.T, args ...string) string {
	t.Helper()
	out := helm(t, append([]string{"template", release, chartDir(), "--namespace", namespace}, args...)...)
	return memberKey.ReplaceAllString(out, "${1}<random>")
}

func TestTemplateGolden(t *testing.T) {
	for _, name := range valueSets {
		t.Run(name, func(t *testing.T) {
			golden.Check(t, filepath.Join("testdata", name+".golden"), []byte(render(t, valuesArgs(name)...)))
		})
	}
}

// TestTemplateRejects checks that values.schema.json refuses bad values
// with a message naming the key.
func TestTemplateRejects(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"dataplane=kube-proxy", "/dataplane"},
		{"controller.leaderElection.enabled=false", "/controller/leaderElection/enabled"},
		{"speaker.memberPort=0", "/speaker/memberPort"},
		{"l2.enable=true", "enable"},
		{"loadBalancerClass=Not A Class", "/loadBalancerClass"},
		{"metrics.prometheusRule.poolAlmostExhaustedRatio=1.5", "poolAlmostExhaustedRatio"},
		{"externalIPsGuard.exemptNamespace=team-a", "exemptNamespace"},
		{"externalIPsGuard.exemptNamespaces[0]=Not_A_Namespace", "/externalIPsGuard/exemptNamespaces/0"},
		{"externalIPsGuard.exemptNamespaceLabel=", "/externalIPsGuard/exemptNamespaceLabel"},
		{"speaker.updateStrategy.type=Sometimes", "/speaker/updateStrategy/type"},
		{"controller.resources.limit.cpu=1", "limit"},
		{"imagePullSecrets[0].nam=x", "nam"},
		{"kubernetes.apiServer.host=https://198.51.100.10", "/kubernetes/apiServer/host"},
		{"kubernetes.apiServer.port=65536", "/kubernetes/apiServer/port"},
		{"kubernetes.apiServer.address=198.51.100.10", "address"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			_, err := runHelm(t, "template", release, chartDir(), "--namespace", namespace, "--set", tc.set)
			if err == nil {
				t.Fatalf("--set %s rendered; want a schema error", tc.set)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("--set %s: error does not name %q: %v", tc.set, tc.want, err)
			}
		})
	}
}

// diff returns the first differing lines of two texts, with context.
