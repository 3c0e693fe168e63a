package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

type schemaCase struct {
	name string
	spec map[string]any
	want string // substring of the rejection; "" means accepted
}

// checkSchema sends each spec to a real API server so the CRD's OpenAPI and
// CEL rules are checked as users will meet them.
func checkSchema(t *testing.T, kind, resource string, cases []schemaCase) {
	e := testenv.Need(t, env)
	dc, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	res := dc.Resource(v1alpha1.SchemeGroupVersion.WithResource(resource))
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": v1alpha1.SchemeGroupVersion.String(),
				"kind":       kind,
				"metadata":   map[string]any{"name": fmt.Sprintf("cel-%d", i)},
				"spec":       tc.spec,
			}}
			_, err := res.Create(context.Background(), obj, metav1.CreateOptions{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want rejection containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("rejected with %v, want %q", err, tc.want)
			}
			if err == nil {
				if err := res.Delete(context.Background(), obj.GetName(), metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func peerSpec(kv ...any) map[string]any {
	s := map[string]any{"myASN": 64512, "peerASN": 64500, "peerAddress": "198.51.100.1"}
	for i := 0; i+1 < len(kv); i += 2 {
		s[kv[i].(string)] = kv[i+1]
	}
	return s
}

func TestBGPPeerSchema(t *testing.T) {
	checkSchema(t, "BGPPeer", "bgppeers", []schemaCase{
		{"minimal", peerSpec(), ""},
		{"full", peerSpec("peerAddress", "2001:db8::1", "sourceAddress", "2001:db8::11", "routerID", "10.0.0.1",
			"peerPort", 1179, "holdTime", "9s", "keepaliveTime", "3s", "ebgpMultiHop", true,
			"passwordSecretRef", map[string]any{"name": "bgp", "key": "pw"},
			"nodeSelector", map[string]any{"matchLabels": map[string]any{"rack": "a"}},
			"gracefulRestart", map[string]any{"enabled": true, "restartTime": "60s"}, "bfdProfile", "fast"), ""},
		{"hold 0", peerSpec("holdTime", "0s", "keepaliveTime", "0s"), ""},
		{"hold 2s", peerSpec("holdTime", "2s"), "holdTime must be 0 or at least 3s"},
		{"keepalive not below hold", peerSpec("holdTime", "3s", "keepaliveTime", "3s"), "keepaliveTime must be shorter than holdTime"},
		{"keepalive over default hold", peerSpec("keepaliveTime", "120s"), "keepaliveTime must be shorter than holdTime"},
		{"asn 0", peerSpec("myASN", 0), "should be greater than or equal to 1"},
		{"asn too big", peerSpec("peerASN", int64(4294967296)), "should be less than or equal to 4294967295"},
		{"as_trans", peerSpec("peerASN", 23456), "AS_TRANS"},
		{"peer not an IP", peerSpec("peerAddress", "router.example"), "peerAddress must be an IP address"},
		{"families differ", peerSpec("sourceAddress", "2001:db8::11"), "same family"},
		{"v6 router id", peerSpec("routerID", "2001:db8::1"), "routerID must be an IPv4 address"},
		{"restart time", peerSpec("gracefulRestart", map[string]any{"enabled": true, "restartTime": "5000s"}), "between 1s and 4095s"},
		{"missing peerASN", map[string]any{"myASN": 64512, "peerAddress": "198.51.100.1"}, "peerASN: Required"},
	})
}

func TestBGPAdvertisementSchema(t *testing.T) {
	checkSchema(t, "BGPAdvertisement", "bgpadvertisements", []schemaCase{
		{"empty", map[string]any{}, ""},
		{"full", map[string]any{"ipPools": []any{"bgp"}, "peers": []any{"tor"}, "communities": []any{"65000:100", "1:2:3", "4294967295:0:4294967295"},
			"localPref": 200, "aggregationLength": 24, "aggregationLengthV6": 64,
			"ipPoolSelector": map[string]any{"matchLabels": map[string]any{"scope": "routed"}},
			"nodeSelector":   map[string]any{"matchLabels": map[string]any{"rack": "a"}}}, ""},
		{"standard community overflow", map[string]any{"communities": []any{"65536:1"}}, `"65536:1" is neither a standard community`},
		{"large community overflow", map[string]any{"communities": []any{"1:2:4294967296"}}, "is neither a standard community"},
		{"community junk", map[string]any{"communities": []any{"no-export"}}, "is neither a standard community"},
		{"aggregation too long", map[string]any{"aggregationLength": 33}, "less than or equal to 32"},
		{"aggregation v6 too long", map[string]any{"aggregationLengthV6": 129}, "less than or equal to 128"},
		{"negative localPref", map[string]any{"localPref": -1}, "greater than or equal to 0"},
	})
}

func TestBFDProfileSchema(t *testing.T) {
	checkSchema(t, "BFDProfile", "bfdprofiles", []schemaCase{
		{"empty", map[string]any{}, ""},
		{"timers", map[string]any{"receiveInterval": 100, "transmitInterval": 100, "detectMultiplier": 3, "echoMode": false, "passiveMode": false}, ""},
		{"echo", map[string]any{"echoMode": true}, "echoMode is not supported"},
		{"passive", map[string]any{"passiveMode": true}, "passiveMode is not supported"},
		{"interval too short", map[string]any{"receiveInterval": 5}, "greater than or equal to 10"},
		{"multiplier", map[string]any{"detectMultiplier": 1}, "greater than or equal to 2"},
	})
}
