package e2e

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/beaconlb/beacon/lab"
	"github.com/beaconlb/beacon/lab/echo"
	"github.com/beaconlb/beacon/lab/labtest"
)

// Traffic from client-lan to an L2 address: with Cluster policy it reaches
// pods on every node (masqueraded to the announcing node's address); with
// Local policy only the announcing node's own pod, which sees client-lan's
// real address.
func TestL2TrafficPolicies(t *testing.T) {
	l := labtest.Up(t, lab.Config{Nodes: 3, PodsPerNode: 1})
	s := startBeacon(t, l)
	s.LANPool()
	s.Apply(labtest.AllEchoService("cluster", corev1.ServiceExternalTrafficPolicyCluster))
	s.Apply(labtest.AllEchoService("local", corev1.ServiceExternalTrafficPolicyLocal))
	clusterIP, localIP := s.Ingress("cluster")[0], s.Ingress("local")[0]
	clientLAN := l.Topology().ClientLAN.IPv4.String()

	// Cluster: 60 requests reach all three pods.
	pods := map[string]bool{}
	s.Poll(20*time.Second, "Cluster policy reaches every pod", func() (bool, string) {
		r, err := s.get("client-lan", clusterIP, 80)
		if err == nil {
			pods[r.Pod] = true
		}
		return len(pods) == 3, fmt.Sprint(pods, err)
	})

	// Local: the announcer is the only node with traffic, its pod answers,
	// and it sees the client's own address.
	var announcer string
	s.Poll(20*time.Second, "Local announcer", func() (bool, string) {
		a := s.Announcers("local")
		if len(a) == 1 {
			announcer = a[0]
		}
		return len(a) == 1, fmt.Sprint(a)
	})
	for i := range 20 {
		var r echo.Reply
		s.Poll(10*time.Second, "Local reply", func() (bool, string) {
			var err error
			r, err = s.get("client-lan", localIP, 80)
			return err == nil, fmt.Sprint(err)
		})
		if r.Node != announcer || r.Client.Addr().String() != clientLAN {
			t.Fatalf("request %d: answered by %s on %s seeing %v; want the announcer %s's pod seeing %s",
				i, r.Pod, r.Node, r.Client, announcer, clientLAN)
		}
	}
}
