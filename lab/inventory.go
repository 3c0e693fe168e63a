package lab

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/vishvananda/netlink"
)

// Inventory is what a lab (running or leftover) holds on this machine.
type Inventory struct {
	// Netns maps each lab network namespace to its inode.
	Netns map[string]uint64
	// Links are the lab-named links of the calling namespace (normally none).
	Links []string
	// Processes are the recorded processes that still run plus every
	// other process living in one of Netns.
	Processes []*Process
	// StateDir reports whether StateDir exists.
	StateDir bool
}

// Empty reports whether nothing of a lab is left.
func (inv *Inventory) Empty() bool {
	return len(inv.Netns) == 0 && len(inv.Links) == 0 && len(inv.Processes) == 0 && !inv.StateDir
}

// String lists the inventory.
func (inv *Inventory) String() string {
	var ns, procs []string
	for n := range inv.Netns {
		ns = append(ns, n)
	}
	sort.Strings(ns)
	for _, p := range inv.Processes {
		procs = append(procs, fmt.Sprintf("%s(pid %d in %s)", p.Name, p.Pid, p.Netns))
	}
	return fmt.Sprintf("netns=%v links=%v processes=%v stateDir=%v", ns, inv.Links, procs, inv.StateDir)
}

// TakeInventory lists the lab's namespaces, links and live processes.
func TakeInventory() (*Inventory, error) {
	inv := &Inventory{Netns: map[string]uint64{}}
	names, err := ListNetns()
	if err != nil {
		return nil, err
	}
	for _, ns := range names {
		ino, err := netnsInode(filepath.Join(NetnsDir, ns))
		if err != nil {
			ino = 0 // a dangling name: still delete it
		}
		inv.Netns[ns] = ino
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("lab: list links: %w", err)
	}
	for _, l := range links {
		if IsLabName(l.Attrs().Name) {
			inv.Links = append(inv.Links, l.Attrs().Name)
		}
	}
	recorded, err := loadProcesses(StateDir)
	if err != nil {
		return nil, err
	}
	if inv.Processes, err = inv.survivors(recorded); err != nil {
		return nil, err
	}
	_, err = os.Stat(StateDir)
	inv.StateDir = err == nil
	return inv, nil
}

// Survivors returns the processes of the inventory that still run, plus
// any process now living in one of its namespaces (even if the namespace's
// name is gone). Use it to check that a teardown left nothing behind.
func (inv *Inventory) Survivors() ([]*Process, error) { return inv.survivors(inv.Processes) }

func (inv *Inventory) survivors(known []*Process) ([]*Process, error) {
	inodes := map[uint64]string{}
	for ns, ino := range inv.Netns {
		if ino != 0 {
			inodes[ino] = ns
		}
	}
	inNetns, err := processesInNetns(inodes)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []*Process
	for _, p := range append(append([]*Process(nil), known...), inNetns...) {
		if seen[p.Pid] || !pidAlive(p.Pid, p.start) {
			continue
		}
		seen[p.Pid] = true
		out = append(out, p)
	}
	return out, nil
}
