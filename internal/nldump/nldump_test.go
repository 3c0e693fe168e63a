package nldump

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetry(t *testing.T) {
	other := errors.New("permission denied")
	interrupted := fmt.Errorf("list links: %w", netlink.ErrDumpInterrupted)
	for _, tc := range []struct {
		name      string
		results   []error // one per call; the last repeats
		wantCalls int
		wantErr   error
	}{
		{"consistent at once", []error{nil}, 1, nil},
		{"interrupted twice", []error{interrupted, interrupted, nil}, 3, nil},
		{"always interrupted", []error{interrupted}, Tries, netlink.ErrDumpInterrupted},
		{"another error is not retried", []error{other}, 1, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := Retry(func() (int, error) {
				err := tc.results[min(calls, len(tc.results)-1)]
				calls++
				return calls, err
			})
			if calls != tc.wantCalls || v != calls {
				t.Errorf("calls %d (result %d), want %d", calls, v, tc.wantCalls)
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}
