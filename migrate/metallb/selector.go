package metallb

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// oneSelector turns MetalLB's list of selectors (an object matches when any
// of them matches) into Beacon's single selector. It is exact for no
// selector (nil), one, repeats of one, a list containing the empty selector
// (which matches everything), and selectors that each test one label for a
// set of values, all the same label: those become one "In" expression.
// Otherwise exact is false and sel is the first selector.
func oneSelector(sels []metav1.LabelSelector) (sel *metav1.LabelSelector, exact bool) {
	var uniq []metav1.LabelSelector
	for _, s := range sels {
		if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
			return &metav1.LabelSelector{}, true
		}
		if !slices.ContainsFunc(uniq, func(u metav1.LabelSelector) bool { return equality.Semantic.DeepEqual(u, s) }) {
			uniq = append(uniq, s)
		}
	}
	switch len(uniq) {
	case 0:
		return nil, true
	case 1:
		return uniq[0].DeepCopy(), true
	}
	key := ""
	var values []string
	for _, s := range uniq {
		k, vs, ok := labelIn(s)
		if !ok || (key != "" && k != key) {
			return uniq[0].DeepCopy(), false
		}
		key = k
		for _, v := range vs {
			if !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
	}
	slices.Sort(values)
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: key, Operator: metav1.LabelSelectorOpIn, Values: values},
	}}, true
}

// labelIn reports whether s tests exactly one label for a set of values.
func labelIn(s metav1.LabelSelector) (key string, values []string, ok bool) {
	switch {
	case len(s.MatchLabels) == 1 && len(s.MatchExpressions) == 0:
		for k, v := range s.MatchLabels {
			return k, []string{v}, true
		}
	case len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 1:
		e := s.MatchExpressions[0]
		if e.Operator == metav1.LabelSelectorOpIn && len(e.Values) > 0 {
			return e.Key, e.Values, true
		}
	}
	return "", nil, false
}

// splitSelectors is oneSelector for kinds that may be split into several
// objects (advertisements, whose effects add up): one selector per object,
// after merging what merges exactly. An empty result means "no selector".
func splitSelectors(sels []metav1.LabelSelector) []*metav1.LabelSelector {
	if s, exact := oneSelector(sels); exact {
		return []*metav1.LabelSelector{s}
	}
	var out []*metav1.LabelSelector
	for _, s := range sels {
		if !slices.ContainsFunc(out, func(o *metav1.LabelSelector) bool { return equality.Semantic.DeepEqual(*o, s) }) {
			out = append(out, s.DeepCopy())
		}
	}
	return out
}
