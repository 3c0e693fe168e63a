package controller

import (
	"fmt"
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/beaconlb/beacon/config/v1alpha1"
)

func TestFindUnannounced(t *testing.T) {
	ip := netip.MustParseAddr
	ann := func(ns, svc, node string, addrs ...string) v1alpha1.ServiceAnnouncement {
		return v1alpha1.ServiceAnnouncement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc + "-" + node}, Service: svc, Node: node, Addresses: addrs}
	}
	web := map[string][]netip.Addr{"default/web": {ip("198.51.100.200"), ip("2001:db8:100::200")}}
	for _, tc := range []struct {
		name      string
		allocated map[string][]netip.Addr
		anns      []v1alpha1.ServiceAnnouncement
		want      string
	}{
		{"nothing allocated", nil, []v1alpha1.ServiceAnnouncement{ann("default", "web", "n1", "198.51.100.200")}, "[]"},
		{"no announcement", web, nil, "[{default/web 198.51.100.200} {default/web 2001:db8:100::200}]"},
		{"both families by one node", web, []v1alpha1.ServiceAnnouncement{ann("default", "web", "n1", "198.51.100.200", "2001:db8:100::200")}, "[]"},
		{"families by different nodes (L2 elects per address)", web, []v1alpha1.ServiceAnnouncement{
			ann("default", "web", "n1", "198.51.100.200"), ann("default", "web", "n2", "2001:db8:100::200")}, "[]"},
		{"one family unannounced", web, []v1alpha1.ServiceAnnouncement{ann("default", "web", "n1", "2001:db8:100::200")}, "[{default/web 198.51.100.200}]"},
		{"announcement without a node", web, []v1alpha1.ServiceAnnouncement{ann("default", "web", "", "198.51.100.200", "2001:db8:100::200")},
			"[{default/web 198.51.100.200} {default/web 2001:db8:100::200}]"},
		{"same name, other namespace", web, []v1alpha1.ServiceAnnouncement{ann("prod", "web", "n1", "198.51.100.200", "2001:db8:100::200")},
			"[{default/web 198.51.100.200} {default/web 2001:db8:100::200}]"},
		{"other Service's address", map[string][]netip.Addr{"default/a": {ip("203.0.113.1")}, "default/b": {ip("203.0.113.2")}},
			[]v1alpha1.ServiceAnnouncement{ann("default", "a", "n1", "203.0.113.2")}, "[{default/a 203.0.113.1} {default/b 203.0.113.2}]"},
		{"unparsable address ignored", web, []v1alpha1.ServiceAnnouncement{ann("default", "web", "n1", "not-an-ip", "2001:db8:100::200")}, "[{default/web 198.51.100.200}]"},
		{"sorted by Service then address", map[string][]netip.Addr{"b/x": {ip("203.0.113.9"), ip("203.0.113.1")}, "a/y": {ip("203.0.113.5")}}, nil,
			"[{a/y 203.0.113.5} {b/x 203.0.113.1} {b/x 203.0.113.9}]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fmt.Sprint(findUnannounced(tc.allocated, tc.anns)); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}
