package allocator

import (
	"strings"
	"testing"

	"github.com/beaconlb/beacon/config"
)

func TestCheckUsable(t *testing.T) {
	for _, tc := range []struct{ block, err string }{
		{"198.51.100.0/24", ""},
		{"2001:db8::/64", ""},
		{"126.255.255.255-127.0.0.0", "loopback"},
		{"0.0.0.0/0", `"this network"`},
		{"0.0.0.0-0.0.0.0", `"this network"`},
		{"169.254.1.0/24", "link-local"},
		{"239.255.255.255/32", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"::-::5", "unspecified"},
		{"::1-::2", "loopback"},
		{"fe80::/64", "link-local"},
		{"ff02::1/128", "multicast"},
		{"223.255.255.0/24", ""},
	} {
		r, err := config.ParseBlock(tc.block)
		if err != nil {
			t.Fatalf("%s: %v", tc.block, err)
		}
		got := CheckUsable(r)
		switch {
		case tc.err == "" && got != nil:
			t.Errorf("%s: %v, want usable", tc.block, got)
		case tc.err != "" && (got == nil || !strings.Contains(got.Error(), tc.err)):
			t.Errorf("%s: %v, want error mentioning %s", tc.block, got, tc.err)
		}
	}
}
