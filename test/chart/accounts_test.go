package chart

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// Names the chart gives its ServiceAccounts for release "beacon".
const (
	controllerSA = "beacon-controller"
	speakerSA    = "beacon-speaker"
)

// token asks the API server for a ServiceAccount token (TokenRequest API),
// as the kubelet does for a Pod.
func token(ctx context.Context, t testing.TB, admin kubernetes.Interface, sa string) string {
	t.Helper()
	tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s: %v", sa, err)
	}
	return tr.Status.Token
}

// asToken returns a copy of an admin config that authenticates with only
// the given bearer token.
func asToken(admin *rest.Config, tok string) *rest.Config {
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerToken = tok
	return cfg
}

// denials counts API responses 403 seen through a rest.Config, so a test
// can prove that a component never hit a permission it lacks.
type denials struct {
	mu   sync.Mutex
	seen []string
}

func (d *denials) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil && resp.StatusCode == http.StatusForbidden {
				d.mu.Lock()
				d.seen = append(d.seen, req.Method+" "+req.URL.Path)
				d.mu.Unlock()
			}
			return resp, err
		})
	}
	return cfg
}

func (d *denials) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.seen...)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// access is one question to the authorizer: may this account do verb on
// group/resource[/subresource] [name] in namespace?
type access struct {
	verb, group, resource, sub, ns, name string
}

func (a access) String() string {
	s := a.verb + " " + a.resource
	if a.group != "" {
		s += "." + a.group
	}
	if a.sub != "" {
		s += "/" + a.sub
	}
	if a.name != "" {
		s += " " + a.name
	}
	if a.ns != "" {
		s += " in " + a.ns
	} else {
		s += " (all namespaces / cluster)"
	}
	return s
}

// each expands verbs separated by commas into one access per verb.
func each(verbs string, a access) []access {
	var out []access
	for _, v := range strings.Split(verbs, ",") {
		a.verb = v
		out = append(out, a)
	}
	return out
}

// checkAccess asks the API server, as the account behind kube, about each
// access (SelfSubjectAccessReview) and fails on any answer other than want.
func checkAccess(ctx context.Context, t *testing.T, who string, kube kubernetes.Interface, want bool, list []access) {
	t.Helper()
	for _, a := range list {
		r, err := kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub, Namespace: a.ns, Name: a.name,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("%s: access review of %s: %v", who, a, err)
		}
		if r.Status.Allowed != want {
			verdict := "denied"
			if r.Status.Allowed {
				verdict = "allowed"
			}
			t.Errorf("%s may %s: %s (%s)", who, a, verdict, r.Status.Reason)
		}
	}
}

// The permissions each daemon uses: read from the code (allocator/controller,
// internal/leader, speaker/agent, client/) and proven sufficient by running
// the daemons with them (TestControllerRunsAsChartAccount, TestChartInLab).
var (
	controllerNeeds = concat(
		each("list,watch", access{resource: "services"}),
		each("list,watch", access{resource: "namespaces"}),
		each("patch", access{resource: "services", sub: "status", ns: "default"}),
		each("create,patch", access{resource: "events", ns: "default"}),
		each("list,watch", access{group: "beaconlb.io", resource: "ippools"}),
		each("patch", access{group: "beaconlb.io", resource: "ippools", sub: "status", name: "lan"}),
		// The speakers' reports, for beacon_addresses_unannounced.
		each("list,watch", access{group: "beaconlb.io", resource: "serviceannouncements"}),
		// Accepted and ResolvedRefs on the configuration kinds.
		each("list,watch", access{group: "beaconlb.io", resource: "l2advertisements"}),
		each("list,watch", access{group: "beaconlb.io", resource: "bgppeers"}),
		each("list,watch", access{group: "beaconlb.io", resource: "bgpadvertisements"}),
		each("list,watch", access{group: "beaconlb.io", resource: "bfdprofiles"}),
		each("patch", access{group: "beaconlb.io", resource: "l2advertisements", sub: "status", name: "lan"}),
		each("patch", access{group: "beaconlb.io", resource: "bgppeers", sub: "status", name: "tor"}),
		each("patch", access{group: "beaconlb.io", resource: "bgpadvertisements", sub: "status", name: "routed"}),
		each("patch", access{group: "beaconlb.io", resource: "bfdprofiles", sub: "status", name: "fast"}),
		// The speakers' session reports say whether a peer's password
		// Secret is usable: the controller reads them instead of Secrets.
		each("list,watch", access{group: "beaconlb.io", resource: "bgpsessionstates"}),
		each("get,update", access{group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "beacon-controller"}),
		// The externalIPs guard's param, an ExternalIPsAllowList.
		each("get,list,watch,update", access{group: "beaconlb.io", resource: "externalipsallowlists", name: "beacon-externalips"}),
		each("create", access{group: "beaconlb.io", resource: "externalipsallowlists"}),
	)
	controllerMustNot = concat(
		each("get,update,delete", access{resource: "configmaps", ns: namespace, name: "kube-root-ca.crt"}),
		each("list", access{resource: "configmaps", ns: namespace}),
		each("create", access{resource: "configmaps", ns: "default"}),
		each("list,update,delete", access{group: "beaconlb.io", resource: "externalipsallowlists", name: "someone-else"}),
		each("delete", access{group: "beaconlb.io", resource: "externalipsallowlists", name: "beacon-externalips"}),
		each("create,update,patch,delete", access{resource: "services", ns: "default"}),
		each("get,list", access{resource: "secrets", ns: namespace}),
		each("list", access{resource: "nodes"}),
		each("create", access{group: "coordination.k8s.io", resource: "leases", ns: namespace}),
		each("update", access{group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "someone-else"}),
		each("create,update,delete", access{group: "beaconlb.io", resource: "ippools"}),
		each("create,update,delete", access{group: "beaconlb.io", resource: "serviceannouncements", ns: "default"}),
		each("create,update,patch,delete", access{group: "beaconlb.io", resource: "bgppeers", name: "tor"}),
		each("create,update,patch,delete", access{group: "beaconlb.io", resource: "l2advertisements", name: "lan"}),
		each("create,update,patch,delete", access{group: "beaconlb.io", resource: "bgpsessionstates", name: "tor-node1"}),
		each("get", access{resource: "secrets", ns: namespace, name: "router-password"}),
	)
	speakerNeeds = concat(
		each("list,watch", access{resource: "services"}),
		each("list,watch", access{resource: "nodes"}),
		each("list,watch", access{group: "discovery.k8s.io", resource: "endpointslices"}),
		each("create,patch", access{resource: "events", ns: "default"}),
		each("list,watch", access{group: "beaconlb.io", resource: "ippools"}),
		each("list,watch", access{group: "beaconlb.io", resource: "l2advertisements"}),
		each("list,watch", access{group: "beaconlb.io", resource: "serviceannouncements"}),
		each("create,update,delete", access{group: "beaconlb.io", resource: "serviceannouncements", ns: "default"}),
		// BGP configuration and session reports, as the BGP speaker (issue 4)
		// uses them.
		each("list,watch", access{group: "beaconlb.io", resource: "bgppeers"}),
		each("list,watch", access{group: "beaconlb.io", resource: "bgpadvertisements"}),
		each("list,watch", access{group: "beaconlb.io", resource: "bfdprofiles"}),
		each("list,watch,create,update,delete", access{group: "beaconlb.io", resource: "bgpsessionstates"}),
	)
	speakerMustNot = concat(
		each("list,watch", access{resource: "secrets", ns: namespace}),
		each("create,update,patch,delete", access{resource: "services", ns: "default"}),
		each("update,patch", access{resource: "services", sub: "status", ns: "default"}),
		each("update,patch", access{resource: "nodes", name: "node1"}),
		each("get,list", access{resource: "secrets", ns: "default"}),
		each("list", access{resource: "secrets"}),
		each("patch", access{group: "beaconlb.io", resource: "ippools", sub: "status", name: "lan"}),
		each("patch", access{group: "beaconlb.io", resource: "bgppeers", sub: "status", name: "tor"}),
		each("create,update,delete", access{group: "beaconlb.io", resource: "l2advertisements"}),
		each("create,update,delete", access{group: "beaconlb.io", resource: "bgppeers"}),
		each("get,update", access{group: "coordination.k8s.io", resource: "leases", ns: namespace, name: "beacon-controller"}),
	)
	// With bgp.enabled the speaker gets password Secrets by name, in the
	// release namespace only.
	speakerBGPSecrets = each("get", access{resource: "secrets", ns: namespace, name: "router-password"})
)

func concat(lists ...[]access) []access {
	var out []access
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}
