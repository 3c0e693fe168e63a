package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
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
	// Every alert the chart renders must be seen firing in rulesTest
	// (promtool then also checks that the healthy series stay quiet).
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				AlertName string           `json:"alertname"`
				ExpAlerts []map[string]any `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal([]byte(rulesTest), &tests); err != nil {
		t.Fatal(err)
	}
	fires := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			fires[a.AlertName] = fires[a.AlertName] || len(a.ExpAlerts) > 0
		}
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)$`).FindAllStringSubmatch(out, -1)
	if len(alerts) == 0 {
		t.Fatalf("no alert in the PrometheusRule:\n%s", out)
	}
	for _, m := range alerts {
		if !fires[m[1]] {
			t.Errorf("alert %s is never seen firing in rulesTest", m[1])
		}
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, b)
		}
	}
}

// TestAlertsDocumented: every alert the chart can render is in the alerts
// table of docs/install.md and in the migration guide's mapping.
func TestAlertsDocumented(t *testing.T) {
	out := render(t, "-f", filepath.Join("testdata", "bgp-monitoring.values.yaml"), "--show-only", "templates/prometheusrule.yaml")
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\S+)$`).FindAllStringSubmatch(out, -1)
	if len(alerts) < 10 {
		t.Fatalf("only %d alerts in the PrometheusRule:\n%s", len(alerts), out)
	}
	for _, doc := range []string{"install.md", "migrating-from-metallb.md"} {
		b, err := os.ReadFile(filepath.Join(chartDir(), "..", "..", "docs", doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range alerts {
			if !strings.Contains(string(b), "`"+m[1]+"`") {
				t.Errorf("docs/%s does not name the alert %s", doc, m[1])
			}
		}
	}
}

// rulesTest feeds series as the controller (beacon_pool_*,
// beacon_services_pending, beacon_addresses_unannounced), the speaker
// (beacon_bgp_*, beacon_member_alive_nodes, beacon_member_rejoins_total,
// beacon_l2_conflicts_total,
// beacon_l2_kernel_answered_addresses, beacon_nodeport_sync_failures_total), Prometheus (up) and
// kube-state-metrics (kube_pod_status_ready) expose them, with the labels a
// ServiceMonitor adds (namespace, node, job from the component). In the
// first test, pool "lan" is 90% used (above the 0.8 of
// bgp-monitoring.values.yaml), "full" has no free address, "roomy" is fine;
// the controller's standby repeats its pool series; for each other alert
// one node fails and one is healthy. The second test has every daemon
// down, the third an address unannounced for a moment and then for good.
const rulesTest = `
rule_files: [rules.yaml]
evaluation_interval: 15s
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
      - {series: 'up{namespace="beacon-system",job="controller",pod="c1"}', values: '1x15'}
      - {series: 'up{namespace="beacon-system",job="controller",pod="c2"}', values: '0x15'}
      - {series: 'up{namespace="beacon-system",job="speaker",pod="beacon-speaker-ddddd"}', values: '1x15'}
      - {series: 'up{namespace="beacon-system",job="speaker",pod="beacon-speaker-eeeee"}', values: '1x15'}
      - {series: 'beacon_member_alive_nodes{namespace="beacon-system",node="n2",pod="beacon-speaker-bbbbb"}', values: '3x15'}
      - {series: 'beacon_member_alive_nodes{namespace="beacon-system",node="n4",pod="beacon-speaker-ddddd"}', values: '3x15'}
      - {series: 'beacon_member_alive_nodes{namespace="beacon-system",node="n5",pod="beacon-speaker-eeeee"}', values: '1x15'}
      - {series: 'beacon_member_rejoins_total{namespace="beacon-system",node="n1",pod="beacon-speaker-aaaaa"}', values: '0x5 1x10'}
      - {series: 'beacon_member_rejoins_total{namespace="beacon-system",node="n2",pod="beacon-speaker-bbbbb"}', values: '0x15'}
      - {series: 'beacon_l2_conflicts_total{namespace="beacon-system",node="n1",interface="eth0",family="ipv4"}', values: '0x5 1+1x10'}
      - {series: 'beacon_l2_conflicts_total{namespace="beacon-system",node="n2",interface="eth0",family="ipv4"}', values: '0x15'}
      - {series: 'beacon_l2_kernel_answered_addresses{namespace="beacon-system",node="n1",family="ipv4",pod="beacon-speaker-aaaaa"}', values: '0 2x14'}
      - {series: 'beacon_l2_kernel_answered_addresses{namespace="beacon-system",node="n1",family="ipv6",pod="beacon-speaker-aaaaa"}', values: '0x15'}
      - {series: 'beacon_l2_kernel_answered_addresses{namespace="beacon-system",node="n2",family="ipv4",pod="beacon-speaker-bbbbb"}', values: '0x15'}
      - {series: 'beacon_nodeport_sync_failures_total{namespace="beacon-system",node="n1",pod="beacon-speaker-aaaaa"}', values: '0+1x15'}
      - {series: 'beacon_nodeport_sync_failures_total{namespace="beacon-system",node="n2",pod="beacon-speaker-bbbbb"}', values: '0 1x14'}
      - {series: 'beacon_bgp_bfd_up{namespace="beacon-system",node="n1",peer="192.0.2.1"}', values: '0x15'}
      - {series: 'beacon_bgp_bfd_up{namespace="beacon-system",node="n2",peer="192.0.2.1"}', values: '1x15'}
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
              description: "Add addresses to the pool (kubectl edit ippools.beaconlb.io lan) or another pool before Services stay pending."
          - exp_labels: {severity: warning, pool: full, family: IPv6}
            exp_annotations:
              summary: "IPPool full (IPv6) is 100% used"
              description: "Add addresses to the pool (kubectl edit ippools.beaconlb.io full) or another pool before Services stay pending."
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
      - eval_time: 10m
        alertname: BeaconBFDDown
        exp_alerts:
          - exp_labels: {severity: warning, node: n1, peer: 192.0.2.1}
            exp_annotations:
              summary: "BFD from n1 to 192.0.2.1 is down"
              description: "Without BFD a failure of this node is noticed only after the BGP hold time. See docs/troubleshooting.md (BFD down)."
      - eval_time: 10m
        alertname: BeaconControllerDown
        exp_alerts: []
      - eval_time: 10m
        alertname: BeaconSpeakersDown
        exp_alerts: []
      - eval_time: 10m
        alertname: BeaconAddressUnannounced
        exp_alerts: []
      - eval_time: 10m
        alertname: BeaconHeartbeatMembersLost
        exp_alerts:
          - exp_labels: {severity: warning, namespace: beacon-system, node: n5, pod: beacon-speaker-eeeee}
            exp_annotations:
              summary: "Speaker on n5 hears only 1 speaker(s), itself included, of those running"
              description: "Heartbeats (UDP 7946) between nodes are lost or refused: check firewalls and the member key. See docs/troubleshooting.md (Heartbeats lost)."
      - eval_time: 10m
        alertname: BeaconSpeakerStalled
        exp_alerts:
          - exp_labels: {severity: warning, node: n1}
            exp_annotations:
              summary: "The speaker on n1 stopped for longer than the heartbeat death timeout"
              description: "Its peers declared it dead and took over the L2 addresses it announced, which it took back once they heard it again. A starved or frozen node (CPU, memory pressure, a paused VM). See docs/troubleshooting.md (Heartbeats lost)."
      - eval_time: 10m
        alertname: BeaconL2AddressConflict
        exp_alerts:
          - exp_labels: {severity: critical, node: n1, interface: eth0, family: ipv4}
            exp_annotations:
              summary: "Another host claims an address that n1 announces on eth0 (ipv4)"
              description: "Two hosts answer ARP/NDP for one address: a pool overlaps addresses in use on the LAN. See docs/troubleshooting.md (Address conflict)."
      - eval_time: 10m
        alertname: BeaconL2KernelAnswers
        exp_alerts:
          - exp_labels: {severity: warning, node: n1, family: ipv4}
            exp_annotations:
              summary: "The kernel of n1 answers for 2 L2 address(es) (ipv4) itself"
              description: "An interface of the node holds addresses Beacon announces, so the node answers for them even when another node is elected. With kube-proxy in ipvs mode set ipvs.strictARP: true. kubectl describe node n1 shows the KernelAnswersL2Addresses Event; see docs/troubleshooting.md (Kernel answers for L2 addresses)."
      - eval_time: 10m
        alertname: BeaconNftablesSyncFailing
        exp_alerts:
          - exp_labels: {severity: critical, node: n1}
            exp_annotations:
              summary: "nftables syncs keep failing on n1"
              description: "The node's dataplane is stale: new or changed Services are not forwarded there. kubectl -n beacon-system logs the speaker of that node; see docs/troubleshooting.md (Dataplane sync failing)."

  # Everything down: no controller and no speaker is up in the release
  # namespace (one in another namespace does not count).
  - interval: 1m
    input_series:
      - {series: 'up{namespace="beacon-system",job="controller",pod="c1"}', values: '0x15'}
      - {series: 'up{namespace="other",job="controller",pod="c9"}', values: '1x15'}
    alert_rule_test:
      - eval_time: 10m
        alertname: BeaconControllerDown
        exp_alerts:
          - exp_labels: {severity: critical, namespace: beacon-system}
            exp_annotations:
              summary: "No beacon-controller is up in beacon-system"
              description: "No LoadBalancer Service gets or releases an address until a controller runs. kubectl -n beacon-system get pods -l app.kubernetes.io/component=controller"
      - eval_time: 10m
        alertname: BeaconSpeakersDown
        exp_alerts:
          - exp_labels: {severity: critical, namespace: beacon-system}
            exp_annotations:
              summary: "No beacon-speaker is up in beacon-system"
              description: "No node announces or forwards LoadBalancer addresses. kubectl -n beacon-system get pods -l app.kubernetes.io/component=speaker"

  # An address unannounced for one scrape (a Service just got it) stays
  # quiet; one unannounced for more than 30 s fires.
  - interval: 15s
    input_series:
      - {series: 'beacon_addresses_unannounced{namespace="beacon-system",pod="c1"}', values: '0 1 0x8 1x10'}
    alert_rule_test:
      - eval_time: 2m
        alertname: BeaconAddressUnannounced
        exp_alerts: []
      - eval_time: 3m
        alertname: BeaconAddressUnannounced
        exp_alerts: [] # unannounced since 2m45s: pending
      - eval_time: 3m30s
        alertname: BeaconAddressUnannounced
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: "1 allocated address(es) announced by no node"
              description: "See docs/troubleshooting.md (Address allocated but not announced): kubectl get svc -A shows the EXTERNAL-IP, kubectl get serviceannouncements -A lacks it, kubectl describe svc shows Withdrawn Events."
`
