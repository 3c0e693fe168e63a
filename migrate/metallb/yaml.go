package metallb

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ReadObjects reads YAML or JSON documents (several, separated by "---"),
// expanding List objects (kubectl get -o yaml) into their items.
func ReadObjects(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(m) == 0 {
			continue
		}
		objs, err := expand(&unstructured.Unstructured{Object: m})
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		out = append(out, objs...)
	}
}

func expand(u *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	if u.GetKind() == "" || u.GetAPIVersion() == "" {
		return nil, errors.New("an object needs apiVersion and kind")
	}
	if !u.IsList() {
		return []*unstructured.Unstructured{u}, nil
	}
	var out []*unstructured.Unstructured
	err := u.EachListItem(func(o runtime.Object) error {
		objs, err := expand(o.(*unstructured.Unstructured))
		out = append(out, objs...)
		return err
	})
	return out, err
}

// WriteObjects writes objects as YAML documents, without the empty
// creationTimestamp and status that typed objects carry and without the
// empty spec of a partial Service.
func WriteObjects(w io.Writer, objs []runtime.Object) error {
	var b strings.Builder
	for i, o := range objs {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
		if err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		if md, ok := m["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
		delete(m, "status")
		if sp, ok := m["spec"].(map[string]any); ok && len(sp) == 0 && m["kind"] == "Service" {
			delete(m, "spec")
		}
		y, err := yaml.Marshal(m)
		if err != nil {
			return fmt.Errorf("object %d: %w", i, err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteFindings writes one finding a line.
func WriteFindings(w io.Writer, fs []Finding) error {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String())
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
