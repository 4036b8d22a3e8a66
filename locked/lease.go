package locked

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lockproof/lockproof/provider"
)

// A Lease is a held lock on one key, minted by a Service. It must end with
// Release or Close; afterwards every operation on it fails with ErrNotHeld
// (Close alone returns nil again, so `defer l.Close()` is always safe).
//
// A lease also ends on its own when its TTL runs out without Extend, or when
// auto-renewal finds it taken over; Context reports either. The zero Lease
// and a nil *Lease hold nothing: their methods return ErrNotHeld.
type Lease struct {
	svc   *Service
	key   string // the caller's key, without namespace
	token string
	fence uint64
	ttl   time.Duration

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu sync.Mutex
	// expires, timer, released and renewStop are guarded by mu.
	expires   time.Time
	timer     *time.Timer   // ends the lease at expires
	released  bool          // Release or Close was called
	renewStop chan struct{} // closed to stop renewal; nil if not renewing
	renewDone chan struct{} // closed when the renewal goroutine returns
}

// Why a lease's Context ended, as reported by context.Cause.
var (
	errReleased = fmt.Errorf("%w: lease released", ErrNotHeld)
	errLapsed   = fmt.Errorf("%w: lease expired", ErrNotHeld)
)

func newLease(s *Service, key, token string, g provider.Grant, ttl time.Duration) *Lease {
	l := &Lease{svc: s, key: key, token: token, fence: g.Fence, ttl: ttl, expires: g.Expires}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	l.timer = time.AfterFunc(time.Until(g.Expires), l.lapse)
	return l
}

// Key returns the locked key as the caller named it.
func (l *Lease) Key() string {
	if l == nil {
		return ""
	}
	return l.key
}

// StoreKey returns the key as the provider sees it: with the Service's
// namespace prefix. Stores that check a proof inside their own writes (a
// Redis repository's script) need it; other callers want Key.
func (l *Lease) StoreKey() string {
	if l == nil || l.svc == nil {
		return ""
	}
	return l.svc.prefix + l.key
}

// Token returns the lease's token, unique to this lease.
func (l *Lease) Token() string {
	if l == nil {
		return ""
	}
	return l.token
}

// Owner returns the owner ID of the Service that minted the lease.
func (l *Lease) Owner() string { return ownerOf(l.Token()) }

// Fence returns the lease's fencing token: strictly greater than that of any
// earlier lease on the same key. Stores compare it to reject stale writers.
func (l *Lease) Fence() uint64 {
	if l == nil {
		return 0
	}
	return l.fence
}

// ExpiresAt returns the local deadline of the lease: the store's own expiry
// is no earlier. Extend and auto-renewal move it.
func (l *Lease) ExpiresAt() time.Time {
	if l == nil {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.expires
}

var endedCtx = func() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(fmt.Errorf("%w: zero lease", ErrNotHeld))
	return ctx
}()

// Context returns a context that is cancelled when the lease ends: released,
// expired, or lost. context.Cause tells which; it matches ErrNotHeld.
func (l *Lease) Context() context.Context {
	if l == nil || l.ctx == nil {
		return endedCtx
	}
	return l.ctx
}

// Check reports, with one call to the store, whether the lease still holds
// its key with its fence. It returns nil or an error matching ErrNotHeld
// (or the store's error).
func (l *Lease) Check(ctx context.Context) error {
	if err := l.alive(); err != nil {
		return opError("check", l.Key(), err)
	}
	return l.checkStore(ctx)
}

// checkStore is the store's half of Check, for a lease known to be alive.
func (l *Lease) checkStore(ctx context.Context) error {
	st, err := l.svc.p.State(ctx, l.svc.prefix+l.key)
	if err != nil {
		return opError("check", l.key, err)
	}
	if !st.Held || st.Token != l.token || st.Fence != l.fence {
		return opError("check", l.key, ErrNotHeld)
	}
	return nil
}

// alive checks what can be checked locally: a real, open, unexpired lease.
func (l *Lease) alive() error {
	if l == nil || l.svc == nil {
		return fmt.Errorf("%w: zero or nil lease", ErrNotHeld)
	}
	if err := context.Cause(l.ctx); err != nil {
		return err
	}
	// The expiry timer cancels ctx a moment after the deadline; the store
	// may hand the key on at the deadline itself, so ask the clock too.
	// (The timer still ends the lease and emits Lost: alive runs inside
	// repositories' locks, where a user's OnEvent must not be called.)
	l.mu.Lock()
	expires := l.expires
	l.mu.Unlock()
	if !time.Now().Before(expires) {
		return errLapsed
	}
	return nil
}

// Extend sets the lease's remaining time to live to ttl (the lease's TTL if
// ttl is zero). It fails with ErrNotHeld if the lease has ended or the store
// no longer has it, and with ErrInvalid for a negative ttl.
func (l *Lease) Extend(ctx context.Context, ttl time.Duration) error {
	if ttl < 0 {
		return opError("extend", l.Key(), invalid("ttl", "must not be negative, got "+ttl.String()))
	}
	if err := l.alive(); err != nil {
		return opError("extend", l.Key(), err)
	}
	if ttl == 0 {
		ttl = l.ttl
	}
	g, err := l.svc.p.Extend(ctx, l.svc.prefix+l.key, l.token, ttl)
	if err != nil {
		if errors.Is(err, ErrNotHeld) {
			l.lose(err)
		}
		return opError("extend", l.key, err)
	}
	l.mu.Lock()
	if l.released || l.ctx.Err() != nil { // ended while the call was in flight
		l.mu.Unlock()
		return opError("extend", l.key, cmp.Or(context.Cause(l.ctx), errReleased))
	}
	l.expires = g.Expires
	l.timer.Reset(time.Until(g.Expires))
	l.mu.Unlock()
	l.svc.emit(Event{Type: Extended, Key: l.key, Fence: l.fence, Token: l.token})
	return nil
}

// Release frees the key. It returns ErrNotHeld if the lease had already
// ended (released, lapsed or lost) or the store no longer had it; the key is
// then left to its current holder, if any.
func (l *Lease) Release(ctx context.Context) error {
	if l == nil || l.svc == nil {
		return opError("release", l.Key(), fmt.Errorf("%w: zero or nil lease", ErrNotHeld))
	}
	if !l.finish() {
		return opError("release", l.key, errReleased)
	}
	lapsed := context.Cause(l.ctx)
	err := l.svc.p.Release(ctx, l.svc.prefix+l.key, l.token)
	l.cancel(errReleased)
	l.svc.forget(l)
	if err == nil {
		l.svc.emit(Event{Type: Released, Key: l.key, Fence: l.fence, Token: l.token})
		return nil
	}
	if errors.Is(err, ErrNotHeld) && lapsed != nil {
		err = lapsed // say why: expired or lost
	}
	return opError("release", l.key, err)
}

// Close releases the lease, waiting at most the Service's Timeout for the
// store. It returns what Release returns the first time and nil afterwards,
// so it is safe to defer.
func (l *Lease) Close() error {
	if l == nil || l.svc == nil {
		return nil
	}
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.svc.timeout)
	defer cancel()
	err := l.Release(ctx)
	if errors.Is(err, errReleased) { // lost a race with another Close
		return nil
	}
	return err
}

// lapse ends the lease when its TTL runs out. It runs on the timer.
func (l *Lease) lapse() {
	l.mu.Lock()
	due := !time.Now().Before(l.expires)
	l.mu.Unlock()
	if due { // not a firing that Extend has since overtaken
		l.lose(errLapsed)
	}
}

// lose ends the lease because it lapsed or the store no longer has it.
func (l *Lease) lose(cause error) {
	if l.ctx.Err() != nil {
		return
	}
	l.cancel(cause)
	if context.Cause(l.ctx) == cause { // this call ended it
		l.svc.emit(Event{Type: Lost, Key: l.key, Fence: l.fence, Token: l.token, Err: cause})
	}
}

// end finishes a lease that never reached the caller.
func (l *Lease) end(cause error) {
	l.timer.Stop()
	l.cancel(cause)
}

// startRenewal starts the goroutine that extends the lease at a third of
// its TTL. Release stops it and waits for it.
func (l *Lease) startRenewal() {
	l.mu.Lock()
	l.renewStop = make(chan struct{})
	l.renewDone = make(chan struct{})
	stop, done := l.renewStop, l.renewDone
	l.mu.Unlock()
	go l.renew(stop, done)
}

func (l *Lease) renew(stop, done chan struct{}) {
	defer close(done)
	every := max(l.ttl/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-l.ctx.Done():
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := l.Extend(ctx, l.ttl)
			cancel()
			if errors.Is(err, ErrNotHeld) {
				return // Extend ended the lease
			}
			// Other errors (store unreachable) are retried at the next tick;
			// if they last, the expiry timer ends the lease.
		}
	}
}

// Handle is a serialisable reference to a lease, for handing a held lock to
// another process (encode it with encoding/json). It grants nothing by
// itself: Service.Restore checks it against the store.
type Handle struct {
	Key   string `json:"key"`
	Token string `json:"token"`
	Fence uint64 `json:"fence"`
}

// Handle returns the lease's handle. The lease stays open here: to hand it
// over, Detach it after sending the handle, so that neither this lease nor
// Service.Close releases what the other process now holds.
func (l *Lease) Handle() Handle {
	return Handle{Key: l.Key(), Token: l.Token(), Fence: l.Fence()}
}

var errDetached = fmt.Errorf("%w: lease handed over (detached)", ErrNotHeld)

// Detach ends the lease here without releasing it in the store: its
// renewal stops, its Context ends (cause ErrNotHeld), the Service forgets
// it, and later calls fail with ErrNotHeld (Close returns nil). The hold
// stays until whoever restored its Handle releases it, or its TTL runs out.
func (l *Lease) Detach() {
	if l == nil || l.svc == nil {
		return
	}
	if l.finish() {
		l.cancel(errDetached)
		l.svc.forget(l)
	}
}

// finish marks the lease released, stops its expiry timer and its renewal
// (waiting for the goroutine), and reports whether this call did it: only
// the first of Release, Close and Detach goes on to end the lease.
func (l *Lease) finish() bool {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return false
	}
	l.released = true
	l.timer.Stop()
	stop, done := l.renewStop, l.renewDone
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	return true
}

// Restore returns a lease for h if the store confirms that h's token still
// holds h's key with h's fence; otherwise ErrNotHeld. The restored lease
// has the remaining TTL the store reports, and renews if the Service or opts
// ask for it (WithTTL then sets the renewal TTL).
func (s *Service) Restore(ctx context.Context, h Handle, opts ...Option) (*Lease, error) {
	if s == nil {
		return nil, invalid("service", "must not be nil")
	}
	o := callOptions{ttl: s.ttl, autoRenew: s.autoRenew}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case o.bad != nil:
		return nil, opError("restore", h.Key, o.bad)
	case h.Key == "" || h.Token == "" || h.Fence == 0:
		return nil, opError("restore", h.Key, invalid("handle", "needs key, token and fence"))
	case s.isClosed():
		return nil, opError("restore", h.Key, ErrClosed)
	}
	before := time.Now()
	st, err := s.p.State(ctx, s.prefix+h.Key)
	if err != nil {
		return nil, opError("restore", h.Key, err)
	}
	if !st.Held || st.Token != h.Token || st.Fence != h.Fence {
		return nil, opError("restore", h.Key, ErrNotHeld)
	}
	l := newLease(s, h.Key, h.Token, provider.Grant{Fence: h.Fence, Expires: before.Add(st.TTL)}, o.ttl)
	if !s.track(l) {
		l.end(ErrClosed)
		return nil, opError("restore", h.Key, ErrClosed)
	}
	s.emit(Event{Type: Acquired, Key: h.Key, Fence: h.Fence, Token: h.Token})
	if o.autoRenew {
		l.startRenewal()
	}
	return l, nil
}
