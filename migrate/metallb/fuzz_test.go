package metallb

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzConvert feeds arbitrary documents through reading, conversion and
// writing: bad input may give an error or findings, never a panic, and
// every finding names its object.
func FuzzConvert(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: [1]}\nspec: {nodeSelectors: [{matchExpressions: [{operator: Bogus}]}]}\n"))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\ndata: {config: 'peers: 3'}\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {annotations: {metallb.io/loadBalancerIPs: 7}}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		objs, err := ReadObjects(bytes.NewReader(in))
		if err != nil {
			return
		}
		res := Convert(objs, Options{})
		if err := WriteObjects(io.Discard, res.Objects()); err != nil {
			t.Fatalf("converted objects cannot be written: %v", err)
		}
		for _, fd := range res.Findings {
			if fd.Object.Kind == "" || fd.Reason == "" {
				t.Fatalf("finding without object or reason: %+v", fd)
			}
		}
	})
}
