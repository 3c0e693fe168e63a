package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// An FRR instance (the lab router, or a throw-away FRR in a test) keeps
// every file in one directory: <daemon>.conf, <daemon>.pid, vty/, the zserv
// socket and bfdd's control socket. Nothing is shared with a system FRR or
// with /etc/frr.

// FRRBinDir holds the FRR daemons of Debian's frr package.
const FRRBinDir = "/usr/lib/frr"

// frrUser owns an FRR directory: the daemons drop to it after start.
const frrUser = "frr"

// WriteFRRDir makes dir and dir/vty and writes <daemon>.conf for each
// entry of confs ("vtysh" included when vtysh is to use the directory),
// all owned by the frr user.
func WriteFRRDir(dir string, confs map[string]string) error {
	u, err := user.Lookup(frrUser)
	if err != nil {
		return fmt.Errorf("lab: FRR user (apt-get install frr): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(filepath.Join(dir, "vty"), 0o755); err != nil {
		return err
	}
	// A directory from os.MkdirTemp is 0700.
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for name, text := range confs {
		// bgpd.conf may hold TCP MD5 passwords.
		if err := os.WriteFile(filepath.Join(dir, name+".conf"), []byte(text), 0o640); err != nil {
			return err
		}
	}
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

// FRRArgv is the command line of an FRR daemon whose files are in dir (see
// WriteFRRDir). Each daemon finds zebra at FRRZserv(dir).
func FRRArgv(dir, daemon string) []string {
	argv := []string{
		filepath.Join(FRRBinDir, daemon),
		"-f", filepath.Join(dir, daemon+".conf"),
		"-i", filepath.Join(dir, daemon+".pid"),
		"--vty_socket", filepath.Join(dir, "vty"),
		"-z", FRRZserv(dir),
		"-P", "0", // no TCP vty
		"--log", "stdout", "--log-level", "info",
	}
	if daemon == "bfdd" {
		argv = append(argv, "--bfdctl", filepath.Join(dir, "bfdd.sock"))
	}
	return argv
}

// FRRZserv is the path of zebra's zserv socket in an FRR directory.
func FRRZserv(dir string) string { return filepath.Join(dir, "zserv.api") }

// WaitZserv waits up to 10 s for the zserv socket of the zebra started
// with FRRArgv(dir, "zebra"): bgpd and bfdd started before it exists retry
// only after seconds. alive, if not nil, reports whether zebra still runs.
func WaitZserv(ctx context.Context, dir string, alive func() bool) error {
	err := pollUntil(ctx, 10*time.Second, 5*time.Millisecond, func() (bool, error) {
		if alive != nil && !alive() {
			return false, errors.New("zebra exited")
		}
		_, err := os.Stat(FRRZserv(dir))
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("lab: zebra's zserv socket: %w", err)
	}
	return nil
}
