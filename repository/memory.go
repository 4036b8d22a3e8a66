package repository

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
)

var _ Repository[persistent.Persistent] = (*Memory[persistent.Persistent])(nil)

// Memory is an in-memory Repository. Entities are stored as JSON, so Find
// returns a private copy and callers never share memory with the store or
// with each other: T's exported fields are what is stored. Create one with
// NewMemory; the zero value is not usable.
type Memory[T persistent.Persistent] struct {
	mu sync.RWMutex
	// records is guarded by mu.
	records map[string]record
}

type record struct {
	data  []byte
	fence uint64 // fence of the last write under a proof; 0 after Insert
}

// NewMemory returns an empty in-memory repository.
func NewMemory[T persistent.Persistent]() *Memory[T] {
	return &Memory[T]{records: make(map[string]record)}
}

// Find implements Repository.
func (m *Memory[T]) Find(ctx context.Context, id string) (T, error) {
	var e T
	if err := ctx.Err(); err != nil {
		return e, idError("find", id, err)
	}
	m.mu.RLock()
	rec, ok := m.records[id]
	m.mu.RUnlock()
	if !ok {
		return e, idError("find", id, ErrNotFound)
	}
	if err := json.Unmarshal(rec.data, &e); err != nil {
		return e, idError("find", id, err)
	}
	return e, nil
}

// Insert implements Repository.
func (m *Memory[T]) Insert(ctx context.Context, e T) error {
	if _, err := persistent.KeyOf(e); err != nil {
		return fmt.Errorf("repository: insert: %w: %w", locked.ErrInvalid, err)
	}
	id := e.ID()
	if err := ctx.Err(); err != nil {
		return idError("insert", id, err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return idError("insert", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.records[id]; ok {
		return idError("insert", id, ErrExists)
	}
	m.records[id] = record{data: data}
	return nil
}

// Save implements Repository. The proof is checked while the repository is
// locked, so no read can fall between the check and the write: a holder
// that loses its lease just after the check is linearised before the next
// holder's read.
func (m *Memory[T]) Save(ctx context.Context, l *locked.Locked[T]) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("repository: save: %w", err)
	}
	e := l.Entity()
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("repository: save: %w", err)
	}
	return m.write(ctx, "save", l, data)
}

// Delete implements Repository, with the checks of Save.
func (m *Memory[T]) Delete(ctx context.Context, l *locked.Locked[T]) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("repository: delete: %w", err)
	}
	return m.write(ctx, "delete", l, nil)
}

// write checks the proof and its fence against the record and stores data
// (or deletes the record, for nil data), all under mu.
func (m *Memory[T]) write(ctx context.Context, op string, l *locked.Locked[T], data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := l.Check(ctx); err != nil {
		return fmt.Errorf("repository: %s: %w", op, err)
	}
	id, fence := l.Entity().ID(), l.Fence()
	rec, ok := m.records[id]
	switch {
	case !ok:
		return idError(op, id, ErrNotFound)
	case fence < rec.fence:
		return idError(op, id, ErrStale)
	case data == nil:
		delete(m.records, id)
	default:
		m.records[id] = record{data: data, fence: fence}
	}
	return nil
}

// DeleteByID implements Repository.
func (m *Memory[T]) DeleteByID(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("repository: delete: %w: %w: empty ID", locked.ErrInvalid, persistent.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return idError("delete", id, err)
	}
	m.mu.Lock()
	delete(m.records, id)
	m.mu.Unlock()
	return nil
}

// Len returns the number of stored entities.
func (m *Memory[T]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.records)
}
