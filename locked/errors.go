package locked

import (
	"fmt"

	"github.com/lockproof/lockproof/provider"
)

// The sentinel errors of lockproof. They are the provider package's values,
// so an error from any provider matches them too. Match with errors.Is.
var (
	// ErrNotAcquired: a lock could not be taken in time. TryAcquire returns
	// it when the key is held; Acquire when its timeout or context ended
	// first, and then the error also matches context.DeadlineExceeded or
	// context.Canceled.
	ErrNotAcquired = provider.ErrNotAcquired

	// ErrNotHeld: a lease or proof does not hold its key (any more): it is
	// the zero value or nil, was closed, lapsed, was lost or force-released,
	// or belongs to another entity.
	ErrNotHeld = provider.ErrNotHeld

	// ErrInvalid: bad input, such as an empty key, a non-positive TTL, a nil
	// Service or entity. Nothing was changed.
	ErrInvalid = provider.ErrInvalid

	// ErrClosed: the Service (or its provider) was closed.
	ErrClosed = provider.ErrClosed

	// ErrUnavailable: the store could not be reached before anything was
	// sent; nothing changed.
	ErrUnavailable = provider.ErrUnavailable

	// ErrOutcomeUnknown: the request may have reached the store, and its
	// reply was lost; it may or may not have been applied. It also matches
	// ErrUnavailable.
	ErrOutcomeUnknown = provider.ErrOutcomeUnknown
)

// Error adds the operation and key to an error from the lock store. It
// unwraps to the cause, so errors.Is sees the sentinels above.
type Error struct {
	Op  string // "acquire", "release", "extend", ...
	Key string // the key as the caller named it (without namespace)
	Err error
}

func (e *Error) Error() string { return fmt.Sprintf("locked: %s %q: %v", e.Op, e.Key, e.Err) }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func opError(op, key string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Key: key, Err: err}
}

func invalid(arg, reason string) error {
	return &provider.ArgError{Arg: arg, Reason: reason}
}
