package locked

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockproof/lockproof/provider"
)

// Service hands out leases on keys and proofs on entities. Create one per
// application with New and share it; it is safe for concurrent use. A
// Service does not own its provider: close the provider after the Service.
type Service struct {
	p          provider.Provider
	local      provider.LocalClock // p, if it keeps holds on this process's clock; else nil
	ttl        time.Duration
	timeout    time.Duration
	noTimeout  bool
	maxRetries int
	retryDelay time.Duration
	autoRenew  bool
	owner      string
	instance   string        // unique per Service, in every token: see newInstance
	tokenHead  string        // what appendToken writes before the seq for owner
	prefix     string        // namespace + ":" or ""
	seq        atomic.Uint64 // numbers this Service's tokens
	epoch      time.Time     // leases keep their times as durations since it
	defaults   callOptions   // the options of a call without any

	events events
	stats  counters

	life    context.Context    // ends when Close starts; ends waits in flight
	endLife context.CancelFunc // ends life

	mu sync.Mutex
	// leases (and the leases' prev, next, tracked and shared) and closed
	// are guarded by mu.
	leases   *Lease // the open leases, released by Close: a list through Lease.prev and next
	closed   bool
	inflight inflight // acquires that may still mint a lease; Close waits for them
}

// New returns a Service that takes locks from p. opts may be nil.
// It returns an error matching ErrInvalid for a nil provider, a negative
// TTL, Timeout, MaxRetries or RetryDelay, a TTL above MaxTTL, or a
// Namespace with ':'.
func New(p provider.Provider, opts *Options) (*Service, error) {
	if p == nil {
		return nil, invalid("provider", "must not be nil")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case o.TTL < 0:
		return nil, invalid("TTL", "must not be negative, got "+o.TTL.String())
	case o.TTL > MaxTTL:
		return nil, invalid("TTL", "must be at most MaxTTL, got "+o.TTL.String())
	case o.Timeout < 0:
		return nil, invalid("Timeout", "must not be negative, got "+o.Timeout.String())
	case o.MaxRetries < 0:
		return nil, invalid("MaxRetries", "must not be negative, got "+strconv.Itoa(o.MaxRetries))
	case o.RetryDelay < 0:
		return nil, invalid("RetryDelay", "must not be negative, got "+o.RetryDelay.String())
	case strings.Contains(o.Namespace, ":"):
		return nil, invalid("Namespace", "must not contain ':'")
	}
	instance, err := newInstance()
	if err != nil {
		return nil, err
	}
	if o.Owner == "" {
		o.Owner = instance
	}
	s := &Service{
		p:          p,
		ttl:        cmpOr(o.TTL, DefaultTTL),
		timeout:    cmpOr(o.Timeout, DefaultTimeout),
		noTimeout:  o.NoTimeout,
		maxRetries: o.MaxRetries,
		retryDelay: o.RetryDelay,
		autoRenew:  o.AutoRenew,
		owner:      o.Owner,
		instance:   instance,
		epoch:      time.Now(),
	}
	s.defaults = s.defaultOptions()
	s.tokenHead = string(s.appendTokenHead(nil, s.owner))
	s.local, _ = p.(provider.LocalClock)
	s.life, s.endLife = context.WithCancel(context.Background())
	s.inflight.drained = make(chan struct{})
	if o.Namespace != "" {
		s.prefix = o.Namespace + ":"
	}
	if o.OnEvent != nil {
		s.events.subscribe(o.OnEvent)
	}
	return s, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Owner returns the owner ID in this Service's tokens ("" for a nil
// Service).
func (s *Service) Owner() string {
	if s == nil {
		return ""
	}
	return s.owner
}

// Acquire takes key, waiting while another holder has it, for at most the
// Service's Timeout (or WithTimeout; WithNoTimeout: as long as ctx lasts)
// and while ctx lasts. WithMaxRetries bounds the attempts as well. The
// lease must be released with Release or Close.
//
// Errors: ErrNotAcquired (also matching context.DeadlineExceeded or
// context.Canceled) if the wait ended first; ErrNested if ctx already
// carries a live lease on key; ErrInvalid for an empty key or a bad option;
// ErrClosed after Close; ErrUnavailable or ErrOutcomeUnknown if the store
// failed.
func (s *Service) Acquire(ctx context.Context, key string, opts ...CallOption) (*Lease, error) {
	return s.acquire(ctx, key, true, opts)
}

// TryAcquire takes key if it is free and returns ErrNotAcquired at once if
// it is held. Other errors as for Acquire.
func (s *Service) TryAcquire(ctx context.Context, key string, opts ...CallOption) (*Lease, error) {
	return s.acquire(ctx, key, false, opts)
}

func (s *Service) acquire(ctx context.Context, key string, wait bool, opts []CallOption) (*Lease, error) {
	if s == nil {
		return nil, opError("acquire", key, invalid("service", "must not be nil"))
	}
	// o points at s.defaults (read only) for a call without options, so
	// that the common call copies nothing.
	o := &s.defaults
	if len(opts) > 0 {
		withOpts := s.callOptions(opts)
		o = &withOpts
	}
	chain := chainOf(ctx)
	switch {
	case o.bad != nil:
		return nil, opError("acquire", key, o.bad)
	case key == "":
		return nil, opError("acquire", key, provider.CheckKey(key))
	case chain != nil && !o.reentrant && s.heldInChain(chain, key):
		return nil, opError("acquire", key, ErrNested)
	case !s.enter():
		return nil, opError("acquire", key, ErrClosed)
	}
	defer s.inflight.leave()
	l := s.newLease(key, o.owner)
	minted := l.token
	// A TryAcquire on a LocalClock provider reads no clock here: its grant
	// tells when it was made, and the call does not wait.
	timed := wait || s.local == nil
	var start time.Duration
	if timed {
		start = time.Since(s.epoch)
	}
	g, err := s.take(ctx, key, &l.token, wait, o)
	token := l.token
	if timed {
		s.stats.waited.Add(int64(time.Since(s.epoch) - start))
	}
	if err != nil && ctx.Err() == nil && s.life.Err() != nil && errors.Is(err, context.Canceled) {
		err = ErrClosed // the wait was ended by Close, not by the caller
	}
	if err != nil {
		s.stats.failed.Add(1)
		err = opError("acquire", key, err)
		s.events.emit(Event{Type: AcquireFailed, Key: key, Token: token, Err: err})
		return nil, err
	}
	if !timed {
		start = atGrant // the instant of the grant (provider.LocalClock)
	}
	l.grant(g, o, chain, start)
	if !s.track(l, token != minted) { // closed while we waited: give it back
		_ = s.p.Release(context.WithoutCancel(ctx), s.prefix+key, token)
		l.end(ErrClosed)
		return nil, opError("acquire", key, ErrClosed)
	}
	s.stats.acquired.Add(1)
	if s.events.on() {
		s.events.emit(Event{Type: Acquired, Key: key, Fence: g.Fence, Token: token})
	}
	if o.autoRenew {
		l.startRenewal()
	}
	return l, nil
}

// storeKey returns key as the provider sees it: with the namespace prefix.
func (s *Service) storeKey(key string) string {
	if s.prefix == "" {
		return key // no concatenation on the common path
	}
	return s.prefix + key
}

// take asks the store for key. With WithReentrant, a hold of the same
// owner is extended, and *token becomes that hold's token.
func (s *Service) take(ctx context.Context, key string, token *string, wait bool, o *callOptions) (provider.Grant, error) {
	sk := s.storeKey(key)
	if o.reentrant {
		g, held, err := s.reenter(ctx, sk, token, o)
		if err == nil || !errors.Is(err, ErrNotAcquired) || !wait {
			return g, err
		}
		if held {
			return g, err
		}
	} else if !wait {
		return s.p.TryAcquire(ctx, sk, *token, o.ttl)
	}
	return s.waitFor(ctx, sk, *token, o)
}

// waitFor asks the store for sk, waiting as o says. It is apart from take so
// that take has no defers: a call that does not wait does not pay for them.
func (s *Service) waitFor(ctx context.Context, sk, token string, o *callOptions) (provider.Grant, error) {
	var cancel context.CancelFunc
	if o.noTimeout {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
	}
	defer cancel()
	defer context.AfterFunc(s.life, cancel)() // Close ends the wait
	switch {
	case o.maxRetries == 0: // no count: one wait, woken by releases
		return s.p.Acquire(ctx, sk, token, o.ttl)
	case o.maxRetries < 0: // WithMaxRetries(0): a single try
		return s.p.TryAcquire(ctx, sk, token, o.ttl)
	}
	g, err := s.p.TryAcquire(ctx, sk, token, o.ttl)
	if err == nil || !errors.Is(err, ErrNotAcquired) {
		return g, err
	}
	delay := cmpOr(o.retryDelay, o.timeout/time.Duration(o.maxRetries+1))
	for range o.maxRetries {
		actx, cancel := context.WithTimeout(ctx, delay)
		g, err = s.p.Acquire(actx, sk, token, o.ttl)
		ended := actx.Err() != nil
		cancel()
		switch {
		case err == nil || ctx.Err() != nil:
			return g, err
		case errors.Is(err, ErrNotAcquired):
		case errors.Is(err, ErrOutcomeUnknown) && ended:
			// This retry's own deadline cut a request short: the provider
			// undoes whatever it may have taken; the next retry asks anew.
		default:
			return g, err
		}
	}
	if errors.Is(err, ErrOutcomeUnknown) { // the last retry's fate is not known
		return provider.Grant{}, fmt.Errorf("gave up after %d retries: %w", o.maxRetries, err)
	}
	return provider.Grant{}, fmt.Errorf("%w: gave up after %d retries", ErrNotAcquired, o.maxRetries)
}

// reenter takes sk for *token, or extends the hold if the call's owner
// already has it. held reports that the same owner held it and the extend
// was refused (the hold changed twice under us): the caller does not wait.
func (s *Service) reenter(ctx context.Context, sk string, token *string, o *callOptions) (g provider.Grant, held bool, err error) {
	for range 2 { // a second round if the hold changed between State and Extend
		g, err = s.p.TryAcquire(ctx, sk, *token, o.ttl)
		if err == nil || !errors.Is(err, ErrNotAcquired) {
			return g, false, err
		}
		st, serr := s.p.State(ctx, sk)
		if serr != nil {
			return g, false, serr
		}
		if !st.Held || ownerOf(st.Token) != o.owner {
			if !st.Held {
				continue // freed in between: try again
			}
			return g, false, err
		}
		if st.TTL > MaxTTL {
			return g, true, invalid("options", "WithReentrant: the held lock has no expiry and cannot be extended")
		}
		g, err = s.p.Extend(ctx, sk, st.Token, o.ttl)
		if err == nil {
			*token = st.Token
			return g, false, nil
		}
		if !errors.Is(err, ErrNotHeld) {
			return g, false, err
		}
	}
	return provider.Grant{}, true, fmt.Errorf("%w: the hold kept changing", ErrNotAcquired)
}

// appendToken appends a new token "owner/instance/seq" to b, seq in base
// 36. When the owner is the Service's instance ID (the default Owner), the
// instance is left out ("owner//seq"): the owner already makes the token
// unique, since no other Service has that instance. See docs/decisions.md.
func (s *Service) appendToken(b []byte, owner string) []byte {
	if owner == s.owner {
		b = append(b, s.tokenHead...) // made once, by New
	} else {
		b = s.appendTokenHead(b, owner)
	}
	return strconv.AppendUint(b, s.seq.Add(1), 36)
}

// appendTokenHead appends the part of owner's tokens before the seq.
func (s *Service) appendTokenHead(b []byte, owner string) []byte {
	b = append(b, owner...)
	b = append(b, '/')
	if owner != s.instance {
		b = append(b, s.instance...)
	}
	return append(b, '/')
}

// instanceBytes is the randomness of a Service's instance ID: 96 bits, so
// that Services sharing an Owner (across processes, over the store's life)
// never mint the same token (two of a billion Services collide with
// probability below 10⁻¹¹).
const instanceBytes = 12

// newInstance returns a new random instance ID: 16 characters of
// URL-safe base64, with no '/' (ownerOf splits tokens at the last two).
func newInstance() (string, error) {
	var b [instanceBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("locked: new instance ID: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Status tells who holds a key, as seen by one Service.
type Status int

// Status values.
const (
	Free        Status = iota // nobody holds the key
	HeldByMe                  // a lease with this Service's Owner holds it
	HeldByOther               // a lease of another owner holds it
)

func (st Status) String() string {
	switch st {
	case Free:
		return "free"
	case HeldByMe:
		return "held by me"
	case HeldByOther:
		return "held by other"
	}
	return "Status(" + strconv.Itoa(int(st)) + ")"
}

// State is a snapshot of a key.
type State struct {
	Status   Status
	Owner    string        // the holder's owner ID; "" when free
	Fence    uint64        // the holder's fence; 0 when free
	TTL      time.Duration // remaining time to live; 0 when free or NoExpiry
	NoExpiry bool          // the hold never lapses (WithNoExpiry)
}

func (s *Service) stateOf(st provider.State) State {
	if !st.Held {
		return State{}
	}
	owner := ownerOf(st.Token)
	out := State{Status: HeldByOther, Owner: owner, Fence: st.Fence, TTL: st.TTL}
	if owner == s.owner {
		out.Status = HeldByMe
	}
	if st.TTL > MaxTTL {
		out.TTL, out.NoExpiry = 0, true
	}
	return out
}

// State reports who holds key now.
func (s *Service) State(ctx context.Context, key string) (State, error) {
	if s == nil {
		return State{}, opError("state", key, invalid("service", "must not be nil"))
	}
	st, err := s.p.State(ctx, s.prefix+key)
	if err != nil {
		return State{}, opError("state", key, err)
	}
	return s.stateOf(st), nil
}

// IsLocked reports whether anyone holds key now.
func (s *Service) IsLocked(ctx context.Context, key string) (bool, error) {
	st, err := s.State(ctx, key)
	return st.Status != Free, err
}

// ForceRelease frees key whoever holds it; the holder's lease then fails
// its next Extend, Check or write with ErrNotHeld. It reports whether key
// was held. Use it for operator action, not in normal flow.
func (s *Service) ForceRelease(ctx context.Context, key string) (bool, error) {
	if s == nil {
		return false, opError("force release", key, invalid("service", "must not be nil"))
	}
	held, err := s.p.ForceRelease(ctx, s.prefix+key)
	if err != nil {
		return false, opError("force release", key, err)
	}
	if held {
		s.events.emit(Event{Type: ForceReleased, Key: key})
	}
	return held, nil
}

// Stats are a Service's counters, like database/sql's DBStats.
type Stats struct {
	Open          int    // leases handed out and not yet ended here
	AutoRenewing  int    // of those, how many renew themselves
	Acquired      uint64 // acquires that succeeded (Restore included)
	AcquireFailed uint64 // acquires that returned an error
	Lost          uint64 // leases that lapsed or were found taken over
	// WaitDuration is the total time spent in acquires. A TryAcquire on a
	// provider.LocalClock (memprovider), which does not wait, adds
	// nothing: the Service reads no clock for it.
	WaitDuration time.Duration
}

type counters struct {
	acquired, failed, lost atomic.Uint64
	waited                 atomic.Int64
}

// Stats returns the Service's counters (the zero Stats for a nil
// Service).
func (s *Service) Stats() Stats {
	if s == nil {
		return Stats{}
	}
	st := Stats{
		Acquired:      s.stats.acquired.Load(),
		AcquireFailed: s.stats.failed.Load(),
		WaitDuration:  time.Duration(s.stats.waited.Load()),
	}
	for _, l := range s.open() {
		l.settle() // count a lease that lapsed without a timer to see it
		st.Open++
		if l.AutoRenewing() {
			st.AutoRenewing++
		}
	}
	st.Lost = s.stats.lost.Load()
	return st
}

// open returns the leases this Service has open.
func (s *Service) open() []*Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Lease
	for l := s.leases; l != nil; l = l.next {
		out = append(out, l)
	}
	return out
}

// ReleaseAll releases every lease this Service has open, as Release on
// each would, and reports how many it freed. The Service stays open. A
// lease that had already lapsed is not counted and is no error; other
// failures are joined in the error.
func (s *Service) ReleaseAll(ctx context.Context) (int, error) {
	if s == nil {
		return 0, opError("release all", "", invalid("service", "must not be nil"))
	}
	n := 0
	var errs []error
	for _, l := range s.open() {
		err := l.Release(ctx)
		switch {
		case err == nil:
			n++
		case !errors.Is(err, ErrNotHeld):
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// Close ends the acquires still waiting (they return ErrClosed) and waits
// for those in flight, then releases every lease this Service still has
// open, stops their renewals and makes later acquires fail with ErrClosed. It does not close
// the provider. Close is idempotent; it returns nil after the first call.
// Closing a nil Service returns an error matching ErrInvalid.
func (s *Service) Close() error {
	if s == nil {
		return opError("close", "", invalid("service", "must not be nil"))
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	// End the waits in flight and wait for them, so that a key handed to a
	// waiter as the leases below are released is given back while the
	// provider is still open, before Close returns.
	s.endLife()
	s.inflight.close()
	for _, l := range s.open() {
		_ = l.Close() // a lapsed lease reports ErrNotHeld; nothing to do about it here
	}
	return nil
}

// enter registers an acquire in flight, unless the Service is closed; the
// acquire calls s.inflight.leave when it is done.
func (s *Service) enter() bool { return s.inflight.enter() }

// inflight counts the acquires that may still mint a lease, so that Close
// can wait for them. Entering and leaving are one atomic add each (a mutex
// and a sync.WaitGroup cost several times that on an uncontended acquire).
type inflight struct {
	n       atomic.Int64  // the acquires in flight, plus closing once close began
	drained chan struct{} // closed when close has begun and none is in flight
	once    sync.Once     // closes drained
}

// closing is added to inflight.n by close: far above any count in flight.
const closing = 1 << 62

// enter registers an acquire, unless close has begun.
func (f *inflight) enter() bool {
	if f.n.Add(1) >= closing {
		f.leave()
		return false
	}
	return true
}

// leave ends an acquire that enter registered (or that it refused).
func (f *inflight) leave() {
	if f.n.Add(-1) == closing {
		f.drain()
	}
}

// close makes later enters fail and waits for the acquires in flight.
// It is called once.
func (f *inflight) close() {
	if f.n.Add(closing) == closing {
		f.drain()
	}
	<-f.drained
}

func (f *inflight) drain() { f.once.Do(func() { close(f.drained) }) }

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track adds l to the open leases, unless the Service is closed. mayShare
// says that l was given a hold that an open lease may already have
// (WithReentrant, Restore): those found are marked with l, so that
// releasing one ends the others (endLocal). With a subscriber, the lease's
// expiry timer starts now, for its Lost event (Subscribe starts those of
// the leases already open).
func (s *Service) track(l *Lease, mayShare bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if mayShare {
		for o := s.leases; o != nil; o = o.next {
			if o.key == l.key && o.token == l.token {
				o.shared, l.shared = true, true
			}
		}
	}
	l.tracked = true
	// l.prev and l.next are nil (a lease is tracked once), and pointers
	// are written only where they change: each write costs a GC write
	// barrier while a collection runs, which an allocating loop of
	// acquires keeps running much of the time.
	if s.leases != nil {
		l.next = s.leases
		s.leases.prev = l
	}
	s.leases = l
	if s.events.subs.Load() != nil {
		l.arm()
	}
	return true
}

// forget removes l from the open leases and reports whether it was marked
// shared (see track).
func (s *Service) forget(l *Lease) (shared bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !l.tracked {
		return false
	}
	prev, next := l.prev, l.next
	if prev != nil {
		prev.next = next
		l.prev = nil
	} else {
		s.leases = next
	}
	if next != nil {
		next.prev = prev
		l.next = nil
	}
	l.tracked = false // (pointers written only where they change: see track)
	return l.shared
}

// armAll starts the expiry timers of the open leases (see track).
func (s *Service) armAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := s.leases; l != nil; l = l.next {
		l.arm()
	}
}

// endLocal ends, without a store call, this Service's leases on key with
// token: the store no longer has them (an owner or admin release).
func (s *Service) endLocal(key, token string, cause error) {
	for _, l := range s.open() {
		if l.key == key && l.token == token {
			if done, _ := l.finish(false); done {
				l.end(cause)
				s.forget(l)
			}
		}
	}
}

// ownerOf returns the owner part of a token "owner/instance/seq" (also of
// "owner//seq", and of the older tokens with a UUID and a decimal seq).
func ownerOf(token string) string {
	for range 2 {
		i := strings.LastIndexByte(token, '/')
		if i < 0 {
			return ""
		}
		token = token[:i]
	}
	return token
}
