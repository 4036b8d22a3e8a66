// Package repository is a stub: an interface whose Save and Delete borrow
// the proof, and an implementation whose methods do too.
package repository

import (
	"context"

	"github.com/lockproof/lockproof/locked"
)

type Repository[T locked.Persistent] interface {
	Find(ctx context.Context, id string) (T, error)
	Save(ctx context.Context, l *locked.Locked[T]) error
	Delete(ctx context.Context, l *locked.Locked[T]) error
}

type Memory[T locked.Persistent] struct{ saved map[string]T }

func (m *Memory[T]) Find(ctx context.Context, id string) (T, error) { return m.saved[id], nil }

func (m *Memory[T]) Save(ctx context.Context, l *locked.Locked[T]) error {
	m.saved[l.Key()] = l.Entity()
	return nil
}
