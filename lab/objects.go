package lab

import (
	"context"
	"fmt"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Labels on the lab's Pod and Node objects. Every pod also carries
// app=<pod name>, so a Service can select exactly one pod.
const (
	// LabelApp is "echo" on every lab pod: select all of them.
	LabelApp = "lab.beaconlb.io/app"
	// LabelNode is the node name on every lab pod: select a node's pods.
	LabelNode = "lab.beaconlb.io/node"
	// LabelManaged is "true" on every Node and Pod object the lab made.
	LabelManaged = "lab.beaconlb.io/managed"
)

// Names of the echo container's ports (targetPort: http resolves to 5000/TCP,
// udp to 5000/UDP).
const (
	PortNameHTTP = "http"
	PortNameUDP  = "udp"
)

// nodeAddresses lists the heartbeat address first when there is one:
// speakers send heartbeats to a node's first IPv4 InternalIP.
func nodeAddresses(n Node) []corev1.NodeAddress {
	var out []corev1.NodeAddress
	if n.HeartbeatIPv4.IsValid() {
		out = append(out, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: n.HeartbeatIPv4.String()})
	}
	return append(out,
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: n.IPv4.String()},
		corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: n.IPv6.String()},
		corev1.NodeAddress{Type: corev1.NodeHostName, Address: n.Name})
}

// nodeObject is the Node of a lab node: InternalIPs on the LAN, pod CIDRs,
// Ready.
func nodeObject(n Node) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: map[string]string{
			corev1.LabelHostname:   n.Name,
			corev1.LabelOSStable:   "linux",
			corev1.LabelArchStable: runtime.GOARCH,
			LabelManaged:           "true",
		}},
		Spec: corev1.NodeSpec{PodCIDR: n.PodCIDRv4.String(), PodCIDRs: []string{n.PodCIDRv4.String(), n.PodCIDRv6.String()}},
		Status: corev1.NodeStatus{
			Addresses:  nodeAddresses(n),
			Conditions: []corev1.NodeCondition{readyNodeCondition(true)},
			Phase:      corev1.NodeRunning,
		},
	}
}

func readyNodeCondition(ready bool) corev1.NodeCondition {
	c := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "LabReady",
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}
	if !ready {
		c.Status, c.Reason = corev1.ConditionFalse, "LabNotReady"
	}
	return c
}

// podObject is the Pod of a lab pod (spec only; see podStatus).
func podObject(p Pod, namespace string) *corev1.Pod {
	grace := int64(30)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: namespace, Labels: map[string]string{
			"app":        p.Name,
			LabelApp:     "echo",
			LabelNode:    p.Node,
			LabelManaged: "true",
		}},
		Spec: corev1.PodSpec{
			NodeName:                      p.Node,
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1.Container{{
				Name:  "echo",
				Image: "beacon-echo",
				Ports: []corev1.ContainerPort{
					{Name: PortNameHTTP, ContainerPort: EchoPort, Protocol: corev1.ProtocolTCP},
					{Name: PortNameUDP, ContainerPort: EchoPort, Protocol: corev1.ProtocolUDP},
				},
			}},
		},
	}
}

func podStatus(p Pod, node Node, ready bool) corev1.PodStatus {
	now := metav1.Now()
	started := true
	st := corev1.ConditionTrue
	if !ready {
		st = corev1.ConditionFalse
	}
	return corev1.PodStatus{
		Phase:   corev1.PodRunning,
		HostIP:  node.IPv4.String(),
		HostIPs: []corev1.HostIP{{IP: node.IPv4.String()}, {IP: node.IPv6.String()}},
		PodIP:   p.IPv4.String(),
		PodIPs:  []corev1.PodIP{{IP: p.IPv4.String()}, {IP: p.IPv6.String()}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: st, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: st, LastTransitionTime: now},
		},
		StartTime: &now,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "echo", Image: "beacon-echo", Ready: ready, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		}},
	}
}

// createObjects creates the Node and Pod objects of the topology.
func createObjects(ctx context.Context, cs kubernetes.Interface, t *Topology, namespace string) error {
	for _, n := range t.Nodes {
		obj := nodeObject(n)
		created, err := cs.CoreV1().Nodes().Create(ctx, obj, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("lab: create node %s: %w", n.Name, err)
		}
		created.Status = obj.Status
		if _, err := cs.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("lab: node %s status: %w", n.Name, err)
		}
	}
	for _, p := range t.Pods {
		if err := createPod(ctx, cs, t, p, namespace); err != nil {
			return err
		}
	}
	return nil
}

func createPod(ctx context.Context, cs kubernetes.Interface, t *Topology, p Pod, namespace string) error {
	created, err := cs.CoreV1().Pods(namespace).Create(ctx, podObject(p, namespace), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("lab: create pod %s: %w", p.Name, err)
	}
	created.Status = podStatus(p, t.Nodes[p.NodeIndex-1], true)
	if _, err := cs.CoreV1().Pods(namespace).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("lab: pod %s status: %w", p.Name, err)
	}
	return nil
}

// setPodReady flips the Ready and ContainersReady conditions of a pod.
func setPodReady(ctx context.Context, cs kubernetes.Interface, namespace, name string, ready bool) error {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for i, c := range pod.Status.Conditions {
			if (c.Type == corev1.PodReady || c.Type == corev1.ContainersReady) && c.Status != st {
				pod.Status.Conditions[i].Status = st
				pod.Status.Conditions[i].LastTransitionTime = metav1.Now()
			}
		}
		for i := range pod.Status.ContainerStatuses {
			pod.Status.ContainerStatuses[i].Ready = ready
		}
		_, err = cs.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
}

// setNodeReady sets the Ready condition of a node.
func setNodeReady(ctx context.Context, cs kubernetes.Interface, name string, ready bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := readyNodeCondition(ready)
		found := false
		for i := range node.Status.Conditions {
			if node.Status.Conditions[i].Type == corev1.NodeReady {
				node.Status.Conditions[i] = c
				found = true
			}
		}
		if !found {
			node.Status.Conditions = append(node.Status.Conditions, c)
		}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

// forceDeletePod deletes a pod with grace 0 and waits until it is gone.
func forceDeletePod(ctx context.Context, cs kubernetes.Interface, namespace, name string) error {
	zero := int64(0)
	err := cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: pod %s still present: %w", name, ctx.Err())
		case <-tick.C:
		}
	}
}
