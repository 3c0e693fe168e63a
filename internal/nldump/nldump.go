// Package nldump reads netlink dumps again when the kernel interrupted them.
//
// A dump (links, addresses, neighbours, routes, rules) that the kernel's
// tables change under is flagged as interrupted, and the netlink library
// returns what it read with netlink.ErrDumpInterrupted. On a busy node
// (pods' veths and routes coming and going) that happens often; a read a
// moment later is consistent.
package nldump

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// Tries bounds the reads of one dump.
const Tries = 5

// Retry calls dump until it returns anything but an interrupted dump, at
// most Tries times, and returns its last result.
func Retry[T any](dump func() (T, error)) (T, error) {
	for try := 1; ; try++ {
		v, err := dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try == Tries {
			return v, err
		}
	}
}
