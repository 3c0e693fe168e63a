// Package golden compares a test's output with a file kept in the
// repository: the reviewed, expected form of generated output (rulesets,
// rendered charts, configurations, docs). `go test -update` rewrites the
// files from the current output instead of comparing.
package golden

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// Check compares got with the file at path and fails t, showing where
// they first differ, unless they are equal. With -update it writes got to
// path (creating its directory) and passes.
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run '%s' -update creates it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (go test -run '%s' -update accepts the output):\n%s", path, t.Name(), Diff(string(want), string(got)))
	}
}

// Diff shows the first line where want and got differ, after up to three
// lines of context.
func Diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a == b {
			continue
		}
		var sb strings.Builder
		for j := max(0, i-3); j < i; j++ {
			sb.WriteString("  " + w[j] + "\n")
		}
		sb.WriteString("- " + a + "\n+ " + b + "\n")
		return sb.String()
	}
	return "(no line differs)"
}
