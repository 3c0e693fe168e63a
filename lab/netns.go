package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where named network namespaces live (as with `ip netns`).
const NetnsDir = "/run/netns"

// InNetns runs fn on the calling goroutine, locked to its OS thread, with
// that thread switched into the named lab namespace ("node1" or
// "beacon-node1"), and switches back afterwards. Sockets fn opens belong to
// that namespace for their whole life, whichever goroutine later uses them;
// goroutines fn starts do NOT run in the namespace. If the thread cannot be
// switched back it is left locked, so Go discards it when the goroutine
// ends.
func InNetns(ns string, fn func() error) error {
	return InNetnsPath(filepath.Join(NetnsDir, Netns(ns)), fn)
}

// InNetnsPath is InNetns for the namespace file at path, such as
// /proc/PID/ns/net of a container's process.
func InNetnsPath(path string, fn func() error) (err error) {
	target, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("lab: open netns %s: %w", path, err)
	}
	defer func() { _ = target.Close() }()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: current netns: %w", err)
	}
	defer func() { _ = orig.Close() }()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: enter netns %s: %w", path, err)
	}
	// Deferred so that it also runs when fn calls runtime.Goexit (t.FailNow).
	defer func() {
		if serr := netns.Set(orig); serr != nil {
			err = errors.Join(err, fmt.Errorf("lab: leave netns %s: %w", path, serr))
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// DialFunc dials like net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Dialer returns a dial function whose connections start in the named lab
// namespace, for http.Transport.DialContext or rest.Config.Dial. The address
// must be an IP literal (no name resolution in the lab).
func Dialer(ns string) DialFunc { return DialerPath(filepath.Join(NetnsDir, Netns(ns))) }

// DialerPath is Dialer for the namespace file at path.
func DialerPath(path string) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		if net.ParseIP(host) == nil {
			return nil, fmt.Errorf("lab: dial %s in %s: address must be an IP literal", address, path)
		}
		var c net.Conn
		err = InNetnsPath(path, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, address)
			return err
		})
		return c, err
	}
}

// ListNetns returns the lab's network namespaces that exist now (full
// names, sorted; only names IsLabName accepts).
func ListNetns() ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if IsLabName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// createNetns creates a named network namespace without moving the calling
// goroutine's thread: the new namespace is made on a locked thread that is
// switched back (or discarded) afterwards.
func createNetns(name string) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer func() { _ = orig.Close() }()
	h, err := netns.NewNamed(name)
	if err != nil {
		// NewNamed may have unshared already: always try to switch back.
		if serr := netns.Set(orig); serr == nil {
			runtime.UnlockOSThread()
		}
		return fmt.Errorf("lab: create netns %s: %w", name, err)
	}
	_ = h.Close()
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("lab: leave new netns %s: %w", name, err)
	}
	runtime.UnlockOSThread()
	return nil
}

// deleteNetns removes a named namespace (the kernel frees it once no
// process or socket holds it).
func deleteNetns(name string) error {
	p := filepath.Join(NetnsDir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("lab: unmount %s: %w", p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lab: remove %s: %w", p, err)
	}
	return nil
}

// netnsInode returns the inode identifying a namespace file (as shown in
// /proc/PID/ns/net as "net:[INODE]").
func netnsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// writeSysctl sets /proc/sys/<key> (dots become slashes) in the calling
// thread's network namespace; call it inside InNetns.
func writeSysctl(key, value string) error {
	p := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("lab: sysctl %s=%s: %w", key, value, err)
	}
	return nil
}
