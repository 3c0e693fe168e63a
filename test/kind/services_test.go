package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestServiceTypes: in every row of the kube-proxy matrix, a LoadBalancer,
// a NodePort and a ClusterIP Service of one Deployment answer, and a pod
// resolves Service names through CoreDNS and reaches the API server
// through the kubernetes Service. kube-proxy serves ClusterIP and NodePort
// where it runs; without it (KUBE_PROXY_MODE=none, dataplane: full)
// Beacon alone serves them, the DNS Service and the kubernetes Service
// included.
func TestServiceTypes(t *testing.T) {
	c := need(t)
	ctx := context.Background()
	c.waitBeacon(t)
	t.Logf("row: kube-proxy %q, Beacon dataplane %q", c.env["KUBE_PROXY_MODE"], c.releaseValues(t).Dataplane)
	ns := c.namespace(t)
	c.echoDeployment(t, ns, 2)
	lb := c.expose(t, ns, "web")
	c.httpFromHost(t, lb)
	for _, svc := range []string{"ClusterIP", "NodePort"} {
		name := strings.ToLower(svc)
		if _, err := c.kubectl(ctx, "-n", ns, "expose", "deployment", "echo", "--name", name, "--type="+svc, "--port=80", "--target-port=5000"); err != nil {
			t.Fatal(err)
		}
	}
	np, err := c.kube.CoreV1().Services(ns).Get(ctx, "nodeport", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nodePort := uint16(np.Spec.Ports[0].NodePort)
	cip, err := c.kube.CoreV1().Services(ns).Get(ctx, "clusterip", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// NodePort, from the host, on every node.
	for node, ip := range c.nodeIPs(t) {
		url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(ip, nodePort))
		eventually(t, time.Minute, "NodePort "+url+" of "+node+" from the host", func() error {
			out, err := run(ctx, "curl", "-sS", "--max-time", "2", url)
			if err != nil {
				return err
			}
			_, err = parseReply(out)
			return err
		})
	}

	// From a pod: the Service's name through CoreDNS, the ClusterIP, and
	// the API server through the kubernetes Service.
	pods, err := c.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("echo pods: %v (%d)", err, len(pods.Items))
	}
	pod := pods.Items[0].Name
	inPod := func(args ...string) (string, error) {
		return c.kubectl(ctx, append([]string{"-n", ns, "exec", pod, "--", "/beacon-echo"}, args...)...)
	}
	fqdn := "clusterip." + ns + ".svc.cluster.local"
	eventually(t, time.Minute, "pod "+pod+" resolves "+fqdn+" to "+cip.Spec.ClusterIP, func() error {
		out, err := inPod("-lookup", fqdn)
		if err != nil {
			return err
		}
		if strings.TrimSpace(out) != cip.Spec.ClusterIP {
			return fmt.Errorf("resolved to %q", out)
		}
		return nil
	})
	eventually(t, time.Minute, "pod "+pod+" gets http://"+fqdn+"/", func() error {
		out, err := inPod("-get", "http://"+fqdn+"/")
		if err != nil {
			return err
		}
		r, err := parseReply(out)
		if err == nil {
			t.Logf("pod %s -> ClusterIP %s: %s", pod, cip.Spec.ClusterIP, strings.TrimSpace(r.String()))
		}
		return err
	})
	eventually(t, time.Minute, "pod "+pod+" gets the API server's /version through the kubernetes Service", func() error {
		out, err := inPod("-get", "https://kubernetes.default.svc.cluster.local/version")
		if err != nil {
			return err
		}
		if !strings.Contains(out, `"gitVersion"`) {
			return fmt.Errorf("no version in %q", out)
		}
		return nil
	})
}

// values is what the kind tests read of the installed release's values.
type values struct {
	Dataplane string `json:"dataplane"`
	Speaker   struct {
		TolerateControlPlane bool   `json:"tolerateControlPlane"`
		MetricsPort          uint16 `json:"metricsPort"`
	} `json:"speaker"`
}

// releaseValues returns the installed release's values, defaults included.
func (c *cluster) releaseValues(t *testing.T) values {
	t.Helper()
	out, err := c.helm(context.Background(), "get", "values", "beacon", "--all", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v values
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("helm get values: %v: %s", err, out)
	}
	return v
}
