// Package rangerule builds the CEL rule that rejects an IPPool range whose
// first address is after its last (see hack/rangerule).
package rangerule

import (
	"fmt"
	"strings"
)

const (
	first = "self.split('-')[0].trim()"
	last  = "self.split('-')[1].trim()"
)

// Rule returns the CEL expression.
func Rule() string {
	return fmt.Sprintf("!self.contains('-') || self.split('-').size() != 2 || !isIP(%[1]s) || !isIP(%[2]s) || "+
		"ip(%[1]s).family() != ip(%[2]s).family() || "+
		"(ip(%[1]s).family() == 4 ? %[3]s <= %[4]s : (%[1]s.contains('.') || %[2]s.contains('.') || %[5]s <= %[6]s))",
		first, last, v4(first), v4(last), v6(first), v6(last))
}

// v4 is the address as an integer.
func v4(x string) string {
	return fmt.Sprintf("int(%[1]s.split('.')[0]) * 16777216 + int(%[1]s.split('.')[1]) * 65536 + int(%[1]s.split('.')[2]) * 256 + int(%[1]s.split('.')[3])", x)
}

// v6 is the address as 32 lower-case hex digits.
func v6(x string) string {
	l, r := x+".split('::')[0]", x+".split('::')[1]"
	nl := fmt.Sprintf("(%[1]s == '' ? 0 : %[1]s.split(':').size())", l)
	nr := fmt.Sprintf("(%[1]s == '' ? 0 : %[1]s.split(':').size())", r)
	parts := make([]string, 8)
	for i := range 8 {
		g := fmt.Sprintf("(%[1]s.contains('::') ? (%[2]d < %[3]s ? %[4]s.split(':')[%[2]d] : (%[2]d >= 8 - %[5]s ? %[6]s.split(':')[%[2]d - (8 - %[5]s)] : '0')) : %[1]s.split(':')[%[2]d])",
			x, i, nl, l, nr, r)
		parts[i] = fmt.Sprintf("('0000' + %[1]s.lowerAscii()).substring(size(%[1]s))", g)
	}
	return "(" + strings.Join(parts, " + ") + ")"
}
