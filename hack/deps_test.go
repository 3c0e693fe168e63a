// Package hack holds tests of the scripts the Makefile and CI call.
package hack

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakes stand in for the system tools deps.sh calls: dpkg-query reports
// the packages in $FAKE_INSTALLED as installed, id -u prints $FAKE_UID,
// apt-get and systemctl log their arguments to $FAKE_LOG (apt-get exits
// with $FAKE_APT_RC); kubectl is there, for make demo's check.
var fakes = map[string]string{
	"dpkg-query": `eval pkg=\${$#}
for p in $FAKE_INSTALLED; do
  if [ "$p" = "$pkg" ]; then printf 'install ok installed'; exit 0; fi
done
echo "dpkg-query: no packages found matching $pkg" >&2
exit 1`,
	"id":        `echo "$FAKE_UID"`,
	"apt-get":   `echo "apt-get $*" >>"$FAKE_LOG"; exit "${FAKE_APT_RC:-0}"`,
	"systemctl": `echo "systemctl $*" >>"$FAKE_LOG"`,
	"kubectl":   `exit 0`,
}

// packages returns deps.sh's list, in its order.
func packages(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^pkgs=\((.*)\)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deps.sh has no line pkgs=(...)")
	}
	return strings.Fields(string(m[1]))
}

func without(every []string, drop ...string) string {
	var keep []string
	for _, p := range every {
		if !strings.Contains(" "+strings.Join(drop, " ")+" ", " "+p+" ") {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, " ")
}

func TestDeps(t *testing.T) {
	every := packages(t)
	for _, tc := range []struct {
		name      string
		set       string // deps.sh's argument
		installed string
		uid       string
		aptRC     string
		wantRC    int
		wantErr   string   // a line stderr must hold
		wantCalls []string // the fakes' log, in order
	}{
		{name: "all installed, not root", installed: without(every), uid: "1000", wantRC: 0},
		{name: "all installed, root", installed: without(every), uid: "0", wantRC: 0},
		{
			name: "missing, not root: one command, nothing installed", installed: without(every, "frr", "prometheus"), uid: "1000",
			wantRC:  1,
			wantErr: "apt-get install -y --no-install-recommends frr prometheus",
		},
		{
			name: "missing, root: installs and disables the services", installed: without(every, "frr", "prometheus", "jq"), uid: "0",
			wantRC: 0,
			wantCalls: []string{
				"apt-get -o DPkg::Lock::Timeout=900 update -qq",
				"apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends frr jq prometheus",
				"systemctl disable --now prometheus",
				"systemctl disable --now frr",
			},
		},
		{
			name: "missing, root, only a tool: no service touched", installed: without(every, "ndisc6"), uid: "0",
			wantRC: 0,
			wantCalls: []string{
				"apt-get -o DPkg::Lock::Timeout=900 update -qq",
				"apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends ndisc6",
			},
		},
		{
			// The lab's packages count as missing here: the kind set is
			// checked on its own.
			name: "kind set, missing, not root", set: "kind", installed: "podman runc golang-github-containernetworking-plugin-dnsname dnsmasq-base libseccomp-dev gcc libc6-dev iptables conntrack", uid: "1000",
			wantRC:  1,
			wantErr: "apt-get install -y --no-install-recommends debootstrap",
		},
		{
			name: "missing, root, apt fails", installed: without(every, "curl"), uid: "0", aptRC: "100",
			wantRC:    100,
			wantCalls: []string{"apt-get -o DPkg::Lock::Timeout=900 update -qq"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			argv := []string{"./deps.sh"}
			if tc.set != "" {
				argv = append(argv, tc.set)
			}
			rc, stderr, log := runFaked(t, tc.installed, tc.uid, tc.aptRC, argv...)
			if rc != tc.wantRC {
				t.Errorf("exit status %d, want %d; stderr:\n%s", rc, tc.wantRC, stderr)
			}
			if tc.wantErr != "" && !strings.Contains("\n"+stderr, "\n"+tc.wantErr+"\n") {
				t.Errorf("stderr lacks the line %q:\n%s", tc.wantErr, stderr)
			}
			checkCalls(t, log, tc.wantCalls)
		})
	}
}

// checkCalls compares the fakes' log with want.
func checkCalls(t *testing.T, log string, want []string) {
	t.Helper()
	var calls []string
	if b, err := os.ReadFile(log); err == nil {
		calls = strings.Split(strings.TrimSpace(string(b)), "\n")
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if strings.Join(calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
	}
}

// runFaked runs argv in this directory with the fakes first on PATH and
// returns its exit status, its output and the fakes' log file. It fails
// the test if argv runs longer than 10 s.
func runFaked(t *testing.T, installed, uid, aptRC string, argv ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range fakes {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	log := filepath.Join(dir, "log")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"FAKE_INSTALLED="+installed, "FAKE_UID="+uid, "FAKE_LOG="+log, "FAKE_APT_RC="+aptRC)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v still running after %v:\n%s", argv, time.Since(start), &out)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), log
	case err != nil:
		t.Fatal(err)
	}
	return 0, out.String(), log
}

// TestDemoChecksFirst runs `make demo` on a machine without FRR: it stops
// within seconds, before any build, naming the command that installs it
// (not root) or failing with apt-get's status (root, apt fails); as root
// with a working apt it installs FRR and only then starts building (GO=false
// ends the demo there).
func TestDemoChecksFirst(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	installed := without(packages(t), "frr")
	install := "apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends frr"
	for _, tc := range []struct {
		name, uid, aptRC string
		want             []string // in this order
		builds           bool
		wantCalls        []string // the fakes' log, in order
	}{
		{name: "not root", uid: "1000",
			want: []string{"apt-get install -y --no-install-recommends frr", "make demo needs root"}},
		{name: "root, apt fails", uid: "0", aptRC: "100",
			want:      []string{"deps: installing frr"},
			wantCalls: []string{"apt-get -o DPkg::Lock::Timeout=900 update -qq"}},
		{name: "root, apt works: installs, then builds", uid: "0",
			want: []string{"deps: installing frr", "Building Beacon"}, builds: true,
			wantCalls: []string{"apt-get -o DPkg::Lock::Timeout=900 update -qq", install, "systemctl disable --now frr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc, out, log := runFaked(t, installed, tc.uid, tc.aptRC, "make", "--no-print-directory", "-C", "..", "demo", "GO=false")
			if rc == 0 {
				t.Fatalf("make demo succeeded with GO=false:\n%s", out)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (after the lines before it):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if built := strings.Contains(out, "Building"); built != tc.builds {
				t.Errorf("started building: %v, want %v:\n%s", built, tc.builds, out)
			}
			checkCalls(t, log, tc.wantCalls)
		})
	}
}

// TestOneInstaller: CI, make demo and make test check their packages with
// deps.sh, and no other script installs Debian packages of its own (so the
// list cannot fork).
func TestOneInstaller(t *testing.T) {
	callers := map[string]string{"../.ci/run": "hack/deps.sh", "demo.sh": "hack/deps.sh", "../Makefile": "hack/deps.sh"}
	for file, want := range callers {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s does not run %s", file, want)
		}
	}
	files := []string{"../.ci/run", "../Makefile"}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".sh") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	apt := regexp.MustCompile(`(?m)^[^#\n]*\b(apt-get|apt|dpkg)\b[^\n]*\binstall\b`)
	for _, f := range files {
		if f == "deps.sh" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := apt.FindString(string(b)); m != "" {
			t.Errorf("%s installs packages itself (%q): add them to deps.sh", f, strings.TrimSpace(m))
		}
	}
}
