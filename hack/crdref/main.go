// Command crdref writes docs/reference.md, the configuration reference, from
// the CRDs in charts/beacon/crds (every field, its type, default,
// validation and description) and from the annotations, labels and Events
// Beacon's code defines. `make generate` runs it; TestReferenceUpToDate
// fails when the committed file differs.
//
//	go run ./hack/crdref [-crds charts/beacon/crds] [-out docs/reference.md]
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	crds := flag.String("crds", "charts/beacon/crds", "directory of CRD YAML files")
	out := flag.String("out", "docs/reference.md", "file to write")
	flag.Parse()
	doc, err := Render(*crds)
	if err == nil {
		err = os.WriteFile(*out, doc, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "crdref:", err)
		os.Exit(1)
	}
}
