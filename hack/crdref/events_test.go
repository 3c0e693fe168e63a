package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// module is the import path of the repository root.
const module = "github.com/beaconlb/beacon"

// TestEveryEventReasonDocumented fails naming each Event reason the code
// records that docs/reference.md does not list (as `Reason`).
func TestEveryEventReasonDocumented(t *testing.T) {
	reasons, err := eventReasons(root())
	if err != nil {
		t.Fatal(err)
	}
	if len(reasons) == 0 {
		t.Fatal("found no Event reason in the code: the search is broken")
	}
	doc, err := os.ReadFile(filepath.Join(root(), "docs", "reference.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reasons {
		if !strings.Contains(string(doc), "`"+r.reason+"`") {
			t.Errorf("Event reason %q (%s) is missing from docs/reference.md: add it to the Events tables in hack/crdref/render.go and run make generate", r.reason, r.where)
		}
	}
}

func TestEventReasonsFound(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a/a.go": `package a
const (
	EventDirect = "Direct"
	EventIndirect = "Indirect"
	other = "NotAReason"
)
func f(r recorder, ref any) {
	r.Event(ref, "Normal", EventDirect, "m")
	r.Eventf(ref, "Warning", "Literal", "m %d", 1)
	r.AnnotatedEventf(ref, nil, "Normal", b.EventFromB, "m")
	r.Eventf(ref, "Normal", pick(), "m")
	r.Event(ref, other, "Second", "m")
}`,
		"a/a_test.go": `package a
func g(r recorder) { r.Event(nil, "Normal", "OnlyInTest", "m") }`,
		"b/b.go": `package b
const EventFromB = "FromB"`,
	}
	for name, src := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		src = strings.Replace(src, "package a\n", "package a\nimport \""+module+"/b\"\n", 1)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := eventReasons(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.reason)
	}
	// "Indirect" counts because every string constant named Event* is a
	// reason: pick() hides which one is used.
	want := []string{"Direct", "FromB", "Indirect", "Literal", "Second"}
	if !slices.Equal(names, want) {
		t.Errorf("reasons %v, want %v", names, want)
	}
}

type eventReason struct{ reason, where string }

// eventReasons parses the non-test Go files under dir and returns, sorted,
// the reasons of Events they record: string literals and constants passed
// as the reason argument of Event, Eventf and AnnotatedEventf calls, and
// every string constant named Event* (reasons that reach a call through a
// variable, a field or a function are declared so).
func eventReasons(dir string) ([]eventReason, error) {
	fset := token.NewFileSet()
	type file struct {
		pkg string // directory relative to dir
		f   *ast.File
	}
	var files []file
	consts := map[string]map[string]string{} // package dir -> name -> value
	found := map[string]string{}             // reason -> where
	add := func(reason string, pos token.Pos) {
		if _, ok := found[reason]; !ok {
			p := fset.Position(pos)
			rel, _ := filepath.Rel(dir, p.Filename)
			found[reason] = rel + ":" + strconv.Itoa(p.Line)
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != dir && (n == "testdata" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkg, _ := filepath.Rel(dir, filepath.Dir(path))
		files = append(files, file{pkg, f})
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					if s, ok := stringLit(vs.Values[i]); ok {
						if consts[pkg] == nil {
							consts[pkg] = map[string]string{}
						}
						consts[pkg][name.Name] = s
						if strings.HasPrefix(name.Name, "Event") {
							add(s, name.Pos())
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, fl := range files {
		imports := map[string]string{} // local name -> package dir
		for _, im := range fl.f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			rel, ok := strings.CutPrefix(p, module+"/")
			if !ok {
				continue
			}
			name := filepath.Base(rel)
			if im.Name != nil {
				name = im.Name.Name
			}
			imports[name] = filepath.FromSlash(rel)
		}
		ast.Inspect(fl.f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			at := map[string]int{"Event": 2, "Eventf": 2, "AnnotatedEventf": 3}
			i, ok := at[sel.Sel.Name]
			if !ok || len(call.Args) <= i {
				return true
			}
			switch arg := call.Args[i].(type) {
			case *ast.BasicLit:
				if s, ok := stringLit(arg); ok {
					add(s, arg.Pos())
				}
			case *ast.Ident:
				if s, ok := consts[fl.pkg][arg.Name]; ok {
					add(s, arg.Pos())
				}
			case *ast.SelectorExpr:
				if x, ok := arg.X.(*ast.Ident); ok {
					if s, ok := consts[imports[x.Name]][arg.Sel.Name]; ok {
						add(s, arg.Pos())
					}
				}
			}
			return true
		})
	}
	out := make([]eventReason, 0, len(found))
	for r, w := range found {
		out = append(out, eventReason{r, w})
	}
	slices.SortFunc(out, func(a, b eventReason) int { return strings.Compare(a.reason, b.reason) })
	return out, nil
}

func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}
