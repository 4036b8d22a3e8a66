// Package provider defines the contract between lockproof and a lock store.
//
// A Provider keeps, per key, at most one holder identified by an opaque
// token, a time to live after which the hold lapses, and a fencing counter
// that strictly increases with every grant of that key. Everything above it
// (the locked package's Service, Lease and Locked proof) is written against
// this interface, so the in-memory provider (memprovider) and the Redis one
// (redisprovider) are interchangeable.
//
// Every implementation must pass the conformance suite in
// provider/providertest.
//
// # Errors
//
// Providers return the sentinel errors of this package, wrapped with detail
// where useful; callers match them with errors.Is. When a call ends because
// its context ended, the error matches both the sentinel and ctx.Err().
package provider

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors shared by every provider and re-exported by package locked.
// The "lockproof:" prefix is the module's, because the same values reach users
// through the locked package.
var (
	// ErrNotAcquired reports that a lock could not be taken: TryAcquire found
	// it held, or Acquire's context ended first (then the error also matches
	// ctx.Err()).
	ErrNotAcquired = errors.New("lockproof: not acquired")

	// ErrNotHeld reports that the token does not hold the key: it was
	// released, expired, force-released or taken over by another holder.
	ErrNotHeld = errors.New("lockproof: not held")

	// ErrInvalid reports bad input: an empty key or token, a non-positive TTL.
	// Nothing was changed.
	ErrInvalid = errors.New("lockproof: invalid argument")

	// ErrClosed reports a call on a provider (or service) after Close.
	ErrClosed = errors.New("lockproof: closed")

	// ErrUnavailable reports that the store could not be reached, or did
	// not answer as expected, before the request could have been applied:
	// nothing changed. An error that matches ErrOutcomeUnknown matches
	// ErrUnavailable too.
	ErrUnavailable = errors.New("lockproof: store unavailable")

	// ErrOutcomeUnknown reports a transport failure after the request may
	// have reached the store (a lost reply, a timeout while waiting for the
	// answer): the request may or may not have been applied. It also
	// matches ErrUnavailable, so code that only asks "did the store
	// answer?" needs one check.
	ErrOutcomeUnknown error = outcomeUnknown{}
)

type outcomeUnknown struct{}

func (outcomeUnknown) Error() string { return "lockproof: outcome unknown" }

// Unwrap returns ErrUnavailable.
func (outcomeUnknown) Unwrap() error { return ErrUnavailable }

// Grant describes a successful acquire or extend.
type Grant struct {
	// Fence is the fencing token of this hold, always > 0. It strictly
	// increases with every acquire of the same key, across holders and
	// expiries, for the life of the store (for memprovider, of the
	// Provider), under the provider's documented fault model (Redis: what
	// its counters survive; Redlock: a minority of nodes may lose their
	// data; see docs/decisions.md). Fences are exact over the whole range a
	// store issues (Redis: 1 to 2^63-1). Extend returns the hold's
	// unchanged fence.
	Fence uint64

	// Expires is a conservative local deadline for the hold: measured from
	// before the request was sent, minus any clock-drift allowance, so the
	// store's own expiry is never earlier than this instant.
	Expires time.Time
}

// State is a snapshot of one key.
type State struct {
	// Held reports whether some token holds the key.
	Held bool
	// Token is the holder's token; empty when not held.
	Token string
	// Fence is the holder's fence; zero when not held.
	Fence uint64
	// TTL is the remaining time to live of the hold; zero when not held.
	TTL time.Duration
}

// Provider is a lock store. Implementations are safe for concurrent use.
//
// Keys and tokens must be non-empty; TTLs must be positive. Each method
// validates its input and returns an *ArgError (Arg "key", "token" or
// "ttl") matching ErrInvalid, without side effects, otherwise.
//
// A TryAcquire or Acquire whose context has already ended when it is called
// is refused, whether the key is free or held: the error matches
// ErrNotAcquired and ctx.Err() (see CtxError), and nothing is held
// afterwards. A caller that gave up before asking never receives a lease it
// would have to release. (The other methods may fail with a context error
// in that case; what they report must match the store.)
type Provider interface {
	// TryAcquire takes key for token for ttl if nobody holds it, and returns
	// ErrNotAcquired at once if somebody (including token itself) does, or
	// if ctx has already ended (then the error also matches ctx.Err()).
	TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (Grant, error)

	// Acquire is TryAcquire that waits until the key is released or expires,
	// or ctx ends. Waiters are woken by the release itself (no polling in the
	// common case). If ctx ends first the error matches ErrNotAcquired and
	// ctx.Err(), and no hold is left behind. A store that cannot be reached
	// fails the call at once with ErrUnavailable, rather than waiting.
	Acquire(ctx context.Context, key, token string, ttl time.Duration) (Grant, error)

	// Release frees key if token holds it and wakes a waiter. If token does
	// not hold it (released already, expired, taken over) it returns
	// ErrNotHeld and changes nothing.
	Release(ctx context.Context, key, token string) error

	// Extend sets the remaining time to live of token's hold to ttl, which
	// may also shorten it. It returns ErrNotHeld if token does not hold key.
	// The fence is unchanged.
	Extend(ctx context.Context, key, token string, ttl time.Duration) (Grant, error)

	// State reports who holds key now.
	State(ctx context.Context, key string) (State, error)

	// ForceRelease frees key whoever holds it and wakes a waiter. It reports
	// whether the key was held.
	ForceRelease(ctx context.Context, key string) (bool, error)

	// Close stops the provider's background work and ends blocked Acquire
	// calls with ErrClosed. Holds in a store that outlives the provider
	// (Redis) are left to expire there; an in-process store goes with it.
	// Later calls return ErrClosed; Close itself is idempotent and returns
	// nil after the first call.
	Close() error
}

// LocalClock is implemented by a Provider that keeps its holds on this
// process's monotonic clock (an in-process store: memprovider), so that a
// caller can learn from its answers the clock readings it made, instead of
// reading the clock again:
//
//   - every Grant it returns is exact: Expires is the provider's clock
//     reading at the grant plus the TTL asked for (so Expires minus the TTL
//     is the instant of the grant), and the hold ends at Expires, not
//     later;
//   - ReleaseAt is Release that also returns the clock reading (with its
//     monotonic reading) at which it found the hold held or not; the zero
//     Time if it returned before reading the clock (bad input, a closed
//     provider).
//
// A wrapper that changes the grants or the releases of a LocalClock
// provider it embeds must not pass this interface on.
type LocalClock interface {
	Provider
	ReleaseAt(ctx context.Context, key, token string) (at time.Time, err error)
}

// CheckKey returns an *ArgError if key is empty. With CheckToken and
// CheckTTL it lets every implementation reject bad input with the same
// errors; combine them with cmp.Or.
func CheckKey(key string) error {
	if key == "" {
		return &ArgError{Arg: "key", Reason: "must not be empty"}
	}
	return nil
}

// CheckToken returns an *ArgError if token is empty.
func CheckToken(token string) error {
	if token == "" {
		return &ArgError{Arg: "token", Reason: "must not be empty"}
	}
	return nil
}

// CheckTTL returns an *ArgError if ttl is not positive.
func CheckTTL(ttl time.Duration) error {
	if ttl <= 0 {
		return &ArgError{Arg: "ttl", Reason: "must be positive, got " + ttl.String()}
	}
	return nil
}

// ArgError describes a rejected argument. It matches ErrInvalid.
type ArgError struct {
	Arg    string // the argument's name: "key", "token", "ttl", ...
	Reason string
}

func (e *ArgError) Error() string { return "lockproof: invalid " + e.Arg + ": " + e.Reason }

// Unwrap returns ErrInvalid.
func (e *ArgError) Unwrap() error { return ErrInvalid }

// CtxError returns the error for a wait that ended because ctx ended: it
// matches both ErrNotAcquired and ctx.Err() under errors.Is.
func CtxError(ctx context.Context) error {
	cause := ctx.Err()
	if cause == nil { // called at the deadline, a moment before ctx says so
		cause = context.DeadlineExceeded
	}
	return &waitError{cause: cause}
}

type waitError struct{ cause error }

func (e *waitError) Error() string   { return ErrNotAcquired.Error() + ": " + e.cause.Error() }
func (e *waitError) Unwrap() []error { return []error{ErrNotAcquired, e.cause} }

// Unavailable returns an error for a call that failed before its request
// could have reached the store: it matches ErrUnavailable and cause.
func Unavailable(cause error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, cause)
}

// OutcomeUnknown returns an error for a call whose request may have reached
// the store but whose answer did not come back: it matches
// ErrOutcomeUnknown, ErrUnavailable and cause.
func OutcomeUnknown(cause error) error {
	return fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
}
