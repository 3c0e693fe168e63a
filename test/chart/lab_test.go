package chart

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/labtest"
)

// TestChartInLab installs the chart into the lab's API server and runs the
// real beacon-controller and beacon-speaker binaries with the arguments of
// the installed Deployment and DaemonSet, authenticated by tokens of the
// chart's ServiceAccounts. A Service gets an address, a speaker announces
// it and it answers from client-lan; the API server's audit log shows that
// neither account was refused anything, and then that a speaker's attempt
// to update a Service is refused. Deleting the Service, the configuration
// and the release leaves no Beacon object behind (CRDs aside).
func TestChartInLab(t *testing.T) {
	labtest.Require(t)
	t.Parallel() // with the envtest install test: the package stays near a minute
	helmPath := helmBin(t)
	bin := t.TempDir()
	testenv.Build(t, bin, "./cmd/beacon-controller", "./cmd/beacon-speaker")
	l := labUp(t, lab.Config{Nodes: 2, PodsPerNode: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	admin := l.Kube()
	bc, err := client.New(l.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	helmArgv := []string{"env"} // helm's private directories
	for k, v := range helmDirs(t) {
		helmArgv = append(helmArgv, k+"="+v)
	}
	helmArgv = append(helmArgv, helmPath)
	inHost := func(args ...string) {
		t.Helper()
		argv := append(slices.Clone(helmArgv), args...)
		argv = append(argv, "--kubeconfig", l.Kubeconfig(), "--namespace", namespace)
		if out, err := l.Exec(ctx, lab.Host, argv...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	inHost("install", release, chartDir(), "--create-namespace")

	// The daemons' arguments are the ones the chart rendered.
	dep, err := admin.AppsV1().Deployments(namespace).Get(ctx, "beacon-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := admin.AppsV1().DaemonSets(namespace).Get(ctx, "beacon-speaker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctrlKC := tokenKubeconfig(ctx, t, l, admin, controllerSA, dir)
	spkKC := tokenKubeconfig(ctx, t, l, admin, speakerSA, dir)
	keyFile := filepath.Join(dir, "member-key")
	if err := os.WriteFile(keyFile, []byte(memberKeyOf(ctx, t, admin)), 0o600); err != nil {
		t.Fatal(err)
	}

	ctrlArgs := append([]string{filepath.Join(bin, "beacon-controller"), "--kubeconfig", ctrlKC, "--leader-elect-identity", "lab-controller"},
		dep.Spec.Template.Spec.Containers[0].Args...)
	if _, err := l.StartProcess(lab.ProcessSpec{Name: "chart-controller", Netns: lab.Host, Argv: ctrlArgs}); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes() {
		args := append([]string{filepath.Join(bin, "beacon-speaker"), "--kubeconfig", spkKC, "--node-name", n.Name},
			rewrite(ds.Spec.Template.Spec.Containers[0].Args, "--member-key-file=", keyFile)...)
		if _, err := l.StartProcess(lab.ProcessSpec{Name: "chart-speaker-" + n.Name, Netns: n.Name, Argv: args}); err != nil {
			t.Fatal(err)
		}
	}

	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.51.100.200-198.51.100.210"}
	if err := bc.Create(ctx, client.IPPools, pool); err != nil {
		t.Fatal(err)
	}
	adv := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	adv.Spec.IPPools = []string{"lan"}
	if err := bc.Create(ctx, client.L2Advertisements, adv); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"lab.beaconlb.io/app": "echo"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := admin.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var ip string
	poll(ctx, t, "an address for Service web", func() (bool, string) {
		s, err := admin.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if len(s.Status.LoadBalancer.Ingress) == 0 {
			return false, "no ingress"
		}
		ip = s.Status.LoadBalancer.Ingress[0].IP
		return true, ip
	})
	poll(ctx, t, "a ServiceAnnouncement for web", func() (bool, string) {
		nodes := announcers(ctx, bc)
		return len(nodes) > 0, fmt.Sprint(nodes)
	})
	hc := l.HTTPClient("client-lan")
	hc.Timeout = 2 * time.Second
	poll(ctx, t, "an answer from http://"+ip+" in client-lan", func() (bool, string) {
		resp, err := hc.Get("http://" + net.JoinHostPort(ip, "80") + "/")
		if err != nil {
			return false, err.Error()
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode == 200, resp.Status + " " + string(b)
	})

	// Every request both accounts made so far was allowed.
	audit := lab.AuditLogPath(l.StateDir())
	for _, sa := range []string{controllerSA, speakerSA} {
		total, denied := auditCount(t, audit, sa)
		t.Logf("audit: %s: %d refused of %v", sa, len(denied), total)
		if len(total) == 0 {
			t.Errorf("audit log has no request by %s: the check would prove nothing", sa)
		}
		if len(denied) > 0 {
			t.Errorf("%s was refused %d request(s): %v", sa, len(denied), denied)
		}
	}

	// A speaker's token cannot update a Service; the audit log sees it.
	spk, err := clientcmd.BuildConfigFromFlags("", spkKC)
	if err != nil {
		t.Fatal(err)
	}
	spk.Dial = l.Dialer(lab.Host)
	spkKube := kubernetes.NewForConfigOrDie(spk)
	cur, err := admin.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Spec.Ports[0].Port = 8080
	if _, err := spkKube.CoreV1().Services("default").Update(ctx, cur, metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("speaker token updating a Service: %v, want 403 Forbidden", err)
	}
	poll(ctx, t, "the refused update in the audit log", func() (bool, string) {
		_, denied := auditCount(t, audit, speakerSA)
		return slices.Contains(denied, "update services"), fmt.Sprint(denied)
	})

	// Removal, as docs/install.md says: Services first (the controller
	// drops its finalizer, speakers their reports), then configuration,
	// then the release.
	if err := admin.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(ctx, t, "Service web and its announcements gone", func() (bool, string) {
		_, err := admin.CoreV1().Services("default").Get(ctx, "web", metav1.GetOptions{})
		nodes := announcers(ctx, bc)
		return apierrors.IsNotFound(err) && len(nodes) == 0, fmt.Sprintf("service: %v, announcers: %v", err, nodes)
	})
	for _, r := range []string{client.L2Advertisements, client.IPPools} {
		if err := bc.Delete(ctx, r, "lan"); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range l.Processes() {
		if strings.HasPrefix(p.Name, "chart-") {
			if err := l.StopProcess(p.Name); err != nil {
				t.Errorf("stop %s: %v", p.Name, err)
			}
		}
	}
	inHost("uninstall", release)
	left, err := releaseObjects(ctx, l.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	left = append(left, beaconObjects(ctx, t, bc)...)
	if len(left) > 0 {
		t.Errorf("after uninstall these objects remain: %v", left)
	}
}

// labUp waits up to 15 minutes for the lab: the lab is one per machine,
// and under `go test ./...` this test queues behind the other lab packages
// (within make test's 20-minute package timeout).
func labUp(t *testing.T, cfg lab.Config) *lab.Lab {
	t.Helper()
	return labtest.UpWithin(t, cfg, 15*time.Minute)
}

// tokenKubeconfig writes a kubeconfig for the lab API server that
// authenticates with a fresh token of the chart's ServiceAccount sa.
func tokenKubeconfig(ctx context.Context, t *testing.T, l *lab.Lab, admin kubernetes.Interface, sa, dir string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(l.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	tok := token(ctx, t, admin, sa)
	for _, ai := range kc.AuthInfos {
		ai.Token, ai.TokenFile = tok, ""
		ai.ClientCertificate, ai.ClientKey, ai.ClientCertificateData, ai.ClientKeyData = "", "", nil, nil
	}
	path := filepath.Join(dir, sa+".kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// rewrite replaces the value of the argument with prefix (a path inside
// the container) by value.
func rewrite(args []string, prefix, value string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		if strings.HasPrefix(a, prefix) {
			out[i] = prefix + value
		}
	}
	return out
}

func announcers(ctx context.Context, bc *client.Client) []string {
	var list v1alpha1.ServiceAnnouncementList
	if err := bc.List(ctx, "default", client.ServiceAnnouncements, &list); err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, a := range list.Items {
		if a.Service == "web" {
			out = append(out, a.Node)
		}
	}
	return out
}

// auditCount reads the audit log: the requests the account made, counted
// by "verb resource[/sub]", and those answered 403.
func auditCount(t *testing.T, path, sa string) (map[string]int, []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer func() { _ = f.Close() }()
	user := "system:serviceaccount:" + namespace + ":" + sa
	total := map[string]int{}
	seen := map[string]bool{}
	var denied []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev struct {
			AuditID string `json:"auditID"`
			Verb    string `json:"verb"`
			URI     string `json:"requestURI"`
			User    struct {
				Username string `json:"username"`
			} `json:"user"`
			ObjectRef *struct {
				Resource    string `json:"resource"`
				Subresource string `json:"subresource"`
			} `json:"objectRef"`
			ResponseStatus *struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.User.Username != user {
			continue
		}
		// A watch logs ResponseStarted, and ResponseComplete when it ends
		// (informers list by watching, too): count each request once.
		if seen[ev.AuditID] {
			continue
		}
		seen[ev.AuditID] = true
		what := ev.URI
		if ev.ObjectRef != nil {
			what = ev.ObjectRef.Resource
			if ev.ObjectRef.Subresource != "" {
				what += "/" + ev.ObjectRef.Subresource
			}
		}
		total[ev.Verb+" "+what]++
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code == 403 {
			denied = append(denied, ev.Verb+" "+what)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("audit log: %v", err)
	}
	return total, denied
}

func poll(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 45*time.Second, true, func(context.Context) (bool, error) {
		ok, detail := cond()
		last = detail
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within 45s (last: %s)", what, last)
	}
}
