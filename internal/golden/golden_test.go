package golden

import (
	"path/filepath"
	"testing"
)

func TestDiff(t *testing.T) {
	for _, tc := range []struct{ name, want, got, diff string }{
		{"equal", "a\nb", "a\nb", "(no line differs)"},
		{"changed line with context", "1\n2\n3\n4\n5", "1\n2\n3\n4\nX", "  2\n  3\n  4\n- 5\n+ X\n"},
		{"first line", "a\nb", "z\nb", "- a\n+ z\n"},
		{"got longer", "a", "a\nb", "  a\n- \n+ b\n"},
	} {
		if got := Diff(tc.want, tc.got); got != tc.diff {
			t.Errorf("%s: Diff = %q, want %q", tc.name, got, tc.diff)
		}
	}
}

// Check passes on an equal file and fails on a different or missing one.
func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.golden")
	*update = true
	Check(t, path, []byte("one\n"))
	*update = false
	Check(t, path, []byte("one\n"))
	for _, got := range []string{"two\n"} {
		ft := &recorder{TB: t}
		Check(ft, path, []byte(got))
		if !ft.failed {
			t.Errorf("Check passed on %q against %q", got, "one\n")
		}
	}
}

// recorder notes failures instead of failing the test it wraps.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }
func (r *recorder) Helper()               {}
