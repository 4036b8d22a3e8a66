// Package locked is a stub of github.com/lockproof/lockproof/locked with the
// signatures lockcheck looks at. Leases is a multi-lock result type that the
// real package does not have (yet): lockcheck must cover it by its type.
package locked

import (
	"context"
	"errors"
)

var ErrNotAcquired = errors.New("not acquired")

type Persistent interface {
	Kind() string
	ID() string
}

type Finder[T Persistent] interface {
	Find(ctx context.Context, id string) (T, error)
}

type Service struct{}

func New() (*Service, error)    { return &Service{}, nil }
func (s *Service) Close() error { return nil }

type Lease struct{ key string }

func (l *Lease) Key() string                       { return l.key }
func (l *Lease) Fence() uint64                     { return 1 }
func (l *Lease) Close() error                      { return nil }
func (l *Lease) Release(ctx context.Context) error { return nil }
func (l *Lease) Detach()                           {}
func (l *Lease) Handle() Handle                    { return Handle{Key: l.key} }

type Handle struct{ Key string }

type Option func()

func (s *Service) Acquire(ctx context.Context, key string, opts ...Option) (*Lease, error) {
	return &Lease{key: key}, nil
}
func (s *Service) TryAcquire(ctx context.Context, key string, opts ...Option) (*Lease, error) {
	return &Lease{key: key}, nil
}
func (s *Service) Restore(ctx context.Context, h Handle, opts ...Option) (*Lease, error) {
	return &Lease{key: h.Key}, nil
}

// Leases stands for a multi-lock result added later.
type Leases struct{ all []*Lease }

func (m *Leases) Leases() []*Lease { return m.all }
func (m *Leases) Close() error     { return nil }

func (s *Service) AcquireKeys(ctx context.Context, keys ...string) (*Leases, error) {
	return &Leases{}, nil
}

type Locked[T Persistent] struct {
	lease  *Lease
	entity T
}

func (l *Locked[T]) Entity() T     { return l.entity }
func (l *Locked[T]) Lease() *Lease { return l.lease }
func (l *Locked[T]) Key() string   { return l.lease.Key() }
func (l *Locked[T]) Fence() uint64 { return 1 }
func (l *Locked[T]) Close() error  { return nil }

func Acquire[T Persistent](ctx context.Context, s *Service, e T, opts ...Option) (*Locked[T], error) {
	return &Locked[T]{entity: e}, nil
}
func TryAcquire[T Persistent](ctx context.Context, s *Service, e T, opts ...Option) (*Locked[T], error) {
	return &Locked[T]{entity: e}, nil
}
func Load[T Persistent](ctx context.Context, s *Service, r Finder[T], id string, opts ...Option) (*Locked[T], error) {
	return &Locked[T]{}, nil
}
func AcquireAll[T Persistent](ctx context.Context, s *Service, es []T, opts ...Option) ([]*Locked[T], error) {
	return nil, nil
}
func LoadAll[T Persistent](ctx context.Context, s *Service, r Finder[T], ids []string, opts ...Option) ([]*Locked[T], error) {
	return nil, nil
}

// Mutex is a handle that takes locks itself: it has Acquire, so it is not
// a lock although it has Release.
type Mutex struct{ l *Lease }

func (s *Service) Mutex(key string) *Mutex         { return &Mutex{} }
func (m *Mutex) Acquire(ctx context.Context) error { return nil }
func (m *Mutex) Release(ctx context.Context) error { return nil }
func (m *Mutex) Lease() *Lease                     { return m.l }

// WithOwner acquires for a named owner, who can release by key and owner.
func WithOwner(owner string) Option { return func() {} }

func (s *Service) Release(ctx context.Context, key, owner string) error { return nil }
