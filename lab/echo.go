package lab

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"
)

// EchoProcessName is the tracked process name of a pod's echo server.
func EchoProcessName(pod string) string { return "echo-" + pod }

func (l *Lab) echoPath() string { return filepath.Join(l.dir, "bin", "beacon-echo") }

func (l *Lab) echoSpec(p Pod) ProcessSpec {
	return ProcessSpec{Name: EchoProcessName(p.Name), Netns: p.Netns, Argv: []string{
		l.echoPath(), "--pod=" + p.Name, "--node=" + p.Node, "--port=" + strconv.Itoa(EchoPort),
	}}
}

// waitEcho polls the echo server's TCP port from inside its pod.
func (l *Lab) waitEcho(ctx context.Context, p Pod) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(EchoPort))
	dial := Dialer(p.Netns)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := dial(ctx, "tcp", addr)
		if err == nil {
			_ = c.Close()
			return nil
		}
		l.mu.Lock()
		proc := l.procs[EchoProcessName(p.Name)]
		l.mu.Unlock()
		if proc != nil && !proc.Alive() {
			return fmt.Errorf("lab: echo server of %s exited: %s", p.Name, LogTail(proc.Log, 2000))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: echo server of %s not answering: %w (last: %v)", p.Name, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// StopEcho stops a pod's echo server (connections are then refused).
func (l *Lab) StopEcho(pod string) error {
	if _, ok := l.Pod(pod); !ok {
		return fmt.Errorf("lab: no pod %s", pod)
	}
	return l.StopProcess(EchoProcessName(pod))
}

// StartEcho (re)starts a pod's echo server and waits until it answers.
func (l *Lab) StartEcho(ctx context.Context, pod string) error {
	p, ok := l.Pod(pod)
	if !ok {
		return fmt.Errorf("lab: no pod %s", pod)
	}
	if _, err := l.StartProcess(l.echoSpec(p)); err != nil {
		return err
	}
	return l.waitEcho(ctx, p)
}
