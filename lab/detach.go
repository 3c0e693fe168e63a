package lab

import (
	"context"
	"errors"
	"os"
	"strconv"
)

// Attach returns the lab that is running now (made by another process,
// e.g. `beacon-lab up`). Its Down is DownAll.
func Attach() (*Lab, error) {
	sv, err := readSaved()
	if err != nil {
		return nil, err
	}
	cfg := Config{Nodes: sv.Nodes, PodsPerNode: sv.PodsPerNode, Namespace: sv.Namespace, Router: sv.Router}.withDefaults()
	topo, err := Plan(cfg)
	if err != nil {
		return nil, err
	}
	l := &Lab{cfg: cfg, topo: topo, dir: StateDir, procs: map[string]*Process{}}
	procs, err := loadProcesses(StateDir)
	if err != nil {
		return nil, err
	}
	for _, p := range procs {
		l.procs[p.Name] = p
	}
	if err := l.connect(); err != nil {
		return nil, err
	}
	return l, nil
}

// Detach hands the lab over to a background process so that it outlives
// this one: argv runs in the host namespace, tracked like every lab process
// and holding the lab lock (inherited as file descriptor 3) for as long as
// it lives; usually it runs the EndpointSlice writer (`beacon-lab up` uses
// its own hidden "daemon" subcommand). This Lab's writer is stopped. Remove
// the lab with DownAll.
func (l *Lab) Detach(argv []string) error {
	l.mu.Lock()
	lock := l.lock
	l.mu.Unlock()
	if lock == nil {
		return errors.New("lab: Detach: this Lab does not hold the lab lock")
	}
	sv, err := readSaved()
	if err != nil {
		return err
	}
	p, err := l.startProcess(ProcessSpec{Name: procDaemon, Netns: Host, Argv: argv, extraFiles: []*os.File{lock}})
	if err != nil {
		return err
	}
	sv.Detached, sv.OwnerPid = true, p.Pid
	if err := writeSaved(sv); err != nil {
		return err
	}
	if err := lock.Truncate(0); err == nil {
		_, _ = lock.WriteAt([]byte(strconv.Itoa(p.Pid)+"\n"), 0)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopWriterLocked()
	_ = l.lock.Close() // the daemon keeps the lock
	l.lock = nil
	l.downed = true // Down on this value would not own the lab any more
	return nil
}

// RunDaemon is the body of the process Detach starts for the CLI: it
// attaches to the running lab and runs the EndpointSlice writer until ctx
// ends.
func RunDaemon(ctx context.Context) error {
	l, err := Attach()
	if err != nil {
		return err
	}
	ecs, err := endpointWriterClient(l.restCfg)
	if err != nil {
		return err
	}
	return RunEndpointWriter(ctx, ecs)
}
