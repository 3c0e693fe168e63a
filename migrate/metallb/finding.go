package metallb

import (
	"fmt"
	"strings"
)

// Ref names a source object.
type Ref struct {
	Kind      string
	Namespace string
	Name      string
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// Finding is something of the input that Convert could not carry over
// exactly: a field without equivalent, a value Beacon refuses, or a step
// left to the user.
type Finding struct {
	Object Ref
	// Field is the path of the field in the source object, such as
	// "spec.vrf" or, in a legacy ConfigMap, "peers[0].hold-time"; empty
	// when the finding concerns the whole object.
	Field  string
	Reason string
}

func (f Finding) String() string {
	if f.Field == "" {
		return f.Object.String() + ": " + f.Reason
	}
	return f.Object.String() + ": " + f.Field + ": " + f.Reason
}

// reporter records findings about one source object. Fields are given in
// the CRD's camelCase, relative to spec; a legacy reporter rewrites them to
// the ConfigMap's dashed keys under its prefix.
type reporter struct {
	obj    Ref
	prefix string // "spec." for CRDs, "peers[0]." and so on for legacy entries
	legacy bool
	out    *[]Finding
}

func (r reporter) add(field, format string, args ...any) {
	if field != "" {
		if r.legacy {
			field = legacyName(field)
		}
		field = r.prefix + field
	}
	*r.out = append(*r.out, Finding{Object: r.obj, Field: field, Reason: fmt.Sprintf(format, args...)})
}

// legacyNames are the legacy keys that do not follow from the CRD field by
// putting a dash before each capital.
var legacyNames = map[string]string{
	"myASN": "my-asn", "peerASN": "peer-asn", "routerID": "router-id",
	"ebgpMultiHop": "ebgp-multihop", "localPref": "localpref",
	"minimumTtl": "minimum-ttl",
}

func legacyName(field string) string {
	head, rest, _ := strings.Cut(field, ".")
	if n, ok := legacyNames[head]; ok {
		head = n
	} else {
		var b strings.Builder
		for _, c := range head {
			if c >= 'A' && c <= 'Z' {
				b.WriteByte('-')
				c += 'a' - 'A'
			}
			b.WriteRune(c)
		}
		head = b.String()
	}
	if rest != "" {
		return head + "." + legacyName(rest)
	}
	return head
}
