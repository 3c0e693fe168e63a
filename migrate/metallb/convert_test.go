package metallb

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

func labels(kv ...string) metav1.LabelSelector {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return metav1.LabelSelector{MatchLabels: m}
}

func in(key string, values ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpIn, Values: values}}}
}

func TestOneSelector(t *testing.T) {
	exists := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "edge", Operator: metav1.LabelSelectorOpExists}}}
	tests := []struct {
		name  string
		in    []metav1.LabelSelector
		want  *metav1.LabelSelector
		exact bool
	}{
		{"none", nil, nil, true},
		{"one", []metav1.LabelSelector{labels("a", "1", "b", "2")}, ptr(labels("a", "1", "b", "2")), true},
		{"repeats", []metav1.LabelSelector{labels("a", "1"), labels("a", "1")}, ptr(labels("a", "1")), true},
		{"empty matches all", []metav1.LabelSelector{labels("a", "1"), {}}, &metav1.LabelSelector{}, true},
		{"same key", []metav1.LabelSelector{labels("team", "b"), labels("team", "a")}, in("team", "a", "b"), true},
		{"labels and In", []metav1.LabelSelector{labels("team", "a"), *in("team", "c", "a")}, in("team", "a", "c"), true},
		{"other keys", []metav1.LabelSelector{labels("team", "a"), labels("env", "prod")}, ptr(labels("team", "a")), false},
		{"two labels each", []metav1.LabelSelector{labels("team", "a", "env", "x"), labels("team", "b")}, ptr(labels("team", "a", "env", "x")), false},
		{"not In", []metav1.LabelSelector{labels("edge", "x"), exists}, ptr(labels("edge", "x")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, exact := oneSelector(tt.in)
			if exact != tt.exact || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("oneSelector = %v, %v; want %v, %v", got, exact, tt.want, tt.exact)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// convert runs one object through Convert.
func convert(t *testing.T, kind string, spec map[string]any, aliases ...map[string]any) *Result {
	t.Helper()
	objs := []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "metallb.io/v1beta1", "kind": kind,
		"metadata": map[string]any{"name": "x", "namespace": "metallb-system"},
		"spec":     spec,
	}}}
	for _, a := range aliases {
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "metallb.io/v1beta1", "kind": "Community",
			"metadata": map[string]any{"name": "c", "namespace": "metallb-system"}, "spec": a,
		}})
	}
	return Convert(objs, Options{})
}

// findingFields lists the fields of the findings.
func findingFields(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Field)
	}
	return out
}

func TestCommunities(t *testing.T) {
	aliases := map[string]any{"communities": []any{
		map[string]any{"name": "no-export", "value": "65535:65281"},
		map[string]any{"name": "big", "value": "large:1:2:3"},
	}}
	tests := []struct {
		in       string
		want     []v1alpha1.Community
		findings []string
	}{
		{"64500:100", []v1alpha1.Community{"64500:100"}, nil},
		{"large:64500:1:2", []v1alpha1.Community{"64500:1:2"}, nil},
		{"no-export", []v1alpha1.Community{"65535:65281"}, nil},
		{"big", []v1alpha1.Community{"1:2:3"}, nil},
		{"0065000:01", []v1alpha1.Community{"65000:1"}, nil},
		{"no-exprt", nil, []string{"spec.communities[0]"}},
		{"65536:1", nil, []string{"spec.communities[0]"}},
		{"large:1:2", nil, []string{"spec.communities[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			res := convert(t, "BGPAdvertisement", map[string]any{"communities": []any{tt.in}}, aliases)
			if len(res.BGPAdvertisements) != 1 {
				t.Fatalf("got %d advertisements", len(res.BGPAdvertisements))
			}
			if got := res.BGPAdvertisements[0].Spec.Communities; !slices.Equal(got, tt.want) {
				t.Errorf("communities = %v, want %v", got, tt.want)
			}
			if got := findingFields(res.Findings); !slices.Equal(got, tt.findings) {
				t.Errorf("findings on %v, want %v: %v", got, tt.findings, res.Findings)
			}
		})
	}
}

func TestPeer(t *testing.T) {
	base := func(kv ...any) map[string]any {
		m := map[string]any{"myASN": int64(64500), "peerASN": int64(64501), "peerAddress": "198.51.100.1"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name     string
		spec     map[string]any
		check    func(*v1alpha1.BGPPeerSpec) bool // nil: no peer expected
		findings []string
	}{
		{"plain", base(), func(s *v1alpha1.BGPPeerSpec) bool { return s.PeerAddress == "198.51.100.1" && s.MyASN == 64500 }, nil},
		{"ipv6 normalised", base("peerAddress", "2001:DB8::1"), func(s *v1alpha1.BGPPeerSpec) bool { return s.PeerAddress == "2001:db8::1" }, nil},
		{"timers", base("holdTime", "30s", "keepaliveTime", "10s"), func(s *v1alpha1.BGPPeerSpec) bool {
			return s.HoldTime.Duration == 30*time.Second && s.KeepaliveTime.Duration == 10*time.Second
		}, nil},
		{"hold 0", base("holdTime", "0s", "keepaliveTime", "10s"), func(s *v1alpha1.BGPPeerSpec) bool { return s.HoldTime.Duration == 0 && s.KeepaliveTime != nil }, nil},
		{"keepalive not below hold", base("holdTime", "9s", "keepaliveTime", "9s"), func(s *v1alpha1.BGPPeerSpec) bool { return s.KeepaliveTime == nil }, []string{"spec.keepaliveTime"}},
		{"keepalive not below default hold", base("keepaliveTime", "90s"), func(s *v1alpha1.BGPPeerSpec) bool { return s.KeepaliveTime == nil }, []string{"spec.keepaliveTime"}},
		{"hold too short", base("holdTime", "2s"), func(s *v1alpha1.BGPPeerSpec) bool { return s.HoldTime == nil }, []string{"spec.holdTime"}},
		{"graceful restart", base("enableGracefulRestart", true), func(s *v1alpha1.BGPPeerSpec) bool { return s.GracefulRestart != nil && s.GracefulRestart.Enabled }, nil},
		{"password", base("password", "pw"), func(s *v1alpha1.BGPPeerSpec) bool { return s.PasswordSecretRef.Name == "x-bgp-password" }, nil},
		{"password and secret", base("password", "pw", "passwordSecret", map[string]any{"name": "s"}), func(s *v1alpha1.BGPPeerSpec) bool {
			return s.PasswordSecretRef.Name == "s"
		}, []string{"spec.password", "spec.passwordSecret"}},
		{"source of other family", base("sourceAddress", "2001:db8::2"), func(s *v1alpha1.BGPPeerSpec) bool { return s.SourceAddress == "" }, []string{"spec.sourceAddress"}},
		{"router id v6", base("routerID", "2001:db8::2"), func(s *v1alpha1.BGPPeerSpec) bool { return s.RouterID == "" }, []string{"spec.routerID"}},
		{"disableMP is Beacon's way", base("disableMP", true), func(*v1alpha1.BGPPeerSpec) bool { return true }, nil},
		{"AS 0", base("myASN", int64(0)), nil, []string{"spec.myASN"}},
		{"AS_TRANS", base("peerASN", int64(23456)), nil, []string{"spec.peerASN"}},
		{"dynamic", base("peerASN", int64(0), "dynamicASN", "internal"), nil, []string{"spec.dynamicASN"}},
		{"vrf", base("vrf", "red"), nil, []string{"spec.vrf"}},
		{"bad address", base("peerAddress", "router1"), nil, []string{"spec.peerAddress"}},
		{"unknown field", base("newThing", "x"), func(*v1alpha1.BGPPeerSpec) bool { return true }, []string{"spec.newThing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := convert(t, "BGPPeer", tt.spec)
			switch {
			case tt.check == nil && len(res.BGPPeers) != 0:
				t.Errorf("peer converted: %+v", res.BGPPeers[0].Spec)
			case tt.check != nil && len(res.BGPPeers) != 1:
				t.Errorf("peer not converted: %v", res.Findings)
			case tt.check != nil && !tt.check(&res.BGPPeers[0].Spec):
				t.Errorf("unexpected spec %+v", res.BGPPeers[0].Spec)
			}
			if got := findingFields(res.Findings); !slices.Equal(got, tt.findings) {
				t.Errorf("findings on %v, want %v: %v", got, tt.findings, res.Findings)
			}
		})
	}
}

func TestServiceAnnotations(t *testing.T) {
	tests := []struct {
		name     string
		in       map[string]any
		want     map[string]string // nil: no Service out
		findings []string
	}{
		{"none", map[string]any{"other": "x"}, nil, nil},
		{"old prefix", map[string]any{"metallb.universe.tf/address-pool": "p"}, map[string]string{"beaconlb.io/pool": "p"}, nil},
		{"new prefix wins", map[string]any{"metallb.io/address-pool": "new", "metallb.universe.tf/address-pool": "old"},
			map[string]string{"beaconlb.io/pool": "new"}, []string{"metadata.annotations.metallb.universe.tf/address-pool"}},
		{"same on both", map[string]any{"metallb.io/allow-shared-ip": "k", "metallb.universe.tf/allow-shared-ip": "k"},
			map[string]string{"beaconlb.io/allow-shared-ip": "k"}, nil},
		{"ips spaces", map[string]any{"metallb.io/loadBalancerIPs": " 198.51.100.5 , 2001:db8::5"}, map[string]string{"beaconlb.io/ips": "198.51.100.5,2001:db8::5"}, nil},
		{"bad ips", map[string]any{"metallb.io/loadBalancerIPs": "198.51.100.500"}, map[string]string{"beaconlb.io/ips": "198.51.100.500"}, []string{""}},
		{"already Beacon's", map[string]any{"metallb.io/address-pool": "p", "beaconlb.io/pool": "p"}, nil, nil},
		{"written by MetalLB", map[string]any{"metallb.universe.tf/ip-allocated-from-pool": "p"}, nil, nil},
		{"unknown", map[string]any{"metallb.io/frob": "1"}, nil, []string{"metadata.annotations.metallb.io/frob"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Convert([]*unstructured.Unstructured{{Object: map[string]any{
				"apiVersion": "v1", "kind": "Service",
				"metadata": map[string]any{"name": "s", "namespace": "ns", "annotations": tt.in},
				"spec":     map[string]any{"type": "LoadBalancer"},
			}}}, Options{})
			switch {
			case tt.want == nil && len(res.Services) != 0:
				t.Errorf("Service written: %v", res.Services[0].Annotations)
			case tt.want != nil && (len(res.Services) != 1 || !reflect.DeepEqual(res.Services[0].Annotations, tt.want)):
				t.Errorf("Services %+v, want annotations %v", res.Services, tt.want)
			}
			if got := findingFields(res.Findings); !slices.Equal(got, tt.findings) {
				t.Errorf("findings on %v, want %v: %v", got, tt.findings, res.Findings)
			}
		})
	}
}

func TestLegacyName(t *testing.T) {
	for in, want := range map[string]string{
		"holdTime": "hold-time", "myASN": "my-asn", "ebgpMultiHop": "ebgp-multihop",
		"communities[0]": "communities[0]", "localPref": "localpref", "minimumTtl": "minimum-ttl",
		"serviceAllocation.priority": "service-allocation.priority",
	} {
		if got := legacyName(in); got != want {
			t.Errorf("legacyName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDuplicateNames(t *testing.T) {
	pool := func(ns string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
			"metadata": map[string]any{"name": "p", "namespace": ns},
			"spec":     map[string]any{"addresses": []any{"198.51.100.0/28"}},
		}}
	}
	res := Convert([]*unstructured.Unstructured{pool("a"), pool("b")}, Options{})
	if len(res.Pools) != 1 || len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Reason, "IPAddressPool a/p") {
		t.Errorf("pools %d, findings %v; want one pool and a finding naming the first source", len(res.Pools), res.Findings)
	}
}

func TestReadObjects(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		kinds []string
		err   bool
	}{
		{"documents", "---\napiVersion: v1\nkind: Service\n---\n\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n", []string{"Service", "IPAddressPool"}, false},
		{"list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n- apiVersion: v1\n  kind: Service\n", []string{"ConfigMap", "Service"}, false},
		{"json", `{"apiVersion": "metallb.io/v1beta1", "kind": "Community"}`, []string{"Community"}, false},
		{"empty", "", nil, false},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\n", nil, true},
		{"not yaml", "apiVersion: [v1\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ReadObjects(strings.NewReader(tt.in))
			if (err != nil) != tt.err {
				t.Fatalf("err = %v, want error %v", err, tt.err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind())
			}
			if !slices.Equal(kinds, tt.kinds) {
				t.Errorf("kinds %v, want %v", kinds, tt.kinds)
			}
		})
	}
}
