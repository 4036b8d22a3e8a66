package locked

import (
	"errors"
	"fmt"

	"github.com/lockproof/lockproof/provider"
)

// The sentinel errors of lockproof. They are the provider package's values,
// so an error from any provider matches them too. Match with errors.Is.
var (
	// ErrNotAcquired: a lock could not be taken in time. TryAcquire returns
	// it when the key is held; Acquire when its timeout, its retries or its
	// context ended first, and then the error also matches
	// context.DeadlineExceeded or context.Canceled.
	ErrNotAcquired = provider.ErrNotAcquired

	// ErrNotHeld: a lease or proof does not hold its key (any more): it is
	// the zero value or nil, was closed, lapsed, was lost or force-released,
	// or belongs to another entity. ErrExpired and ErrNotOwner are the two
	// cases callers most often tell apart; both match ErrNotHeld.
	ErrNotHeld = provider.ErrNotHeld

	// ErrInvalid: bad input, such as an empty key, a non-positive TTL, a nil
	// Service or entity. Nothing was changed. The detail is an *ArgError.
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

var (
	// ErrExpired: the lease's TTL ran out before it was released or
	// extended. It matches ErrNotHeld.
	ErrExpired = fmt.Errorf("%w: lease expired", ErrNotHeld)

	// ErrNotOwner: the key is held, by another owner than the one named
	// (Service.Release by owner), or the lease was freed by an owner or
	// admin release (Service.Release, ReleaseOwner, ForceReleaseAll) rather
	// than by its holder. It matches ErrNotHeld.
	ErrNotOwner = fmt.Errorf("%w: not the owner", ErrNotHeld)

	// ErrNested: the call chain already holds the key it asks for: its
	// context carries a live lease on the same key of the same store
	// (Lease.Context, or the ctx that Run passes to fn). Acquiring it again
	// would wait for itself until the timeout, so the call fails at once.
	// Nothing was changed. It matches ErrNotAcquired. Use WithReentrant to
	// extend the hold instead.
	ErrNested = fmt.Errorf("%w: nested: this call chain already holds the key", ErrNotAcquired)
)

// ArgError describes a rejected argument; it matches ErrInvalid. It is
// provider.ArgError, so errors.As needs only this package.
type ArgError = provider.ArgError

// Error adds the operation and key to an error from the lock store. It
// unwraps to the cause, so errors.Is sees the sentinels above.
type Error struct {
	Op  string // "acquire", "release", "extend", ...
	Key string // the key as the caller named it (without namespace)
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "locked: " + e.Op + ": " + e.Err.Error()
	}
	return fmt.Sprintf("locked: %s %q: %v", e.Op, e.Key, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// opError adds op and key to err, once: an error that already carries this
// package's prefix (an *Error from an inner call) is returned as it is, so
// chains read "locked: acquire "k": lockproof: not acquired", never two
// "locked:" layers.
func opError(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var inner *Error
	if errors.As(err, &inner) {
		return err
	}
	return &Error{Op: op, Key: key, Err: err}
}

func invalid(arg, reason string) error {
	return &provider.ArgError{Arg: arg, Reason: reason}
}

func checkOwner(owner string) error {
	if owner == "" {
		return invalid("owner", "must not be empty")
	}
	return nil
}
