package allocator

import (
	"errors"
	"fmt"
)

// Reason classifies why an allocation failed, so that the caller can word an
// Event and decide whether to retry.
type Reason string

// Reasons of an Error.
const (
	// ReasonPoolExhausted: every eligible pool is full for a wanted family.
	// The only retryable reason: freeing capacity can fix it.
	ReasonPoolExhausted Reason = "PoolExhausted"
	// ReasonNoPool: no pool serves this Service (or this family of it).
	ReasonNoPool Reason = "NoPool"
	// ReasonUnknownPool: the pool named by beaconlb.io/pool does not exist
	// or is invalid.
	ReasonUnknownPool Reason = "UnknownPool"
	// ReasonIPNotInPool: a requested address lies in no pool, in another pool
	// than the named one, or is skipped by avoidBuggyIPs.
	ReasonIPNotInPool Reason = "IPNotInPool"
	// ReasonIPNotAllowed: the pool of a requested address does not serve the
	// Service's namespace or labels.
	ReasonIPNotAllowed Reason = "IPNotAllowed"
	// ReasonIPInUse: a requested address is held by another Service and at
	// least one of the two did not ask to share.
	ReasonIPInUse Reason = "IPInUse"
	// ReasonSharingConflict: both Services ask to share, but their sharing
	// keys differ, their ports overlap, or one uses externalTrafficPolicy
	// Local and their pod selectors differ.
	ReasonSharingConflict Reason = "SharingConflict"
	// ReasonIPConflict: a held address is in use by another host on the
	// network (SetConflicts); it is kept only until a replacement is free.
	ReasonIPConflict Reason = "IPConflict"
	// ReasonBadRequest: the request contradicts itself (for example two
	// requested addresses of one family).
	ReasonBadRequest Reason = "BadRequest"
)

// Error is the error type of the allocator. Msg is meant for users: it names
// the address, pool, Service or port at fault.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of an allocator error in err's chain, or "".
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// IsRetryable reports whether err may go away without any change to the
// Service or the pools, that is when other Services free addresses.
func IsRetryable(err error) bool {
	return ReasonOf(err) == ReasonPoolExhausted
}
