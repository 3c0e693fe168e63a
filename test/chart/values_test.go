package chart

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// leaves returns the keys of the chart's values, dotted, down to scalars,
// lists and empty maps, with their values.
func leaves(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		out[prefix] = v
		return
	}
	for k, sub := range m {
		if prefix != "" {
			k = prefix + "." + k
		}
		leaves(k, sub, out)
	}
}

// valuesRow is one row of docs/install.md's values table: the keys of its
// first cell, expanded, and the backticked defaults of its second.
type valuesRow struct {
	keys     []string
	defaults []string
	line     string
}

var backticked = regexp.MustCompile("`([^`]*)`")

// rowKeys expands the first cell of a values row: "`a.b.c`, `.d`" is a.b.c
// and a.b.d; "`*.x`" is controller.x and speaker.x; "`a.b.*`" is every key
// under a.b (kept as a.b.*).
func rowKeys(cell string) []string {
	var out []string
	parent := ""
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		k := m[1]
		if rel, ok := strings.CutPrefix(k, "."); ok {
			k = parent + "." + rel
		} else if i := strings.LastIndex(k, "."); i >= 0 {
			parent = k[:i]
		}
		if rest, ok := strings.CutPrefix(k, "*."); ok {
			out = append(out, "controller."+rest, "speaker."+rest)
			continue
		}
		out = append(out, k)
	}
	return out
}

// valuesTable parses the table under "## Values" in docs/install.md.
func valuesTable(doc string) ([]valuesRow, error) {
	_, sec, ok := strings.Cut(doc, "\n## Values\n")
	if !ok {
		return nil, fmt.Errorf("no section ## Values")
	}
	if i := strings.Index(sec, "\n#"); i >= 0 {
		sec = sec[:i]
	}
	var rows []valuesRow
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if !strings.HasPrefix(line, "| `") || len(cells) < 3 {
			continue
		}
		r := valuesRow{keys: rowKeys(cells[0]), line: line}
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			r.defaults = append(r.defaults, m[1])
		}
		rows = append(rows, r)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no row in the values table")
	}
	return rows, nil
}

func TestRowKeys(t *testing.T) {
	for cell, want := range map[string]string{
		"`a`":                    "a",
		"`a.b.c`, `.d`, `.e.f`":  "a.b.c a.b.d a.b.e.f",
		"`x.y`, `p.q.r`, `.s`":   "x.y p.q.r p.q.s",
		"`*.n`, `*.m`":           "controller.n speaker.n controller.m speaker.m",
		"`*.sa.create`, `.name`": "controller.sa.create speaker.sa.create controller.sa.name speaker.sa.name",
		"`c.le.*`":               "c.le.*",
	} {
		if got := strings.Join(rowKeys(cell), " "); got != want {
			t.Errorf("%s: %s, want %s", cell, got, want)
		}
	}
}

// TestValuesDocumented: docs/install.md's values table names every key of
// values.yaml, names no key that is not there, and where a row gives one
// backticked default per key, they are the chart's defaults.
func TestValuesDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	all := map[string]any{}
	leaves("", values, all)
	doc, err := os.ReadFile(filepath.Join(chartDir(), "..", "..", "docs", "install.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := valuesTable(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	covers := func(doc, leaf string) bool {
		doc = strings.TrimSuffix(doc, ".*")
		return leaf == doc || strings.HasPrefix(leaf, doc+".")
	}
	for _, r := range rows {
		for _, k := range r.keys {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(all)), func(l string) bool { return covers(k, l) }) {
				t.Errorf("docs/install.md documents %s, which values.yaml does not have: %s", k, r.line)
			}
		}
		if len(r.defaults) != len(r.keys) {
			continue
		}
		for i, k := range r.keys {
			v, ok := all[k]
			if !ok {
				continue // a map documented as a whole
			}
			if got := yamlScalar(v); got != r.defaults[i] {
				t.Errorf("docs/install.md gives %s the default `%s`; values.yaml has `%s`", k, r.defaults[i], got)
			}
		}
	}
	for _, l := range slices.Sorted(maps.Keys(all)) {
		if !slices.ContainsFunc(rows, func(r valuesRow) bool {
			return slices.ContainsFunc(r.keys, func(k string) bool { return covers(k, l) })
		}) {
			t.Errorf("values.yaml key %s is missing from the values table of docs/install.md", l)
		}
	}
}

// yamlScalar writes a value as values.yaml spells it.
func yamlScalar(v any) string {
	if s, ok := v.(string); ok && s != "" {
		return s
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(string(b))
}
