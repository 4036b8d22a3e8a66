package locked

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Mutex is a handle on one plain key with fixed call options, the shape of
// Verrou's and daiso's createLock: make it once, then Acquire, Release,
// ExtendTo, Run or ForceRelease it without naming the key again. It is
// sugar over the Service: every method is the Service's call of the same
// name on Key. A Mutex holds at most one lease at a time, which Release
// releases; it is safe for concurrent use.
type Mutex struct {
	s    *Service
	key  string
	opts []CallOption

	mu sync.Mutex
	// lease is guarded by mu.
	lease *Lease // the current lease; nil when not held through this Mutex
}

// Mutex returns a handle on key whose calls use opts (later options given
// to a call override them). It does not contact the store.
func (s *Service) Mutex(key string, opts ...CallOption) *Mutex {
	return &Mutex{s: s, key: key, opts: opts}
}

// Key returns the Mutex's key.
func (m *Mutex) Key() string { return m.key }

func (m *Mutex) with(opts []CallOption) []CallOption {
	return append(append([]CallOption(nil), m.opts...), opts...)
}

// Acquire takes the key as Service.Acquire does and keeps the lease.
func (m *Mutex) Acquire(ctx context.Context, opts ...CallOption) error {
	return m.take(m.s.Acquire(ctx, m.key, m.with(opts)...))
}

// TryAcquire takes the key as Service.TryAcquire does and keeps the lease.
func (m *Mutex) TryAcquire(ctx context.Context, opts ...CallOption) error {
	return m.take(m.s.TryAcquire(ctx, m.key, m.with(opts)...))
}

func (m *Mutex) take(l *Lease, err error) error {
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.lease = l
	m.mu.Unlock()
	return nil
}

// Lease returns the current lease (nil if the Mutex holds none), for its
// accessors and Context.
func (m *Mutex) Lease() *Lease {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lease
}

// Release releases the current lease (Lease.Release). Without one it
// returns an error matching ErrNotHeld.
func (m *Mutex) Release(ctx context.Context) error {
	m.mu.Lock()
	l := m.lease
	m.lease = nil
	m.mu.Unlock()
	if l == nil {
		return opError("release", m.key, fmt.Errorf("%w: the Mutex holds no lease", ErrNotHeld))
	}
	return l.Release(ctx)
}

// ExtendTo sets the current lease's remaining TTL (Lease.ExtendTo).
func (m *Mutex) ExtendTo(ctx context.Context, ttl time.Duration) error {
	return m.Lease().ExtendTo(ctx, ttl)
}

// ExtendBy adds to the current lease's TTL (Lease.ExtendBy).
func (m *Mutex) ExtendBy(ctx context.Context, d time.Duration) error {
	return m.Lease().ExtendBy(ctx, d)
}

// Run holds the key while fn runs (Service.Run); it does not use the
// Mutex's current lease.
func (m *Mutex) Run(ctx context.Context, fn func(ctx context.Context) error, opts ...CallOption) error {
	return m.s.Run(ctx, m.key, fn, m.with(opts)...)
}

// State reports who holds the key (Service.State).
func (m *Mutex) State(ctx context.Context) (State, error) { return m.s.State(ctx, m.key) }

// ForceRelease frees the key whoever holds it (Service.ForceRelease).
func (m *Mutex) ForceRelease(ctx context.Context) (bool, error) {
	return m.s.ForceRelease(ctx, m.key)
}

// Locker returns the Mutex as a sync.Locker, for code written against that
// interface. Lock waits as long as it takes (no Service timeout) and panics
// if the acquire fails otherwise (the Service closed, the store
// unreachable); Unlock panics if the Mutex holds no lease, like
// sync.Mutex, and otherwise cannot report a failed release (an expired
// lease, an unreachable store): use Acquire and Release when those errors
// matter, and Subscribe to see Lost events.
func (m *Mutex) Locker() sync.Locker { return locker{m} }

type locker struct{ m *Mutex }

func (l locker) Lock() {
	if err := l.m.Acquire(context.Background(), WithNoTimeout()); err != nil {
		panic(fmt.Sprintf("locked: Locker.Lock: %v", err))
	}
}

func (l locker) Unlock() {
	l.m.mu.Lock()
	held := l.m.lease != nil
	l.m.mu.Unlock()
	if !held {
		panic("locked: Locker.Unlock of an unlocked Mutex")
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.m.s.timeout)
	defer cancel()
	_ = l.m.Release(ctx) // see Locker: a sync.Locker cannot report it
}
