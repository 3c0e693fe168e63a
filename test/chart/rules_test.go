package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestPrometheusRules checks the chart's alerts with promtool (Debian
// package prometheus): the rules parse, and fed with series named as the
// daemons export them, exactly the expected alerts fire.
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): the alert expressions are checked by golden files only")
	}
	out := render(t, "-f", filepath.Join("testdata", "bgp-monitoring.values.yaml"), "--show-only", "templates/prometheusrule.yaml")
	var obj struct {
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(out), &obj); err != nil {
		t.Fatalf("PrometheusRule: %v\n%s", err, out)
	}
	rules, err := yaml.Marshal(map[string]any{"groups": obj.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "test.yaml"), []byte(rulesTest), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, b)
		}
	}
}

// rulesTest feeds series as the controller (beacon_pool_*,
// beacon_services_pending), the speaker (beacon_bgp_session_up), Prometheus
// (up) and kube-state-metrics (kube_pod_status_ready) expose them, with the
// namespace label a ServiceMonitor adds. Pool "lan" is 90% used (above the
// 0.8 of bgp-monitoring.values.yaml), "full" has no free address, "roomy"
// is fine; the controller's standby repeats its pool series.
const rulesTest = `
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - {series: 'beacon_pool_addresses{namespace="beacon-system",pod="c1",pool="lan",family="IPv4"}', values: '10x15'}
      - {series: 'beacon_pool_addresses_in_use{namespace="beacon-system",pod="c1",pool="lan",family="IPv4"}', values: '9x15'}
      - {series: 'beacon_pool_addresses{namespace="beacon-system",pod="c2",pool="lan",family="IPv4"}', values: '10x15'}
      - {series: 'beacon_pool_addresses_in_use{namespace="beacon-system",pod="c2",pool="lan",family="IPv4"}', values: '9x15'}
      - {series: 'beacon_pool_addresses{namespace="beacon-system",pod="c1",pool="full",family="IPv6"}', values: '4x15'}
      - {series: 'beacon_pool_addresses_in_use{namespace="beacon-system",pod="c1",pool="full",family="IPv6"}', values: '4x15'}
      - {series: 'beacon_pool_addresses{namespace="beacon-system",pod="c1",pool="roomy",family="IPv4"}', values: '100x15'}
      - {series: 'beacon_pool_addresses_in_use{namespace="beacon-system",pod="c1",pool="roomy",family="IPv4"}', values: '1x15'}
      - {series: 'beacon_services_pending{namespace="beacon-system",pod="c1"}', values: '2x15'}
      - {series: 'beacon_services_pending{namespace="beacon-system",pod="c2"}', values: '0x15'}
      - {series: 'up{namespace="beacon-system",job="speaker",pod="beacon-speaker-aaaaa"}', values: '0x15'}
      - {series: 'up{namespace="beacon-system",job="speaker",pod="beacon-speaker-bbbbb"}', values: '1x15'}
      - {series: 'kube_pod_status_ready{namespace="beacon-system",pod="beacon-speaker-ccccc",condition="true"}', values: '0x15'}
      - {series: 'kube_pod_status_ready{namespace="beacon-system",pod="beacon-speaker-bbbbb",condition="true"}', values: '1x15'}
      - {series: 'kube_pod_status_ready{namespace="beacon-system",pod="beacon-controller-xyz",condition="true"}', values: '0x15'}
      - {series: 'beacon_bgp_session_up{namespace="beacon-system",node="n1",peer="192.0.2.1"}', values: '0x15'}
      - {series: 'beacon_bgp_session_up{namespace="beacon-system",node="n2",peer="192.0.2.1"}', values: '1x15'}
    alert_rule_test:
      - eval_time: 3m
        alertname: BeaconPoolExhausted
        exp_alerts: []
      - eval_time: 10m
        alertname: BeaconPoolAlmostExhausted
        exp_alerts:
          - exp_labels: {severity: warning, pool: lan, family: IPv4}
            exp_annotations:
              summary: "IPPool lan (IPv4) is 90% used"
              description: "Add addresses to the pool (kubectl edit ippool lan) or another pool before Services stay pending."
          - exp_labels: {severity: warning, pool: full, family: IPv6}
            exp_annotations:
              summary: "IPPool full (IPv6) is 100% used"
              description: "Add addresses to the pool (kubectl edit ippool full) or another pool before Services stay pending."
      - eval_time: 10m
        alertname: BeaconPoolExhausted
        exp_alerts:
          - exp_labels: {severity: critical, pool: full, family: IPv6}
            exp_annotations:
              summary: "IPPool full (IPv6) has no free address"
              description: "New LoadBalancer Services of this pool stay pending (kubectl get svc -A | grep pending; kubectl describe svc shows AllocationFailed Events)."
      - eval_time: 10m
        alertname: BeaconServicesPending
        exp_alerts:
          - exp_labels: {severity: warning}
            exp_annotations:
              summary: "2 LoadBalancer Service(s) wait for an address"
              description: "See docs/troubleshooting.md (Service pending): kubectl describe svc shows why."
      - eval_time: 10m
        alertname: BeaconSpeakerNotReady
        exp_alerts:
          - exp_labels: {severity: warning, namespace: beacon-system, job: speaker, pod: beacon-speaker-aaaaa}
            exp_annotations:
              summary: "Speaker beacon-speaker-aaaaa is not ready"
              description: "Addresses move away from a node whose speaker is down. kubectl -n beacon-system logs beacon-speaker-aaaaa"
          - exp_labels: {severity: warning, namespace: beacon-system, pod: beacon-speaker-ccccc, condition: "true"}
            exp_annotations:
              summary: "Speaker beacon-speaker-ccccc is not ready"
              description: "Addresses move away from a node whose speaker is down. kubectl -n beacon-system logs beacon-speaker-ccccc"
      - eval_time: 10m
        alertname: BeaconBGPSessionDown
        exp_alerts:
          - exp_labels: {severity: critical, node: n1, peer: 192.0.2.1}
            exp_annotations:
              summary: "BGP session from n1 to 192.0.2.1 is down"
              description: "Routes through this node are withdrawn. See docs/troubleshooting.md (BGP session down)."
`
