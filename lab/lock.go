package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Machine-wide locations: namespace names are global, so is the lab.
const (
	// StateDir holds lab.json, kubeconfig, pki/, etcd/, logs/, pids/, bin/.
	StateDir = "/run/beacon-lab"
	// LockPath is flock()ed by whoever owns the running lab (a test process,
	// or the detached daemon of `beacon-lab up`).
	LockPath = "/run/beacon-lab.lock"
)

// saved is lab.json: enough to Attach to a running lab.
type saved struct {
	Nodes       int    `json:"nodes"`
	PodsPerNode int    `json:"podsPerNode"`
	Namespace   string `json:"namespace"`
	OwnerPid    int    `json:"ownerPid"`
	// Router is the router's configuration (defaults filled in).
	Router RouterConfig `json:"router"`
	// Detached: the lab belongs to the daemon of `beacon-lab up`.
	Detached bool `json:"detached,omitempty"`
}

// tryLock takes the machine-wide lab lock if it is free; nil if it is held.
func tryLock() (*os.File, error) {
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		_ = f.Close()
		return nil, nil
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lab: lock %s: %w", LockPath, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// acquireLock takes the machine-wide lab lock, waiting within ctx.
func acquireLock(ctx context.Context) (*os.File, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		f, err := tryLock()
		if err != nil || f != nil {
			return f, err
		}
		select {
		case <-ctx.Done():
			holder, _ := os.ReadFile(LockPath)
			return nil, fmt.Errorf("lab: another lab is up (lock %s held by pid %s); wait, or remove it with `beacon-lab down`: %w",
				LockPath, strings.TrimSpace(string(holder)), ctx.Err())
		case <-tick.C:
		}
	}
}

func readSaved() (saved, error) {
	var sv saved
	b, err := os.ReadFile(filepath.Join(StateDir, "lab.json"))
	if err != nil {
		return sv, fmt.Errorf("lab: no running lab (%w)", err)
	}
	if err := json.Unmarshal(b, &sv); err != nil {
		return sv, fmt.Errorf("lab: %s: %w", filepath.Join(StateDir, "lab.json"), err)
	}
	return sv, nil
}

func writeSaved(sv saved) error {
	b, err := json.Marshal(sv)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(StateDir, "lab.json"), b, 0o644)
}
