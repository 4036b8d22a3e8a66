// Package helpers has functions whose ownership facts lockcheck exports to
// the packages that call them.
package helpers

import (
	"context"

	"github.com/lockproof/lockproof/locked"
)

// CloseAll takes over the leases: it closes them.
func CloseAll(ls ...*locked.Lease) {
	for _, l := range ls {
		_ = l.Close()
	}
}

// Describe borrows the lease: it only reads it.
func Describe(l *locked.Lease) string { return l.Key() }

// Keep takes over the lease: it stores it.
func Keep(l *locked.Lease) { kept = append(kept, l) }

var kept []*locked.Lease

// MustAcquire returns a lease whose Close it has registered with cleanup,
// like a test helper registering with t.Cleanup: callers need not close it.
func MustAcquire(ctx context.Context, s *locked.Service, key string, cleanup func(func())) *locked.Lease {
	l, err := s.Acquire(ctx, key)
	if err != nil {
		panic(err)
	}
	cleanup(func() { _ = l.Close() })
	return l
}

// Acquire returns a lease the caller must close.
func Acquire(ctx context.Context, s *locked.Service, key string) (*locked.Lease, error) {
	return s.Acquire(ctx, key)
}
