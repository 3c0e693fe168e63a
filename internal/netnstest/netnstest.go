// Package netnstest runs test code and commands in network namespaces made
// with `ip netns add` (bound under /run/netns).
package netnstest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CommandTimeout bounds every command Run starts.
const CommandTimeout = 20 * time.Second

// New creates the network namespace name (see Add) and deletes it when the
// test ends (see Delete).
func New(t testing.TB, name string) string {
	t.Helper()
	t.Cleanup(func() {
		if err := Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if err := Add(name); err != nil {
		t.Fatal(err)
	}
	return name
}

// Add creates the network namespace name with lo up and IPv6 duplicate
// address detection off, so that addresses (link-local ones too) are
// usable at once.
func Add(name string) error {
	for _, argv := range [][]string{
		{"ip", "netns", "add", name},
		{"ip", "-n", name, "link", "set", "lo", "up"},
		{"ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"},
	} {
		if _, err := Run(argv[0], argv[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// Delete kills what still runs in the namespace name (only processes the
// test started can be there) and deletes it; a namespace that is already
// gone is no error.
func Delete(name string) error {
	if _, err := os.Stat("/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, _ := Run("ip", "netns", "pids", name)
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	_, err := Run("ip", "netns", "del", name)
	return err
}

// Do runs fn on an OS thread switched to the named namespace; sockets and
// netlink handles fn opens belong to it. The thread goes back to its
// namespace afterwards; if that fails it stays locked, so the runtime
// discards it rather than reuse it in the wrong namespace.
func Do(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer func() { _ = unix.Close(orig) }()
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", ns, err)
			return
		}
		defer func() { _ = unix.Close(fd) }()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back from %s: %w", ns, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Run runs a command (bounded by CommandTimeout) and returns its combined
// output; the error includes the output.
func Run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
