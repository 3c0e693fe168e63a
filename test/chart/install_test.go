package chart

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/beaconlb/beacon/allocator/app"
	"github.com/beaconlb/beacon/allocator/controller"
	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

// TestInstallUpgradeUninstall installs the chart into a real API server,
// checks every object and the RBAC of both accounts, runs the controller as
// its account, upgrades to BGP, and uninstalls.
func TestInstallUpgradeUninstall(t *testing.T) {
	e := testenv.Need(t, env)
	t.Parallel()
	helmBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kc := []string{"--kubeconfig", e.Kubeconfig, "--namespace", namespace}

	// Install the defaults. CRDs are already there (testenv installs the
	// same files): helm skips existing CRDs.
	notes := helm(t, append([]string{"install", release, chartDir(), "--create-namespace"}, kc...)...)
	// NOTES.txt tells the user what to create next and where to look.
	for _, want := range []string{"kind: IPPool", "kind: L2Advertisement", "--type=LoadBalancer", "kubectl get serviceannouncements -A", "docs/troubleshooting.md"} {
		if !strings.Contains(notes, want) {
			t.Errorf("helm install notes lack %q:\n%s", want, notes)
		}
	}
	t.Logf("helm install printed:\n%s", notes)
	uninstalled := false
	t.Cleanup(func() {
		if !uninstalled {
			_, _ = runHelm(t, append([]string{"uninstall", release}, kc...)...)
		}
	})

	dep, err := e.Kube.AppsV1().Deployments(namespace).Get(ctx, "beacon-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := *dep.Spec.Replicas; got != 2 {
		t.Errorf("controller replicas %d, want 2", got)
	}
	ds, err := e.Kube.AppsV1().DaemonSets(namespace).Get(ctx, "beacon-speaker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSpeakerPod(t, ds.Spec.Template.Spec)
	if _, err := e.Kube.PolicyV1().PodDisruptionBudgets(namespace).Get(ctx, "beacon-controller", metav1.GetOptions{}); err != nil {
		t.Errorf("PodDisruptionBudget: %v", err)
	}
	key1 := memberKeyOf(ctx, t, e.Kube)

	// RBAC, asked as each account with a token the API server issued.
	ctrlCfg := asToken(e.Config, token(ctx, t, e.Kube, controllerSA))
	spkCfg := asToken(e.Config, token(ctx, t, e.Kube, speakerSA))
	ctrlKube := kubernetes.NewForConfigOrDie(ctrlCfg)
	spkKube := kubernetes.NewForConfigOrDie(spkCfg)
	checkAccess(ctx, t, "controller", ctrlKube, true, controllerNeeds)
	checkAccess(ctx, t, "controller", ctrlKube, false, controllerMustNot)
	checkAccess(ctx, t, "speaker", spkKube, true, speakerNeeds)
	checkAccess(ctx, t, "speaker", spkKube, false, concat(speakerMustNot, speakerBGPSecrets))

	// The controller, running as its account, hands out an address; not
	// one of its requests is refused.
	svc := runControllerOnce(ctx, t, e, ctrlCfg)

	// The speaker's account cannot change that Service, spec or status.
	checkSpeakerCannotWrite(ctx, t, spkKube, svc)

	// A controller holds the Lease while the release is upgraded: helm
	// must leave the holder alone.
	lease, err := e.Kube.CoordinationV1().Leases(namespace).Get(ctx, "beacon-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lease.Spec.HolderIdentity = ptr.To("beacon-controller-abcde")
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](4)
	if _, err := e.Kube.CoordinationV1().Leases(namespace).Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Upgrade: BGP on. The speaker may now get Secrets here (passwords),
	// still nowhere else; the heartbeat key survives the upgrade.
	helm(t, append([]string{"upgrade", release, chartDir(), "--set", "bgp.enabled=true", "--set", "logLevel=1"}, kc...)...)
	checkAccess(ctx, t, "speaker (bgp)", spkKube, true, speakerBGPSecrets)
	checkAccess(ctx, t, "speaker (bgp)", spkKube, false, speakerMustNot)
	lease, err = e.Kube.CoordinationV1().Leases(namespace).Get(ctx, "beacon-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(lease.Spec.HolderIdentity, ""); h != "beacon-controller-abcde" {
		t.Errorf("helm upgrade changed the Lease holder to %q", h)
	}
	if key2 := memberKeyOf(ctx, t, e.Kube); key2 != key1 {
		t.Errorf("helm upgrade changed the speakers' heartbeat key")
	}
	ds, err = e.Kube.AppsV1().DaemonSets(namespace).Get(ctx, "beacon-speaker", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if args := ds.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "-v=1") {
		t.Errorf("upgrade did not reach the speaker's args: %q", args)
	}

	helm(t, append([]string{"uninstall", release}, kc...)...)
	uninstalled = true
	checkNothingLeft(ctx, t, e)

	// helm uninstall keeps the externalIPs guard's param (were it deleted,
	// a controller still running would create it again without Helm's
	// ownership); the next install adopts it.
	var al v1alpha1.ExternalIPsAllowList
	if err := e.Beacon.Get(ctx, client.ExternalIPsAllowLists, "beacon-externalips", &al); err != nil {
		t.Fatalf("the externalIPs guard's param after helm uninstall: %v", err)
	}
	uninstalled = false
	helm(t, append([]string{"install", release, chartDir()}, kc...)...)
	helm(t, append([]string{"uninstall", release}, kc...)...)
	uninstalled = true
	checkNothingLeft(ctx, t, e)
	if err := e.Beacon.Delete(ctx, client.ExternalIPsAllowLists, "beacon-externalips"); err != nil {
		t.Error(err)
	}
}

func checkSpeakerPod(t *testing.T, pod corev1.PodSpec) {
	t.Helper()
	if !pod.HostNetwork {
		t.Error("speaker: hostNetwork is off")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("speaker: no securityContext with capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("speaker is privileged")
	}
	var added []string
	for _, c := range sc.Capabilities.Add {
		added = append(added, string(c))
	}
	slices.Sort(added)
	if !slices.Equal(added, []string{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("speaker capabilities %v, want exactly NET_ADMIN, NET_RAW", added)
	}
	if !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("speaker does not drop ALL capabilities first: %v", sc.Capabilities.Drop)
	}
	var nodeName bool
	for _, ev := range c.Env {
		if ev.Name == "NODE_NAME" && ev.ValueFrom != nil && ev.ValueFrom.FieldRef != nil && ev.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeName = true
		}
	}
	if !nodeName {
		t.Error("speaker: NODE_NAME does not come from spec.nodeName")
	}
	if !slices.Contains(c.Args, "--dataplane=external") {
		t.Errorf("speaker args %q lack the default --dataplane=external", c.Args)
	}
}

func memberKeyOf(ctx context.Context, t *testing.T, kube kubernetes.Interface) string {
	t.Helper()
	s, err := kube.CoreV1().Secrets(namespace).Get(ctx, "beacon-speaker-memberkey", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k := string(s.Data["member-key"])
	if len(k) < 32 {
		t.Fatalf("heartbeat key is %d bytes, want a random one of at least 32", len(k))
	}
	return k
}

// runControllerOnce runs beacon-controller (its real code, in this process)
// with cfg, as the chart configures it (leader election on the release's
// Lease), until a Service gets an address from a pool. It fails the test
// on any 403 the controller received.
func runControllerOnce(ctx context.Context, t *testing.T, e *testenv.Env, cfg *rest.Config) *corev1.Service {
	t.Helper()
	var d denials
	o := app.Options{
		RestConfig: d.wrap(cfg), Workers: 2, QPS: 100, Burst: 200, MetricsAddr: "0", HealthAddr: "0",
		LeaderElect: true, LeaseNamespace: namespace, LeaseName: "beacon-controller", LeaseIdentity: "chart-test",
	}
	ready := make(chan struct{})
	o.Ready = func(*controller.Controller) { close(ready) }
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(rctx, testr.New(t), o) }()
	defer func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("controller: %v", err)
		}
		if seen := d.list(); len(seen) > 0 {
			t.Errorf("the controller was refused %d request(s) as its chart account: %v", len(seen), seen)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("controller stopped before leading: %v", err)
	case <-ctx.Done():
		t.Fatal("controller did not become ready as its chart account")
	}

	pool := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: "lan"}}
	pool.Spec.Addresses = []v1alpha1.AddressBlock{"198.51.100.200-198.51.100.210"}
	if err := e.Beacon.Create(ctx, client.IPPools, pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Beacon.Delete(context.Background(), client.IPPools, "lan") })
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "chart-web", Namespace: "default"},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeLoadBalancer,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80}},
		},
	}
	if _, err := e.Kube.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteService(e, "chart-web") })
	var got *corev1.Service
	err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := e.Kube.CoreV1().Services("default").Get(ctx, "chart-web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = s
		return len(s.Status.LoadBalancer.Ingress) > 0, nil
	})
	if err != nil {
		t.Fatalf("Service got no address from the controller running as its chart account: %v", err)
	}
	// Pool status is written too (ippools/status).
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var p v1alpha1.IPPool
		if err := e.Beacon.Get(ctx, client.IPPools, "lan", &p); err != nil {
			return false, err
		}
		return p.Status.IPv4 != nil && p.Status.IPv4.Used == 1, nil
	})
	if err != nil {
		t.Errorf("pool status not written as the controller's account: %v", err)
	}
	// And the configuration kinds' status (l2advertisements/status).
	ad := &v1alpha1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "lan"}, Spec: v1alpha1.L2AdvertisementSpec{IPPools: []string{"lan"}}}
	if err := e.Beacon.Create(ctx, client.L2Advertisements, ad); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Beacon.Delete(context.Background(), client.L2Advertisements, "lan") })
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var a v1alpha1.L2Advertisement
		if err := e.Beacon.Get(ctx, client.L2Advertisements, "lan", &a); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(a.Status.Conditions, v1alpha1.ConditionAccepted), nil
	})
	if err != nil {
		t.Errorf("L2Advertisement status not written as the controller's account: %v", err)
	}
	return got
}

// checkSpeakerCannotWrite makes real writes to a Service as the speaker.
func checkSpeakerCannotWrite(ctx context.Context, t *testing.T, kube kubernetes.Interface, svc *corev1.Service) {
	t.Helper()
	mod := svc.DeepCopy()
	mod.Labels = map[string]string{"hijacked": "true"}
	_, err := kube.CoreV1().Services(svc.Namespace).Update(ctx, mod, metav1.UpdateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("speaker's Service update: %v, want 403 Forbidden", err)
	}
	mod = svc.DeepCopy()
	mod.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.51.100.99"}}
	_, err = kube.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, mod, metav1.UpdateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("speaker's Service status update: %v, want 403 Forbidden", err)
	}
}

// deleteService removes a Service, dropping the controller's finalizer
// first (the controller is gone by then).
func deleteService(e *testenv.Env, name string) {
	ctx := context.Background()
	s, err := e.Kube.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return
	}
	s.Finalizers = nil
	_, _ = e.Kube.CoreV1().Services("default").Update(ctx, s, metav1.UpdateOptions{})
	_ = e.Kube.CoreV1().Services("default").Delete(ctx, name, metav1.DeleteOptions{})
}

// checkNothingLeft lists every listable resource type the API server serves
// and fails on any object of the release (its labels, or helm's release
// records); the CRDs must stay.
func checkNothingLeft(ctx context.Context, t *testing.T, e *testenv.Env) {
	t.Helper()
	left, err := releaseObjects(ctx, e.Config)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("after helm uninstall these objects remain: %v", left)
	}
	// Lists fail if the CRDs went with the release; helm keeps them.
	if objs := beaconObjects(ctx, t, e.Beacon); len(objs) > 0 {
		t.Logf("beaconlb.io objects after uninstall (the test's own pool): %v", objs)
	}
}

// beaconObjects lists every beaconlb.io object; it fails the test when a
// CRD is missing.
func beaconObjects(ctx context.Context, t *testing.T, bc *client.Client) []string {
	t.Helper()
	var out []string
	var pools v1alpha1.IPPoolList
	if err := bc.List(ctx, "", client.IPPools, &pools); err != nil {
		t.Fatalf("list ippools (is the CRD gone?): %v", err)
	}
	for _, o := range pools.Items {
		out = append(out, "ippool "+o.Name)
	}
	var advs v1alpha1.L2AdvertisementList
	if err := bc.List(ctx, "", client.L2Advertisements, &advs); err != nil {
		t.Fatalf("list l2advertisements (is the CRD gone?): %v", err)
	}
	for _, o := range advs.Items {
		out = append(out, "l2advertisement "+o.Name)
	}
	var anns v1alpha1.ServiceAnnouncementList
	if err := bc.List(ctx, "", client.ServiceAnnouncements, &anns); err != nil {
		t.Fatalf("list serviceannouncements (is the CRD gone?): %v", err)
	}
	for _, o := range anns.Items {
		out = append(out, "serviceannouncement "+o.Namespace+"/"+o.Name)
	}
	return out
}

func releaseObjects(ctx context.Context, cfg *rest.Config) ([]string, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{} // deprecated kinds are listed on purpose
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	lists, err := disc.ServerPreferredResources()
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	var left []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return nil, err
		}
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") {
				continue
			}
			for _, sel := range []string{"app.kubernetes.io/instance=" + release, "owner=helm,name=" + release} {
				objs, err := dyn.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: sel})
				if err != nil {
					return nil, fmt.Errorf("list %s: %w", r.Name, err)
				}
				for _, o := range objs.Items {
					left = append(left, r.Name+" "+o.GetNamespace()+"/"+o.GetName())
				}
			}
		}
	}
	return left, nil
}

// TestFullRefusedNextToKubeProxy: with dataplane: full the chart refuses
// to install while the DaemonSet kube-system/kube-proxy exists, and says
// why; external installs there, and checkKubeProxy=false lets full
// through. --dry-run=server makes helm look at the cluster without
// creating anything, so the parallel install test is not disturbed. The
// externalIPs guard is left out: its objects have fixed cluster-wide
// names, and while the parallel test's release owns them helm refuses a
// second release that would create them too.
func TestFullRefusedNextToKubeProxy(t *testing.T) {
	e := testenv.Need(t, env)
	t.Parallel()
	helmBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kc := []string{"--kubeconfig", e.Kubeconfig, "--namespace", "beacon-fullcheck"}
	install := func(set ...string) (string, error) {
		args := append([]string{"install", "fullcheck", chartDir(), "--dry-run=server", "--set", "externalIPsGuard.enabled=false"}, kc...)
		for _, s := range set {
			args = append(args, "--set", s)
		}
		return runHelm(t, args...)
	}

	// No kube-proxy yet: full installs.
	if out, err := install("dataplane=full"); err != nil {
		t.Fatalf("dataplane=full without kube-proxy: %v\n%s", err, out)
	}

	labels := map[string]string{"k8s-app": "kube-proxy"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-proxy", Namespace: "kube-system"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kube-proxy", Image: "kube-proxy"}}},
			},
		},
	}
	if _, err := e.Kube.AppsV1().DaemonSets("kube-system").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.Kube.AppsV1().DaemonSets("kube-system").Delete(context.Background(), "kube-proxy", metav1.DeleteOptions{})
	})

	out, err := install("dataplane=full")
	if err == nil {
		t.Fatalf("dataplane=full next to kube-proxy installed:\n%s", out)
	}
	if !strings.Contains(err.Error(), "kube-system/kube-proxy exists") {
		t.Errorf("refusal does not say why: %v", err)
	}
	if out, err := install("dataplane=external"); err != nil {
		t.Errorf("dataplane=external next to kube-proxy: %v\n%s", err, out)
	}
	if out, err := install("dataplane=full", "checkKubeProxy=false"); err != nil {
		t.Errorf("dataplane=full with checkKubeProxy=false: %v\n%s", err, out)
	}
}
