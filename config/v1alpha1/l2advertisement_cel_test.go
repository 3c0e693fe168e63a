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

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestL2AdvertisementSchema sends objects to a real API server so the CRD's
// OpenAPI and CEL rules are checked as users will meet them.
func TestL2AdvertisementSchema(t *testing.T) {
	e := testenv.Need(t, env)
	dc, err := dynamic.NewForConfig(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	res := dc.Resource(v1alpha1.SchemeGroupVersion.WithResource("l2advertisements"))
	for i, tc := range []struct {
		name string
		spec map[string]any
		want string // substring of the rejection; "" means accepted
	}{
		{"empty spec: every pool, every node, every interface", map[string]any{}, ""},
		{"full", map[string]any{
			"ipPools":        []any{"lan", "lan6"},
			"ipPoolSelector": map[string]any{"matchLabels": map[string]any{"scope": "lan"}},
			"nodeSelector":   map[string]any{"matchExpressions": []any{map[string]any{"key": "role", "operator": "In", "values": []any{"edge"}}}},
			"interfaces":     []any{"eth0", "bond0.100", "enp0s31f6"},
		}, ""},
		{"interface too long", map[string]any{"interfaces": []any{"abcdefghijklmnop"}}, "Too long"},
		{"interface empty", map[string]any{"interfaces": []any{""}}, "should be at least 1"},
		{"interface with slash", map[string]any{"interfaces": []any{"eth/0"}}, `"eth/0" is not a valid interface name`},
		{"interface with colon", map[string]any{"interfaces": []any{"eth0:1"}}, `"eth0:1" is not a valid interface name`},
		{"interface with tab", map[string]any{"interfaces": []any{"eth\t0"}}, "is not a valid interface name"},
		{"interface dotdot", map[string]any{"interfaces": []any{".."}}, `".." is not a valid interface name`},
		{"duplicate interfaces", map[string]any{"interfaces": []any{"eth0", "eth0"}}, "Duplicate value"},
		{"empty pool name", map[string]any{"ipPools": []any{""}}, "should be at least 1"},
		{"failback Never", map[string]any{"failback": "Never"}, ""},
		{"failback Immediate", map[string]any{"failback": "Immediate"}, ""},
		{"failback unknown", map[string]any{"failback": "Later"}, "Unsupported value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": v1alpha1.SchemeGroupVersion.String(),
				"kind":       "L2Advertisement",
				"metadata":   map[string]any{"name": fmt.Sprintf("cel-%d", i)},
				"spec":       tc.spec,
			}}
			created, err := res.Create(context.Background(), obj, metav1.CreateOptions{})
			// Without failback the API server fills in the default.
			if err == nil && tc.spec["failback"] == nil {
				if f, _, _ := unstructured.NestedString(created.Object, "spec", "failback"); f != "Immediate" {
					t.Errorf("failback defaulted to %q, want Immediate", f)
				}
			}
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
