package config

import (
	"errors"
	"strings"
)

// invalid returns the problems found validating one object as one error,
// or nil when there are none. Errors elsewhere are aggregated with
// errors.Join; these are not, because the message becomes a one-line
// status condition, Event or BGPSessionState message, so the problems are
// joined with "; ".
func invalid(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}
