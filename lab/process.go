package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessSpec describes a long-running process the lab starts and tracks.
type ProcessSpec struct {
	// Name is unique in the lab: the pid file is pids/<Name>.pid and the
	// log logs/<Name>.log under the state directory.
	Name string
	// Netns is the lab namespace to run in ("host", "node1", "n1-p1"...).
	Netns string
	// Argv is the command and its arguments.
	Argv []string
	// Env is added to this process's environment.
	Env []string

	extraFiles []*os.File
}

// Process is a tracked process: started in its own session (so an
// interrupted terminal does not kill it), output in its log file, pid
// recorded so that DownAll stops it even after the starter crashed.
type Process struct {
	Name  string
	Netns string
	Pid   int
	// Log is the path of the combined stdout/stderr.
	Log string

	start uint64        // /proc start time, guards against pid reuse
	done  chan struct{} // closed once reaped; nil when not our child
}

// Alive reports whether the process is still running.
func (p *Process) Alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
		}
	}
	return pidAlive(p.Pid, p.start)
}

// pidRecord is the content of a pid file.
type pidRecord struct {
	Pid   int
	Start uint64
	Netns string
	Argv0 string
}

func (r pidRecord) String() string {
	return fmt.Sprintf("%d %d %s %s\n", r.Pid, r.Start, r.Netns, r.Argv0)
}

func parsePidRecord(b []byte) (pidRecord, error) {
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return pidRecord{}, fmt.Errorf("malformed pid file %q", b)
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return pidRecord{}, err
	}
	start, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return pidRecord{}, err
	}
	r := pidRecord{Pid: pid, Start: start, Netns: f[2]}
	if len(f) > 3 {
		r.Argv0 = f[3]
	}
	return r, nil
}

// startProcess starts spec in its namespace and records it under dir.
func startProcess(dir string, spec ProcessSpec) (*Process, error) {
	if spec.Name == "" || strings.ContainsAny(spec.Name, "/ ") || len(spec.Argv) == 0 {
		return nil, fmt.Errorf("lab: bad process spec %q %q", spec.Name, spec.Argv)
	}
	for _, d := range []string{"logs", "pids"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(dir, "logs", spec.Name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.ExtraFiles = spec.extraFiles
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	ns := Netns(spec.Netns)
	_, _ = fmt.Fprintf(logf, "=== %s: starting in %s: %s\n", time.Now().Format(time.RFC3339Nano), ns, strings.Join(spec.Argv, " "))
	if err := InNetns(ns, cmd.Start); err != nil {
		return nil, fmt.Errorf("lab: start %s: %w", spec.Name, err)
	}
	p := &Process{Name: spec.Name, Netns: ns, Pid: cmd.Process.Pid, Log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	p.start, _ = procStartTime(p.Pid)
	rec := pidRecord{Pid: p.Pid, Start: p.start, Netns: ns, Argv0: filepath.Base(spec.Argv[0])}
	if err := os.WriteFile(pidFile(dir, spec.Name), []byte(rec.String()), 0o644); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return p, nil
}

func pidFile(dir, name string) string { return filepath.Join(dir, "pids", name+".pid") }

// loadProcesses reads every pid file under dir.
func loadProcesses(dir string) ([]*Process, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "pids"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Process
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".pid")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "pids", e.Name()))
		if err != nil {
			continue
		}
		r, err := parsePidRecord(b)
		if err != nil {
			continue
		}
		out = append(out, &Process{Name: name, Netns: r.Netns, Pid: r.Pid, start: r.Start,
			Log: filepath.Join(dir, "logs", name+".log")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// stopProcesses sends SIGTERM, waits up to grace, then SIGKILLs and waits
// up to another 3 s. It returns an error naming any survivor.
func stopProcesses(procs []*Process, grace time.Duration) error {
	signalAll := func(sig syscall.Signal) {
		for _, p := range procs {
			if p.Alive() {
				_ = syscall.Kill(p.Pid, sig)
			}
		}
	}
	waitAll := func(d time.Duration) bool {
		deadline := time.Now().Add(d)
		for {
			alive := false
			for _, p := range procs {
				if p.Alive() {
					alive = true
					break
				}
			}
			if !alive {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(20 * time.Millisecond) // polling /proc, bounded by deadline
		}
	}
	signalAll(syscall.SIGTERM)
	if waitAll(grace) {
		return nil
	}
	signalAll(syscall.SIGKILL)
	if waitAll(3 * time.Second) {
		return nil
	}
	var names []string
	for _, p := range procs {
		if p.Alive() {
			names = append(names, fmt.Sprintf("%s(pid %d)", p.Name, p.Pid))
		}
	}
	return fmt.Errorf("lab: processes survived SIGKILL: %s", strings.Join(names, ", "))
}

// procStat returns the state letter and start time of a process.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); start time is field 22.
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err
}

func procStartTime(pid int) (uint64, error) {
	_, s, err := procStat(pid)
	return s, err
}

// pidAlive reports whether pid runs (not a zombie) and, when start is not
// zero, is the same process (same start time).
func pidAlive(pid int, start uint64) bool {
	st, s, err := procStat(pid)
	if err != nil || st == 'Z' || st == 'X' {
		return false
	}
	return start == 0 || s == start
}

// processesInNetns returns every process (other than this one) whose network
// namespace is one of the given namespace inodes.
func processesInNetns(inodes map[uint64]string) ([]*Process, error) {
	if len(inodes) == 0 {
		return nil, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []*Process
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		link, err := os.Readlink("/proc/" + e.Name() + "/ns/net")
		if err != nil {
			continue
		}
		ino, ok := parseNsLink(link)
		if !ok {
			continue
		}
		ns, ok := inodes[ino]
		if !ok {
			continue
		}
		_, start, err := procStat(pid)
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		out = append(out, &Process{Name: strings.TrimSpace(string(comm)), Netns: ns, Pid: pid, start: start})
	}
	return out, nil
}

// parseNsLink parses "net:[4026532281]".
func parseNsLink(s string) (uint64, bool) {
	s, ok := strings.CutPrefix(s, "net:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// StartIn starts a prepared command in the named lab namespace (then
// Wait for it as usual).
func StartIn(ns string, cmd *exec.Cmd) error {
	if err := InNetns(ns, cmd.Start); err != nil {
		return fmt.Errorf("lab: start %q in %s: %w", cmd.Args, Netns(ns), err)
	}
	return nil
}

// Exec runs argv in the named lab namespace and returns its combined
// output. The error includes the output when the command fails.
func Exec(ctx context.Context, ns string, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("lab: Exec: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := StartIn(ns, cmd); err != nil {
		return nil, err
	}
	if err := cmd.Wait(); err != nil {
		return out.Bytes(), fmt.Errorf("lab: exec %q in %s: %w: %s", argv, Netns(ns), err, tail(out.Bytes(), 2000))
	}
	return out.Bytes(), nil
}

// tail returns at most the last n bytes of b, as a string.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// LogTail returns up to the last n bytes of a file (for error messages).
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tail(b, n)
}
