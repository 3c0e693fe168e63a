package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The markers of AddressBlock sit in their own comment group: gofmt rewrites
// '' in doc comments to a typographic quote, which would break the CEL rules.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=100
// +kubebuilder:validation:XValidation:rule="self.contains('-') ? (self.split('-').size() == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim())) : isCIDR(self)",messageExpression="'\"' + self + '\" is neither a CIDR (198.51.100.0/24, 2001:db8::/120) nor a range first-last (198.51.100.10-198.51.100.20)'"
// +kubebuilder:validation:XValidation:rule="self.contains('-') || !isCIDR(self) || cidr(self) == cidr(self).masked()",messageExpression="'CIDR \"' + self + '\" has host bits set; write its network address'"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() == ip(self.split('-')[1].trim()).family()",messageExpression="'range \"' + self + '\" mixes IPv4 and IPv6'"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || self.split('-').size() != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() != ip(self.split('-')[1].trim()).family() || (ip(self.split('-')[0].trim()).family() == 4 ? int(self.split('-')[0].trim().split('.')[0]) * 16777216 + int(self.split('-')[0].trim().split('.')[1]) * 65536 + int(self.split('-')[0].trim().split('.')[2]) * 256 + int(self.split('-')[0].trim().split('.')[3]) <= int(self.split('-')[1].trim().split('.')[0]) * 16777216 + int(self.split('-')[1].trim().split('.')[1]) * 65536 + int(self.split('-')[1].trim().split('.')[2]) * 256 + int(self.split('-')[1].trim().split('.')[3]) : (self.split('-')[0].trim().contains('.') || self.split('-')[1].trim().contains('.') || (('0000' + (self.split('-')[0].trim().contains('::') ? (0 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[0] : (0 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[0 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[0]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (0 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[0] : (0 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[0 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[0]))) + ('0000' + (self.split('-')[0].trim().contains('::') ? (1 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[1] : (1 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[1 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[1]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (1 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[1] : (1 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[1 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[1]))) + ('0000' + (self.split('-')[0].trim().contains('::') ? (2 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[2] : (2 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[2 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[2]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (2 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[2] : (2 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[2 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[2]))) + ('0000' + (self.split('-')[0].trim().contains('::') ? (3 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[3] : (3 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[3 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[3]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (3 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[3] : (3 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[3 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[3]))) + ('0000' + (self.split('-')[0].trim().contains('::') ? (4 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[4] : (4 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[4 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[4]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (4 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[4] : (4 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[4 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[4]))) + ('0000' + (self.split('-')[0].trim().contains('::') ? (5 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[5] : (5 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[5 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[5]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (5 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[5] : (5 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[5 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[5]))) + ('0000' + (self.split('-')[0].trim().contains('::') ? (6 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[6] : (6 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[6 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[6]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (6 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[6] : (6 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[6 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[6]))) + ('0000' + (self.split('-')[0].trim().contains('::') ? (7 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[7] : (7 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[7 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[7]).lowerAscii()).substring(size((self.split('-')[0].trim().contains('::') ? (7 < (self.split('-')[0].trim().split('::')[0] == '' ? 0 : self.split('-')[0].trim().split('::')[0].split(':').size()) ? self.split('-')[0].trim().split('::')[0].split(':')[7] : (7 >= 8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()) ? self.split('-')[0].trim().split('::')[1].split(':')[7 - (8 - (self.split('-')[0].trim().split('::')[1] == '' ? 0 : self.split('-')[0].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[0].trim().split(':')[7])))) <= (('0000' + (self.split('-')[1].trim().contains('::') ? (0 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[0] : (0 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[0 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[0]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (0 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[0] : (0 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[0 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[0]))) + ('0000' + (self.split('-')[1].trim().contains('::') ? (1 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[1] : (1 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[1 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[1]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (1 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[1] : (1 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[1 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[1]))) + ('0000' + (self.split('-')[1].trim().contains('::') ? (2 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[2] : (2 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[2 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[2]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (2 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[2] : (2 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[2 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[2]))) + ('0000' + (self.split('-')[1].trim().contains('::') ? (3 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[3] : (3 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[3 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[3]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (3 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[3] : (3 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[3 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[3]))) + ('0000' + (self.split('-')[1].trim().contains('::') ? (4 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[4] : (4 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[4 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[4]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (4 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[4] : (4 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[4 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[4]))) + ('0000' + (self.split('-')[1].trim().contains('::') ? (5 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[5] : (5 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[5 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[5]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (5 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[5] : (5 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[5 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[5]))) + ('0000' + (self.split('-')[1].trim().contains('::') ? (6 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[6] : (6 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[6 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[6]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (6 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[6] : (6 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[6 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[6]))) + ('0000' + (self.split('-')[1].trim().contains('::') ? (7 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[7] : (7 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[7 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[7]).lowerAscii()).substring(size((self.split('-')[1].trim().contains('::') ? (7 < (self.split('-')[1].trim().split('::')[0] == '' ? 0 : self.split('-')[1].trim().split('::')[0].split(':').size()) ? self.split('-')[1].trim().split('::')[0].split(':')[7] : (7 >= 8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()) ? self.split('-')[1].trim().split('::')[1].split(':')[7 - (8 - (self.split('-')[1].trim().split('::')[1] == '' ? 0 : self.split('-')[1].trim().split('::')[1].split(':').size()))] : '0')) : self.split('-')[1].trim().split(':')[7]))))))",messageExpression="'range \"' + self + '\" has its first address after its last'"

// AddressBlock is one block of an IPPool: a CIDR ("198.51.100.0/24",
// "2001:db8::/120") or an inclusive range "first-last" of one family
// ("198.51.100.10-198.51.100.20").
//
// CEL has no ordering on IP addresses, so the range-order rule expands both
// ends to fixed-width strings (IPv4: three digits per octet; IPv6: four hex
// digits per group, "::" filled in) and compares those. IPv6 ranges written
// with an embedded IPv4 part are left to the controller's own check.
type AddressBlock string

// IPPoolSpec says which addresses a pool hands out, and to whom.
type IPPoolSpec struct {
	// Addresses lists the CIDRs and ranges of the pool. IPv4 and IPv6 may be
	// mixed; a pool with both families can serve dual-stack Services.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	Addresses []AddressBlock `json:"addresses"`

	// AutoAssign lets the allocator pick addresses from this pool for
	// Services that did not name a pool or an address. When false, the pool
	// serves only Services that ask for it by name (beaconlb.io/pool) or ask
	// for one of its addresses.
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255, which some
	// old client stacks treat as broadcast addresses.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// AllowExternalIPs lets Services use addresses of this pool in
	// spec.externalIPs. Beacon forwards and guards only such addresses.
	// +optional
	AllowExternalIPs bool `json:"allowExternalIPs,omitempty"`

	// ServiceAllocation limits which Services the pool serves and orders
	// pools when several could.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation restricts a pool to some Services and sets its priority.
// All given restrictions must hold.
type ServiceAllocation struct {
	// Priority orders eligible pools: a lower number is tried first; pools
	// without a priority (0) come after all pools with one. Ties are broken
	// by pool name.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Priority int32 `json:"priority,omitempty"`

	// Namespaces, if set, limits the pool to Services in these namespaces.
	// +kubebuilder:validation:MaxItems=256
	// +listType=set
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelector, if set, limits the pool to Services in namespaces
	// whose labels match.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// ServiceSelector, if set, limits the pool to Services whose labels match.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
}

// FamilyStatus counts the addresses of one IP family in a pool. Counts of
// very large IPv6 pools saturate at the largest int64.
type FamilyStatus struct {
	// Total is the number of addresses the pool can hand out.
	Total int64 `json:"total"`
	// Used is the number of addresses held by Services.
	Used int64 `json:"used"`
	// Available is Total minus Used, minus the addresses that hosts outside
	// the cluster use (see the AddressConflict condition).
	Available int64 `json:"available"`
}

// IPPoolStatus is written by the controller.
type IPPoolStatus struct {
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// IPv4 counts the pool's IPv4 addresses; absent when it has none.
	// +optional
	IPv4 *FamilyStatus `json:"ipv4,omitempty"`
	// IPv6 counts the pool's IPv6 addresses; absent when it has none.
	// +optional
	IPv6 *FamilyStatus `json:"ipv6,omitempty"`
	// AddressConflicts lists the pool's addresses that hosts outside the
	// cluster use, as speakers reported them. They are not handed out
	// automatically, and a speaker probes for one again before it announces
	// it, also when it takes it over from another node.
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +optional
	AddressConflicts []AddressConflict `json:"addressConflicts,omitempty"`
	// Conditions: Ready (the pool is in use), Conflicting (it overlaps an
	// older pool; the overlap is not handed out from this pool), Exhausted
	// (a family has no address left), AddressConflict (hosts outside the
	// cluster use some of its addresses, which are not handed out while
	// they do).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// Condition types of an IPPool.
const (
	PoolReady       = "Ready"
	PoolConflicting = "Conflicting"
	PoolExhausted   = "Exhausted"
	// PoolAddressConflict is True while speakers report addresses of the
	// pool in use by other hosts (ServiceAnnouncement conflicts).
	PoolAddressConflict = "AddressConflict"
)

// IPPool is a set of addresses that Beacon hands out to LoadBalancer
// Services and, with allowExternalIPs, lets Services use as externalIPs.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=ipp;bip,categories=beacon
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=".spec.addresses"
// +kubebuilder:printcolumn:name="V4 Used",type=integer,JSONPath=".status.ipv4.used"
// +kubebuilder:printcolumn:name="V4 Available",type=integer,JSONPath=".status.ipv4.available"
// +kubebuilder:printcolumn:name="V6 Used",type=integer,JSONPath=".status.ipv6.used"
// +kubebuilder:printcolumn:name="V6 Available",type=integer,JSONPath=".status.ipv6.available"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type=='Ready')].status"
// +kubebuilder:printcolumn:name="Exhausted",type=string,JSONPath=".status.conditions[?(@.type=='Exhausted')].status"
// +kubebuilder:printcolumn:name="Conflicting",type=string,JSONPath=".status.conditions[?(@.type=='Conflicting')].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type IPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPPoolSpec   `json:"spec"`
	Status IPPoolStatus `json:"status,omitempty"`
}

// IPPoolList is a list of IPPools.
//
// +kubebuilder:object:root=true
type IPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPPool `json:"items"`
}
