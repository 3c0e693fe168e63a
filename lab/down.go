package lab

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/vishvananda/netlink"
)

// Down stops the EndpointSlice writer, then removes everything (DownAll) and
// releases the lab lock. It is idempotent.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.downed {
		return nil
	}
	l.downed = true
	l.stopWriterLocked()
	err := DownAll()
	if l.lock != nil {
		_ = l.lock.Close()
		l.lock = nil
	}
	return err
}

func (l *Lab) stopWriterLocked() {
	if l.stop != nil {
		l.stop()
		select {
		case <-l.done:
		case <-time.After(5 * time.Second):
		}
		l.stop = nil
	}
}

// DownAll removes every lab leftover, whoever made it: it stops (SIGTERM,
// SIGKILL after 1 s) every process recorded in the state directory or living in a beacon- network
// namespace, deletes those namespaces and any beacon- link of the calling
// namespace, and removes the state directory. It does not take the lab
// lock: it is the emergency brake (`beacon-lab down`).
func DownAll() error {
	inv, err := TakeInventory()
	if err != nil {
		return err
	}
	var errs []error
	// A short grace: the lab is disposable, and etcd with kube-apiserver
	// stopped together can take many seconds to agree on a clean exit.
	if err := stopProcesses(inv.Processes, time.Second); err != nil {
		errs = append(errs, err)
	}
	for ns := range inv.Netns {
		if err := deleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range inv.Links {
		link, err := netlink.LinkByName(name)
		if err != nil {
			continue
		}
		if err := netlink.LinkDel(link); err != nil {
			errs = append(errs, fmt.Errorf("lab: delete link %s: %w", name, err))
		}
	}
	if err := os.RemoveAll(StateDir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
