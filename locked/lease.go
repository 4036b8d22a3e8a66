package locked

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"

	"github.com/lockproof/lockproof/provider"
)

// A Lease is a held lock on one key, minted by a Service. It must end with
// Release or Close; afterwards every operation on it fails with ErrNotHeld
// (Close alone returns nil again, so `defer l.Close()` is always safe).
//
// A lease also ends on its own when its TTL runs out without ExtendTo or
// ExtendBy, or when auto-renewal finds it taken over; Context reports
// either. The zero Lease
// and a nil *Lease hold nothing: their methods return ErrNotHeld.
type Lease struct {
	// A Lease, its token inside, is the one allocation of an uncontended
	// acquire and release: what only some leases need (a Context, an
	// expiry timer, a renewal) is in late, made on first use. See
	// docs/decisions.md.
	svc   *Service
	key   string // the caller's key, without namespace
	token string
	fence uint64
	ttl   time.Duration // the TTL each renewal asks for

	acquired time.Duration // when the acquire began (Restore: when it ran), since svc.epoch
	chain    chainNode     // this lease and the leases of the call chain that took it

	// prev and next link the Service's open leases; guarded by svc.mu.
	prev, next *Lease

	mu sync.Mutex
	// expires, released, cause and late are guarded by mu; tracked and
	// shared by svc.mu (four bools in one word); noExpiry is set before the
	// lease is shared.
	expires  time.Duration // the local deadline, since svc.epoch
	noExpiry bool          // WithNoExpiry: never lapses
	released bool          // Release, Close or Detach was called
	tracked  bool          // in the Service's list of open leases
	shared   bool          // another open lease of the Service has the same hold (WithReentrant, Restore)
	cause    error         // why the lease ended; nil while it lasts
	late     *leaseLate    // nil until a Context, timer or renewal is needed

	// tokenBytes holds the token when it fits, as the Service's default
	// tokens do (see appendToken): token then points here, and the lease and
	// its token are one allocation. Written once, before token is made.
	tokenBytes [32]byte
}

// leaseLate is the part of a lease that most leases never need. A lease
// that is released before its deadline, whose Context nobody asked for,
// needs no timer: alive compares the clock with the deadline, and the
// calls that report or change how a lease ended (Release, Close, Detach,
// Check, ExtendTo, ExtendBy, Context, Stats) first end one found past it as
// lapsed (settle). The timer is started when something must see
// the lapse when it happens: a Context handed out, a subscriber (Lost
// events), a renewal.
type leaseLate struct {
	ctx       context.Context // Context's; nil until first asked for
	cancel    context.CancelCauseFunc
	timer     *time.Timer   // ends the lease at expires; nil until armed
	renewStop chan struct{} // closed to stop renewal; nil if not renewing
	renewDone chan struct{} // closed when the renewal goroutine returns
}

// Why a lease's Context ended, as reported by context.Cause.
var (
	errReleased = fmt.Errorf("%w: lease released", ErrNotHeld)
	errLapsed   = ErrExpired
	errZero     = fmt.Errorf("%w: zero or nil lease", ErrNotHeld)
)

// newLease returns a lease of s on key with a new token for owner, to be
// granted (grant) once the store has it.
func (s *Service) newLease(key, owner string) *Lease {
	l := &Lease{svc: s, key: key}
	// The token is written straight into tokenBytes when it fits, and
	// otherwise into the new array that append makes. Either way the bytes
	// are never written again (a Lease is not reused), so the string may
	// share them: one allocation for the lease and its token.
	tok := s.appendToken(l.tokenBytes[:0:len(l.tokenBytes)], owner)
	l.token = unsafe.String(unsafe.SliceData(tok), len(tok))
	return l
}

// grant fills in what the store granted, and the call that asked.
// acquired is when the acquire began, since the Service's epoch, or
// atGrant: the grant's own instant, Expires minus the TTL, as a
// provider.LocalClock's grants are exact.
func (l *Lease) grant(g provider.Grant, o *callOptions, parent *chainNode, acquired time.Duration) {
	l.fence, l.ttl, l.noExpiry = g.Fence, o.ttl, o.noExpiry
	l.expires = g.Expires.Sub(l.svc.epoch)
	if acquired == atGrant {
		acquired = l.expires - o.ttl
	}
	l.acquired = acquired
	l.chain.lease = l
	if parent != nil { // nil already: no write (see Service.track)
		l.chain.parent = parent
	}
}

// atGrant, as grant's acquired, asks for the grant's own instant: no
// reading since the epoch is negative.
const atGrant time.Duration = -1

// since returns the time since the Service's epoch: one monotonic clock
// reading, cheaper than time.Now.
func (l *Lease) since() time.Duration { return time.Since(l.svc.epoch) }

// pastLocked reports whether the deadline has passed. l.mu is held.
func (l *Lease) pastLocked() bool {
	return !l.noExpiry && l.since() >= l.expires
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

// Owner returns the lease's owner: WithOwner's, or the Service's Options.Owner.
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
// is no earlier. ExtendTo, ExtendBy and auto-renewal move it. It is the
// zero time for a lease without expiry.
func (l *Lease) ExpiresAt() time.Time {
	if l == nil || l.svc == nil || l.noExpiry {
		return time.Time{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.svc.epoch.Add(l.expires)
}

var endedCtx = func() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(fmt.Errorf("%w: zero lease", ErrNotHeld))
	return ctx
}()

// Context returns a context that is cancelled when the lease ends: released,
// expired, or lost. context.Cause tells which; it matches ErrNotHeld.
func (l *Lease) Context() context.Context {
	if l == nil || l.svc == nil {
		return endedCtx
	}
	l.settle()
	l.mu.Lock()
	defer l.mu.Unlock()
	late := l.lateLocked()
	if late.ctx == nil {
		late.ctx, late.cancel = context.WithCancelCause(context.WithValue(context.Background(), chainKey{}, &l.chain))
		if l.cause != nil {
			late.cancel(l.cause)
		} else {
			l.armLocked() // the Context must end at the deadline
		}
	}
	return late.ctx
}

// lateLocked returns l.late, made if needed. l.mu is held.
func (l *Lease) lateLocked() *leaseLate {
	if l.late == nil {
		l.late = new(leaseLate)
	}
	return l.late
}

// armLocked starts the expiry timer of a live lease that has a deadline
// and no timer yet. l.mu is held.
func (l *Lease) armLocked() {
	if l.noExpiry || l.cause != nil || l.released {
		return
	}
	late := l.lateLocked()
	if late.timer == nil {
		late.timer = time.AfterFunc(l.expires-l.since(), l.lapse)
	}
}

// arm starts the expiry timer (see leaseLate).
func (l *Lease) arm() {
	l.mu.Lock()
	l.armLocked()
	l.mu.Unlock()
}

// Check reports, with one call to the store, whether the lease still holds
// its key with its fence. It returns nil or an error matching ErrNotHeld
// (or the store's error). When the store no longer has the hold (it was
// force-released, released by owner or admin, or expired there), the lease
// ends here too: its Context is cancelled and a Lost event reported.
// (Locked.Check, which repositories call under their own locks, only
// reports it.)
func (l *Lease) Check(ctx context.Context) error {
	l.settle()
	if err := l.alive(); err != nil {
		return opError("check", l.Key(), err)
	}
	err := l.checkStore(ctx)
	if errors.Is(err, errGone) {
		// Not in checkStore: Locked.Check runs it inside repositories'
		// locks, where a Lost event (a user's callback) must not run.
		l.lose(errGone)
	}
	return err
}

// checkStore is the store's half of Check, for a lease known to be alive.
func (l *Lease) checkStore(ctx context.Context) error {
	st, err := l.svc.p.State(ctx, l.svc.prefix+l.key)
	if err != nil {
		return opError("check", l.key, err)
	}
	if !st.Held || st.Token != l.token || st.Fence != l.fence {
		return opError("check", l.key, errGone)
	}
	return nil
}

// errGone is why a lease ends when the store says it no longer has it.
var errGone = fmt.Errorf("%w: the store no longer has the hold", ErrNotHeld)

// alive checks what can be checked locally: a real, open, unexpired lease.
// It only reads: it runs inside repositories' locks, where a Lost event (a
// user's OnEvent) must not be called, so a lease found past its deadline
// here is ended by its timer, or else by the next settle.
func (l *Lease) alive() error {
	if l == nil || l.svc == nil {
		return errZero
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.cause != nil:
		return l.cause
	case l.pastLocked():
		// The store may hand the key on at the deadline itself.
		return errLapsed
	}
	return nil
}

// settle ends the lease as lapsed if its deadline has passed and nothing
// has ended it yet: the timer's work, for a lease that has none (see
// leaseLate). It runs before every call that reports or changes how a lease
// ended, outside repositories' locks.
func (l *Lease) settle() {
	if l == nil || l.svc == nil {
		return
	}
	l.mu.Lock()
	due := l.cause == nil && l.pastLocked()
	l.mu.Unlock()
	if due {
		l.lose(errLapsed)
	}
}

// ExtendTo sets the lease's remaining time to live to ttl (the lease's TTL
// if ttl is zero), which may also shorten it, as daiso's refresh and
// Verrou's extend do. ExtendBy adds time instead. It fails with ErrNotHeld
// if the lease has ended or the store no longer has it (ErrExpired if its
// TTL ran out), and with ErrInvalid for a negative ttl, a ttl above MaxTTL
// or a lease without expiry.
func (l *Lease) ExtendTo(ctx context.Context, ttl time.Duration) error {
	switch {
	case ttl < 0:
		return opError("extend", l.Key(), invalid("ttl", "must not be negative, got "+ttl.String()))
	case ttl > MaxTTL:
		return opError("extend", l.Key(), invalid("ttl", "must be at most MaxTTL, got "+ttl.String()))
	}
	l.settle()
	if err := l.alive(); err != nil {
		return opError("extend", l.Key(), err)
	}
	if l.noExpiry {
		return opError("extend", l.key, invalid("lease", "has no expiry to extend"))
	}
	if ttl == 0 {
		ttl = l.ttl
	}
	return l.extend(ctx, ttl)
}

// ExtendBy adds d to the lease's remaining time to live, as nestjs-redisx's
// extend does: the new TTL is the local remaining time (Remaining) plus d,
// so the store's expiry never ends earlier than Remaining + d from now. d
// must be positive. Errors as for ExtendTo.
func (l *Lease) ExtendBy(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return opError("extend", l.Key(), invalid("by", "must be positive, got "+d.String()))
	}
	l.settle()
	if err := l.alive(); err != nil {
		return opError("extend", l.Key(), err)
	}
	if l.noExpiry {
		return opError("extend", l.key, invalid("lease", "has no expiry to extend"))
	}
	ttl := l.Remaining() + d
	if ttl > MaxTTL {
		return opError("extend", l.key, invalid("by", "would make the TTL exceed MaxTTL"))
	}
	return l.extend(ctx, ttl)
}

func (l *Lease) extend(ctx context.Context, ttl time.Duration) error {
	g, err := l.svc.p.Extend(ctx, l.svc.prefix+l.key, l.token, ttl)
	if err != nil {
		if errors.Is(err, ErrNotHeld) {
			l.lose(err)
		}
		return opError("extend", l.key, err)
	}
	l.settle() // lapsed while the call was in flight (what a timer would have seen)
	l.mu.Lock()
	if l.released || l.cause != nil { // ended while the call was in flight
		cause := l.cause
		l.mu.Unlock()
		return opError("extend", l.key, cmp.Or(cause, errReleased))
	}
	l.expires = g.Expires.Sub(l.svc.epoch)
	if l.late != nil && l.late.timer != nil {
		l.late.timer.Reset(l.expires - l.since())
	}
	l.mu.Unlock()
	l.svc.events.emit(Event{Type: Extended, Key: l.key, Fence: l.fence, Token: l.token})
	return nil
}

// TTL returns the time to live the lease was taken with, which each
// auto-renewal asks for again (0 for a lease without expiry).
func (l *Lease) TTL() time.Duration {
	if l == nil || l.noExpiry {
		return 0
	}
	return l.ttl
}

// NoExpiry reports whether the lease was taken WithNoExpiry.
func (l *Lease) NoExpiry() bool { return l != nil && l.noExpiry }

// AcquiredAt returns when the acquire that granted the lease began (for a
// restored lease, when Restore ran). For a TryAcquire on a provider that
// keeps its holds on this process's clock (provider.LocalClock:
// memprovider), it is the instant the provider granted it, which the
// provider reads anyway: later than the call's start by the provider's
// own work up to that reading (tens of nanoseconds on memprovider).
func (l *Lease) AcquiredAt() time.Time {
	if l == nil || l.svc == nil {
		return time.Time{}
	}
	return l.svc.epoch.Add(l.acquired)
}

// Remaining returns how long the lease has until its local deadline: 0 once
// it has ended here or its TTL ran out, math.MaxInt64 for a live lease
// without expiry.
func (l *Lease) Remaining() time.Duration {
	if l.alive() != nil {
		return 0
	}
	if l.noExpiry {
		return math.MaxInt64
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.expires-l.since(), 0)
}

// Expired reports whether the lease's TTL ran out (it was not released or
// extended in time). A lease that ended otherwise (released, lost) is not
// expired; Context and its cause tell every case.
func (l *Lease) Expired() bool {
	if l == nil || l.svc == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cause != nil {
		return errors.Is(l.cause, ErrExpired)
	}
	return l.pastLocked()
}

// AutoRenewing reports whether the lease renews itself (WithAutoRenew or
// Options.AutoRenew) and has not stopped: not ended, not StopAutoRenew.
func (l *Lease) AutoRenewing() bool {
	if l == nil || l.svc == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.late != nil && l.late.renewStop != nil && l.cause == nil
}

// StopAutoRenew stops the lease's renewal, waiting for a renewal in flight;
// the lease stays held until its TTL runs out or it is released. It does
// nothing if the lease does not renew.
func (l *Lease) StopAutoRenew() {
	if l == nil || l.svc == nil {
		return
	}
	l.mu.Lock()
	var stop, done chan struct{}
	if late := l.late; late != nil {
		stop, done = late.renewStop, late.renewDone
		late.renewStop, late.renewDone = nil, nil
	}
	l.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// Release frees the key. It returns ErrNotHeld if the lease had already
// ended (released, lapsed or lost) or the store no longer had it; the key is
// then left to its current holder, if any. A lease whose TTL ran out before
// Release reports ErrExpired, even if the store (whose expiry is never
// earlier than the local one) still had the hold and this call freed it:
// the work done since the expiry was not protected. (On a
// provider.LocalClock, such as memprovider, the deadline is compared with
// the clock reading the provider's release made, so a TTL that runs out
// during the call counts too.)
func (l *Lease) Release(ctx context.Context) error {
	if l == nil || l.svc == nil {
		return opError("release", l.Key(), errZero)
	}
	local := l.svc.local
	done, lapsed := l.finish(local != nil)
	if !done {
		return opError("release", l.key, errReleased)
	}
	var err error
	if local != nil {
		// finish left the deadline to the store's own clock reading.
		var at time.Time
		at, err = local.ReleaseAt(ctx, l.svc.storeKey(l.key), l.token)
		if lapsed == nil {
			lapsed = l.endAt(at)
		}
	} else {
		err = l.svc.p.Release(ctx, l.svc.storeKey(l.key), l.token)
		l.end(errReleased)
	}
	shared := l.svc.forget(l)
	if err == nil {
		if shared {
			l.svc.endLocal(l.key, l.token, errReleased) // a WithReentrant lease on the same hold
		}
		if l.svc.events.on() {
			l.svc.events.emit(Event{Type: Released, Key: l.key, Fence: l.fence, Token: l.token})
		}
	}
	if lapsed != nil && (err == nil || errors.Is(err, ErrNotHeld)) {
		// The lease had ended here before Release (expired or lost): say
		// so even if the store still had the hold and freed it now, since
		// the work done under the lease was no longer protected.
		return opError("release", l.key, lapsed)
	}
	if err == nil {
		return nil
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
	due := l.pastLocked() // not a firing that Extend has since overtaken
	l.mu.Unlock()
	if due {
		l.lose(errLapsed)
	}
}

// lose ends the lease because it lapsed or the store no longer has it.
func (l *Lease) lose(cause error) {
	l.endThen(cause, func() { // counted and told before the Context ends, so a waker on Done sees both
		l.svc.stats.lost.Add(1)
		l.svc.events.emit(Event{Type: Lost, Key: l.key, Fence: l.fence, Token: l.token, Err: cause})
	})
}

// end records why the lease ended, stops its timer and cancels its
// Context, unless it had ended already; it reports whether this call
// ended it.
func (l *Lease) end(cause error) bool { return l.endThen(cause, nil) }

// endThen is end that, if this call ends the lease, runs before (when not
// nil) after recording the cause and before cancelling the Context.
func (l *Lease) endThen(cause error, before func()) bool {
	l.mu.Lock()
	if l.cause != nil {
		l.mu.Unlock()
		return false
	}
	cancel := l.endLocked(cause)
	l.mu.Unlock()
	if before != nil {
		before()
	}
	if cancel != nil {
		cancel(cause)
	}
	return true
}

// endLocked records cause as why the lease ended, unless it had ended
// already, and stops its timer. It returns the Context's cancel, if there
// is one to call (after unlocking) with cause. l.mu is held.
func (l *Lease) endLocked(cause error) context.CancelCauseFunc {
	if l.cause != nil {
		return nil
	}
	l.cause = cause
	late := l.late
	if late == nil {
		return nil
	}
	if late.timer != nil {
		late.timer.Stop()
	}
	return late.cancel
}

// startRenewal starts the goroutine that extends the lease at a third of
// its TTL. Release stops it and waits for it.
func (l *Lease) startRenewal() {
	ended := l.Context().Done() // the renewal stops when the lease ends; this also arms the timer
	l.mu.Lock()
	late := l.lateLocked()
	late.renewStop = make(chan struct{})
	late.renewDone = make(chan struct{})
	stop, done := late.renewStop, late.renewDone
	l.mu.Unlock()
	go l.renew(stop, done, ended)
}

func (l *Lease) renew(stop, done chan struct{}, ended <-chan struct{}) {
	defer close(done)
	every := max(l.ttl/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ended:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), every)
			err := l.extend(ctx, l.ttl)
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
	if done, _ := l.finish(false); done {
		l.end(errDetached)
		l.svc.forget(l)
	}
}

// finish marks the lease released, stops its expiry timer and its renewal
// (waiting for the goroutine), and reports whether this call did it: only
// the first of Release, Close and Detach goes on to end the lease. A lease
// found past its deadline ends as lapsed first, unless later says that the
// caller checks the deadline itself, with a later clock reading (endAt);
// cause is why the lease had ended, if it had.
func (l *Lease) finish(later bool) (done bool, cause error) {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return false, nil
	}
	l.released = true
	cause = l.cause
	due := cause == nil && !later && l.pastLocked()
	var stop, wait chan struct{}
	if late := l.late; late != nil {
		if late.timer != nil {
			late.timer.Stop()
		}
		stop, wait = late.renewStop, late.renewDone
		late.renewStop, late.renewDone = nil, nil
	}
	l.mu.Unlock()
	if due {
		l.lose(errLapsed)
	}
	if stop != nil {
		close(stop)
		<-wait
	}
	if due || stop != nil { // ended meanwhile, by lose or by the renewal
		l.mu.Lock()
		cause = l.cause
		l.mu.Unlock()
	}
	return true, cause
}

// endAt ends the lease after its release in the store, which read the
// clock at at (the zero Time: it did not; the clock is read now). That is
// finish's check of the deadline, made later: a lease past its deadline
// then ends as lapsed, and endAt returns that cause; otherwise it ends as
// released (as end(errReleased)).
func (l *Lease) endAt(at time.Time) error {
	var now time.Duration
	if at.IsZero() {
		now = l.since()
	} else {
		now = at.Sub(l.svc.epoch)
	}
	l.mu.Lock()
	if l.cause == nil && !l.noExpiry && now >= l.expires {
		l.mu.Unlock()
		l.lose(errLapsed)
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.cause
	}
	cancel := l.endLocked(errReleased)
	l.mu.Unlock()
	if cancel != nil {
		cancel(errReleased)
	}
	return nil
}

// Restore returns a lease for h if the store confirms that h's token still
// holds h's key with h's fence; otherwise ErrNotHeld. The restored lease
// has the remaining TTL the store reports, and renews if the Service or opts
// ask for it (WithTTL then sets the renewal TTL).
func (s *Service) Restore(ctx context.Context, h Handle, opts ...CallOption) (*Lease, error) {
	if s == nil {
		return nil, invalid("service", "must not be nil")
	}
	o := s.callOptions(opts)
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
	o.noExpiry = st.TTL > MaxTTL
	if o.noExpiry {
		o.autoRenew = false
	}
	l := &Lease{svc: s, key: h.Key, token: h.Token}
	l.grant(provider.Grant{Fence: h.Fence, Expires: before.Add(st.TTL)}, &o, chainOf(ctx), time.Since(s.epoch))
	if !s.track(l, true) { // this Service may have the lease l restores open
		l.end(ErrClosed)
		return nil, opError("restore", h.Key, ErrClosed)
	}
	s.stats.acquired.Add(1)
	s.events.emit(Event{Type: Acquired, Key: h.Key, Fence: h.Fence, Token: h.Token})
	if o.autoRenew {
		l.startRenewal()
	}
	return l, nil
}
