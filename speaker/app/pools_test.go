package app

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/client"
	"github.com/beaconlb/beacon/config"
	"github.com/beaconlb/beacon/config/v1alpha1"
	"github.com/beaconlb/beacon/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestPoolRanges: the cleaner learns every block the IPPools declare from a
// real API server, and goes on with none when it cannot reach one.
func TestPoolRanges(t *testing.T) {
	e := testenv.Need(t, env)
	ctx := context.Background()
	for name, blocks := range map[string][]v1alpha1.AddressBlock{
		"lan": {"198.51.100.200-198.51.100.210", "2001:db8:100::/126"},
		"bgp": {"203.0.113.0/30"},
	} {
		p := &v1alpha1.IPPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.IPPoolSpec{Addresses: blocks}}
		if err := e.Beacon.Create(ctx, client.IPPools, p); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Beacon.Delete(context.Background(), client.IPPools, name) })
	}
	r := func(first, last string) config.Range {
		return config.Range{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)}
	}
	want := []config.Range{
		r("198.51.100.200", "198.51.100.210"), r("203.0.113.0", "203.0.113.3"),
		r("2001:db8:100::", "2001:db8:100::3"),
	}
	// Merge sorts; these blocks do not touch.
	got := config.Merge(poolRanges(ctx, testr.New(t), Options{RestConfig: e.Config}))
	if !slices.Equal(got, want) {
		t.Errorf("pool ranges %v, want %v", got, want)
	}
	if got := poolRanges(ctx, testr.New(t), Options{Kubeconfig: t.TempDir() + "/missing"}); got != nil {
		t.Errorf("without an API server: %v, want none", got)
	}
}
