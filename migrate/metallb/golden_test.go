package metallb

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beaconlb/beacon/internal/golden"
)

// corpus lists the MetalLB configurations of testdata.
func corpus(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus in testdata: %v", err)
	}
	return files
}

// goldenPaths returns the paths of the expected stdout and stderr of a corpus file.
func goldenPaths(file string) (out, findings string) {
	base := filepath.Join("testdata", "golden", strings.TrimSuffix(filepath.Base(file), ".yaml"))
	return base + ".out.yaml", base + ".findings"
}

func convertFile(t testing.TB, file string) (*Result, []byte, []byte) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	objs, err := ReadObjects(f)
	if err != nil {
		t.Fatal(err)
	}
	res := Convert(objs, Options{})
	var out, findings bytes.Buffer
	if err := WriteObjects(&out, res.Objects()); err != nil {
		t.Fatal(err)
	}
	if err := WriteFindings(&findings, res.Findings); err != nil {
		t.Fatal(err)
	}
	return res, out.Bytes(), findings.Bytes()
}

// TestGolden converts each corpus file and compares YAML and findings with
// the golden files (go test -run TestGolden -update rewrites them).
func TestGolden(t *testing.T) {
	for _, file := range corpus(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, out, findings := convertFile(t, file)
			outPath, findingsPath := goldenPaths(file)
			golden.Check(t, outPath, out)
			golden.Check(t, findingsPath, findings)
		})
	}
}

// TestDocsExample keeps the worked example of the migration guide equal to
// the corpus file docs-example.yaml and its golden outputs.
func TestDocsExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "migrating-from-metallb.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := func(marker string) string {
		_, after, ok := strings.Cut(string(doc), "<!-- beacon-migrate example: "+marker+" -->\n")
		if !ok {
			t.Fatalf("the guide has no %q example", marker)
		}
		_, after, _ = strings.Cut(after, "\n") // the opening fence
		body, _, _ := strings.Cut(after, "```\n")
		return body
	}
	in, err := os.ReadFile(filepath.Join("testdata", "docs-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, input, _ := strings.Cut(string(in), "\n") // without the comment line
	_, out, findings := convertFile(t, filepath.Join("testdata", "docs-example.yaml"))
	_, stderr, _ := strings.Cut(block("stderr"), "\n") // without the count line
	for _, c := range []struct{ name, doc, want string }{
		{"input", block("input"), input},
		{"stdout", block("stdout"), string(out)},
		{"stderr", stderr, string(findings)},
	} {
		if c.doc != c.want {
			t.Errorf("the guide's example %s:\n%s\nwant:\n%s", c.name, c.doc, c.want)
		}
	}
}
