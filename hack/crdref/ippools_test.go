package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// kubectlIPPools matches a kubectl command on the resource "ippool(s)"
// (group 2) and what follows it up to the next blank (group 3).
var kubectlIPPools = regexp.MustCompile(`\bkubectl\b[^\n]*?\b(get|describe|edit|delete|patch|label|annotate|explain|apply)\s+(ippools?)(\S*)`)

// ambiguousIPPools returns the kubectl commands in text that name
// "ippools" without the group: Calico and Cilium install resources of that
// name too, so on such clusters the short form may not reach Beacon's.
func ambiguousIPPools(text string) []string {
	var out []string
	for _, m := range kubectlIPPools.FindAllStringSubmatch(text, -1) {
		if !strings.HasPrefix(m[3], ".beaconlb.io") {
			out = append(out, m[0])
		}
	}
	return out
}

func TestAmbiguousIPPools(t *testing.T) {
	for text, want := range map[string]int{
		"kubectl get ippools":                              1,
		"kubectl edit ippool lan":                          1,
		"kubectl -n x get ippools,l2advertisements":        1,
		"kubectl get ippools.beaconlb.io":                  0,
		"kubectl edit ippools.beaconlb.io lan":             0,
		"kubectl get ippool.beaconlb.io/lan":               0,
		"resources: [ippools, l2advertisements]":           0,
		"kubectl get bip; then kubectl describe ippools x": 1,
	} {
		if got := ambiguousIPPools(text); len(got) != want {
			t.Errorf("%q: found %q, want %d", text, got, want)
		}
	}
}

// TestIPPoolsQualified: every kubectl command in the docs, the chart and
// the code that names Beacon's pools says ippools.beaconlb.io.
func TestIPPoolsQualified(t *testing.T) {
	self, err := filepath.Abs("ippools_test.go")
	if err != nil {
		t.Fatal(err)
	}
	scanned := 0
	err = filepath.WalkDir(root(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root() && (n == "testdata" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md", ".go", ".sh", ".yaml", ".tpl", ".txt":
		default:
			return nil
		}
		if abs, _ := filepath.Abs(path); abs == self {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		for _, m := range ambiguousIPPools(string(b)) {
			rel, _ := filepath.Rel(root(), path)
			t.Errorf("%s: %q: write ippools.beaconlb.io (ippools may be Calico's or Cilium's)", rel, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 50 {
		t.Fatalf("scanned only %d files: the walk is broken", scanned)
	}
}
