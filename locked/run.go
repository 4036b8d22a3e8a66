package locked

import (
	"context"
	"errors"
)

// Run holds key while fn runs. fn's context ends when ctx ends or the lease
// is lost, and carries the lease, so that acquiring key again from inside
// fn fails at once with ErrNested. Run returns fn's error, or the acquire
// error if fn did not run, or the release error (ErrExpired if the lease
// lapsed while fn ran). The lease is released even if fn panics.
//
// Run does not renew the lease unless asked (WithAutoRenew or
// Options.AutoRenew): the TTL is what bounds a stuck fn. See
// docs/decisions.md.
func (s *Service) Run(ctx context.Context, key string, fn func(ctx context.Context) error, opts ...CallOption) error {
	_, err := run(ctx, s, key, true, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) }, fn == nil, opts)
	return err
}

// TryRun is Run that does not wait: if key is held it returns
// ErrNotAcquired at once and fn does not run.
func (s *Service) TryRun(ctx context.Context, key string, fn func(ctx context.Context) error, opts ...CallOption) error {
	_, err := run(ctx, s, key, false, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) }, fn == nil, opts)
	return err
}

// Do is Run for a function that returns a value: it holds key while fn
// runs and returns fn's result. If the release fails after fn succeeded, Do
// returns fn's result with the release error, so the caller can tell that
// the result was computed under a lock that ran out.
func Do[R any](ctx context.Context, s *Service, key string, fn func(ctx context.Context) (R, error), opts ...CallOption) (R, error) {
	return run(ctx, s, key, true, fn, fn == nil, opts)
}

func run[R any](ctx context.Context, s *Service, key string, wait bool, fn func(ctx context.Context) (R, error), nilFn bool, opts []CallOption) (r R, err error) {
	if nilFn {
		return r, opError("run", key, invalid("fn", "must not be nil"))
	}
	l, err := s.acquire(ctx, key, wait, opts)
	if err != nil {
		return r, err
	}
	defer func() {
		if rerr := l.Close(); err == nil {
			err = rerr
		}
	}()
	rctx, stop := holdCtx(ctx, l.Context())
	defer stop()
	return fn(withChain(rctx, l))
}

// holdCtx returns a context that ends with ctx or with any of holds, with
// the hold's cause.
func holdCtx(ctx context.Context, holds ...context.Context) (context.Context, func()) {
	rctx, cancel := context.WithCancelCause(ctx)
	stops := make([]func() bool, len(holds))
	for i, h := range holds {
		stops[i] = context.AfterFunc(h, func() { cancel(context.Cause(h)) })
	}
	return rctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel(nil)
	}
}

// Leases is a set of leases taken together by AcquireAll. Close releases
// them all; like a Lease, it must end with Close or Release.
type Leases struct {
	leases []*Lease
}

// All returns the leases in the order of the keys given to AcquireAll.
func (ls *Leases) All() []*Lease {
	if ls == nil {
		return nil
	}
	return append([]*Lease(nil), ls.leases...)
}

// Context returns a context that ends when the first of the leases ends.
// The function it returns releases its resources; call it when done.
func (ls *Leases) Context() (context.Context, context.CancelFunc) {
	ctx, stop := holdCtx(context.Background(), ls.contexts()...)
	return ctx, stop
}

func (ls *Leases) contexts() []context.Context {
	out := make([]context.Context, len(ls.leases))
	for i, l := range ls.leases {
		out[i] = l.Context()
	}
	return out
}

// Release releases every lease, returning their errors joined (ErrNotHeld
// for one that had ended). It is nil-safe.
func (ls *Leases) Release(ctx context.Context) error {
	if ls == nil {
		return nil
	}
	var errs []error
	for _, l := range ls.leases {
		errs = append(errs, l.Release(ctx))
	}
	return errors.Join(errs...)
}

// Close releases every lease still open, as Lease.Close; it returns nil
// after the first call and is safe to defer.
func (ls *Leases) Close() error {
	if ls == nil {
		return nil
	}
	var errs []error
	for _, l := range ls.leases {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// AcquireAll takes every key, all or nothing, in sorted order so that
// callers locking overlapping sets cannot deadlock. The Service's Timeout
// (or WithTimeout) bounds the whole set, not each key. Duplicate keys are
// an ErrInvalid error. On any error the keys already taken are released.
// Errors otherwise as for Acquire.
func (s *Service) AcquireAll(ctx context.Context, keys []string, opts ...CallOption) (*Leases, error) {
	if len(keys) == 0 {
		return nil, opError("acquire", "", invalid("keys", "must not be empty"))
	}
	leases, err := acquireKeys(ctx, s, keys, opts)
	if err != nil {
		return nil, err
	}
	return &Leases{leases: leases}, nil
}

// RunAll holds every key (AcquireAll) while fn runs. fn's context ends when
// ctx ends or any lease is lost, and carries the leases (ErrNested inside).
// It returns as Run does.
func (s *Service) RunAll(ctx context.Context, keys []string, fn func(ctx context.Context) error, opts ...CallOption) (err error) {
	if fn == nil {
		return opError("run", "", invalid("fn", "must not be nil"))
	}
	ls, err := s.AcquireAll(ctx, keys, opts...)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := ls.Close(); err == nil {
			err = rerr
		}
	}()
	rctx, stop := holdCtx(ctx, ls.contexts()...)
	defer stop()
	return fn(withChains(rctx, ls.leases))
}
