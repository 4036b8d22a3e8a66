package locked

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/provider"
)

// Service hands out leases on keys and proofs on entities. Create one per
// application with New and share it; it is safe for concurrent use. A
// Service does not own its provider: close the provider after the Service.
type Service struct {
	p         provider.Provider
	ttl       time.Duration
	timeout   time.Duration
	autoRenew bool
	owner     string
	prefix    string // namespace + ":" or ""
	onEvent   func(Event)
	tokenBase string        // owner + "/" + instance + "/"
	seq       atomic.Uint64 // numbers this Service's tokens

	mu sync.Mutex
	// leases and closed are guarded by mu.
	leases map[*Lease]struct{} // open leases, released by Close
	closed bool
}

// New returns a Service that takes locks from p. opts may be nil.
// It returns an error matching ErrInvalid for a nil provider or a negative
// TTL or Timeout.
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
	case o.Timeout < 0:
		return nil, invalid("Timeout", "must not be negative, got "+o.Timeout.String())
	case strings.Contains(o.Namespace, ":"):
		return nil, invalid("Namespace", "must not contain ':'")
	}
	instance := uuid.NewString()
	if o.Owner == "" {
		o.Owner = instance
	}
	s := &Service{
		p:         p,
		ttl:       cmpOr(o.TTL, DefaultTTL),
		timeout:   cmpOr(o.Timeout, DefaultTimeout),
		autoRenew: o.AutoRenew,
		owner:     o.Owner,
		onEvent:   o.OnEvent,
		tokenBase: o.Owner + "/" + instance + "/",
		leases:    make(map[*Lease]struct{}),
	}
	if o.Namespace != "" {
		s.prefix = o.Namespace + ":"
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
// Service's Timeout (or WithTimeout) and while ctx lasts. The lease must be
// released with Release or Close.
//
// Errors: ErrNotAcquired (also matching context.DeadlineExceeded or
// context.Canceled) if the wait ended first; ErrInvalid for an empty key or
// a bad option; ErrClosed after Close; ErrUnavailable if the store failed.
func (s *Service) Acquire(ctx context.Context, key string, opts ...Option) (*Lease, error) {
	return s.acquire(ctx, key, true, opts)
}

// TryAcquire takes key if it is free and returns ErrNotAcquired at once if
// it is held. Other errors as for Acquire.
func (s *Service) TryAcquire(ctx context.Context, key string, opts ...Option) (*Lease, error) {
	return s.acquire(ctx, key, false, opts)
}

func (s *Service) acquire(ctx context.Context, key string, wait bool, opts []Option) (*Lease, error) {
	if s == nil {
		return nil, invalid("service", "must not be nil")
	}
	o := callOptions{ttl: s.ttl, timeout: s.timeout, autoRenew: s.autoRenew}
	for _, opt := range opts {
		opt(&o)
	}
	if o.bad != nil {
		return nil, opError("acquire", key, o.bad)
	}
	if err := provider.CheckKey(key); err != nil {
		return nil, opError("acquire", key, err)
	}
	if s.isClosed() {
		return nil, opError("acquire", key, ErrClosed)
	}
	token := s.tokenBase + strconv.FormatUint(s.seq.Add(1), 10)
	var (
		g   provider.Grant
		err error
	)
	if wait {
		wctx, cancel := context.WithTimeout(ctx, o.timeout)
		g, err = s.p.Acquire(wctx, s.prefix+key, token, o.ttl)
		cancel()
	} else {
		g, err = s.p.TryAcquire(ctx, s.prefix+key, token, o.ttl)
	}
	if err != nil {
		return nil, opError("acquire", key, err)
	}
	l := newLease(s, key, token, g, o.ttl)
	if !s.track(l) { // closed while we waited: give it back
		_ = s.p.Release(context.WithoutCancel(ctx), s.prefix+key, token)
		l.end(ErrClosed)
		return nil, opError("acquire", key, ErrClosed)
	}
	s.emit(Event{Type: Acquired, Key: key, Fence: g.Fence, Token: token})
	if o.autoRenew {
		l.startRenewal()
	}
	return l, nil
}

// Run holds key while fn runs. fn's context ends when ctx ends or the lease
// is lost. Run returns fn's error, or the acquire error if fn did not run,
// or the release error (ErrNotHeld if the lease lapsed while fn ran). The
// lease is released even if fn panics.
func (s *Service) Run(ctx context.Context, key string, fn func(ctx context.Context) error, opts ...Option) (err error) {
	if fn == nil {
		return opError("run", key, invalid("fn", "must not be nil"))
	}
	l, err := s.Acquire(ctx, key, opts...)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := l.Close(); err == nil {
			err = rerr
		}
	}()
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(l.Context(), func() { cancel(context.Cause(l.Context())) })
	defer stop()
	return fn(rctx)
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
	Status Status
	Owner  string        // the holder's owner ID; "" when free
	Fence  uint64        // the holder's fence; 0 when free
	TTL    time.Duration // remaining time to live; 0 when free
}

// State reports who holds key now.
func (s *Service) State(ctx context.Context, key string) (State, error) {
	if s == nil {
		return State{}, invalid("service", "must not be nil")
	}
	st, err := s.p.State(ctx, s.prefix+key)
	if err != nil || !st.Held {
		return State{}, opError("state", key, err)
	}
	owner := ownerOf(st.Token)
	status := HeldByOther
	if owner == s.owner {
		status = HeldByMe
	}
	return State{Status: status, Owner: owner, Fence: st.Fence, TTL: st.TTL}, nil
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
		return false, invalid("service", "must not be nil")
	}
	held, err := s.p.ForceRelease(ctx, s.prefix+key)
	if err != nil {
		return false, opError("force release", key, err)
	}
	if held {
		s.emit(Event{Type: ForceReleased, Key: key})
	}
	return held, nil
}

// Held returns the number of leases this Service handed out that are not
// yet released.
func (s *Service) Held() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.leases)
}

// Close releases every lease this Service still has open, stops their
// renewals and makes later acquires fail with ErrClosed. It does not close
// the provider. Close is idempotent; it returns nil after the first call.
// Closing a nil Service returns an error matching ErrInvalid.
func (s *Service) Close() error {
	if s == nil {
		return invalid("service", "must not be nil")
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	open := make([]*Lease, 0, len(s.leases))
	for l := range s.leases {
		open = append(open, l)
	}
	s.mu.Unlock()
	for _, l := range open {
		_ = l.Close() // a lapsed lease reports ErrNotHeld; nothing to do about it here
	}
	return nil
}

func (s *Service) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Service) track(l *Lease) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.leases[l] = struct{}{}
	return true
}

func (s *Service) forget(l *Lease) {
	s.mu.Lock()
	delete(s.leases, l)
	s.mu.Unlock()
}

func (s *Service) emit(e Event) {
	if s.onEvent != nil {
		e.Owner = ownerOf(e.Token)
		s.onEvent(e)
	}
}

// ownerOf returns the owner part of a token "owner/instance/seq".
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
