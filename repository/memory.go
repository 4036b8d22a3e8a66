package repository

import (
	"context"
	"fmt"
	"sync"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
)

var _ Repository[persistent.Persistent] = (*Memory[persistent.Persistent])(nil)

// ErrForeignProof reports a proof minted over another lock store than the
// one a Memory repository is bound to: another provider, or another
// Namespace (see locked.Store). Its lease may well hold its key, but in
// another store, where another holder of the same key can hold it at the
// same time, so its fence says nothing about this repository's records.
// It matches locked.ErrNotHeld; nothing was written.
var ErrForeignProof = fmt.Errorf("repository: proof from another lock store: %w", locked.ErrNotHeld)

// Memory is an in-memory Repository. Entities are stored encoded by a
// Codec (JSON by default, see WithCodec), so Find returns a private copy
// and callers never share memory with the store or with each other. Create
// one with NewMemory; the zero value is not usable.
//
// # Records and keys
//
// Records are filed under the entity's lock key, "kind:id", so a
// Memory[persistent.Persistent] holding several kinds keeps them apart: a
// proof on user:1 never touches order:1. Find and DeleteByID compute the key
// from T's kind; for an interface type T, which has no kind, they fail with
// an error matching locked.ErrInvalid (use one repository per concrete type
// to read).
//
// # One lock store
//
// Fences are comparable only within one lock store, and two stores can
// each grant the same key at once, so a Memory accepts proofs from one
// lock store only (locked.Store: a provider and a Namespace). It is bound
// to the store given by WithLockStore, or else to the store of the first
// proof that passes Check in a Save or Delete. A proof from any other store
// fails with ErrForeignProof (which matches locked.ErrNotHeld), and nothing
// is written.
type Memory[T persistent.Persistent] struct {
	codec Codec
	bad   error // the first invalid option; every method returns it

	mu sync.RWMutex
	// records and store are guarded by mu.
	records map[string]record // by lock key, "kind:id"
	store   locked.Store      // the lock store of accepted proofs; zero until bound
}

type record struct {
	data  []byte
	fence uint64 // fence of the last write under a proof; 0 after Insert
}

// A MemoryOption configures a Memory repository.
type MemoryOption func(*memoryOptions)

type memoryOptions struct {
	codec Codec
	store locked.Store
	bad   error
}

func (o *memoryOptions) reject(err error) {
	if o.bad == nil {
		o.bad = fmt.Errorf("repository: new memory: %w", err)
	}
}

// WithCodec sets the codec that stores entities; it must not be nil.
// Default JSON, which stores T's exported fields only: an entity that keeps
// its state in unexported fields needs Binary or Funcs (Insert and Save
// refuse an entity that does not survive its codec, with ErrCodec).
func WithCodec(c Codec) MemoryOption {
	return func(o *memoryOptions) {
		if c == nil {
			o.reject(fmt.Errorf("%w: codec must not be nil", locked.ErrInvalid))
			return
		}
		o.codec = c
	}
}

// WithLockStore binds the repository to one lock store from the start,
// usually the Service's: WithLockStore(svc.Store()). It must not be the
// zero Store. Default: the repository binds to the store of the first proof
// that passes Check in a Save or Delete.
func WithLockStore(s locked.Store) MemoryOption {
	return func(o *memoryOptions) {
		if s == (locked.Store{}) {
			o.reject(fmt.Errorf("%w: lock store must not be the zero Store", locked.ErrInvalid))
			return
		}
		o.store = s
	}
}

// NewMemory returns an empty in-memory repository. With no options it
// stores JSON and binds to the lock store of the first proof it accepts. An
// invalid option makes every method return an error matching
// locked.ErrInvalid.
func NewMemory[T persistent.Persistent](opts ...MemoryOption) *Memory[T] {
	o := memoryOptions{codec: JSON}
	for _, opt := range opts {
		opt(&o)
	}
	return &Memory[T]{codec: o.codec, bad: o.bad, store: o.store, records: make(map[string]record)}
}

// Find implements Repository.
func (m *Memory[T]) Find(ctx context.Context, id string) (T, error) {
	var zero T
	key, err := m.keyFor("find", id)
	if err != nil {
		return zero, err
	}
	if err := ctx.Err(); err != nil {
		return zero, idError("find", id, err)
	}
	m.mu.RLock()
	rec, ok := m.records[key]
	m.mu.RUnlock()
	if !ok {
		return zero, idError("find", id, ErrNotFound)
	}
	e, err := Decode[T](m.codec, rec.data)
	if err != nil {
		return zero, idError("find", id, err)
	}
	return e, nil
}

// keyFor returns the record key of the entity with the ID.
func (m *Memory[T]) keyFor(op, id string) (string, error) {
	if m.bad != nil {
		return "", m.bad
	}
	key, err := persistent.KeyFor[T](id)
	if err != nil {
		return "", fmt.Errorf("repository: %s: %w: %w", op, locked.ErrInvalid, err)
	}
	return key, nil
}

// Insert implements Repository. It returns an error matching ErrCodec if e
// does not survive the repository's codec.
func (m *Memory[T]) Insert(ctx context.Context, e T) error {
	if m.bad != nil {
		return m.bad
	}
	key, err := persistent.KeyOf(e)
	if err != nil {
		return fmt.Errorf("repository: insert: %w: %w", locked.ErrInvalid, err)
	}
	id := e.ID()
	if err := ctx.Err(); err != nil {
		return idError("insert", id, err)
	}
	data, err := Encode(m.codec, e)
	if err != nil {
		return idError("insert", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.records[key]; ok {
		return idError("insert", id, ErrExists)
	}
	m.records[key] = record{data: data}
	return nil
}

// Save implements Repository. The proof is checked while the repository is
// locked, so no read can fall between the check and the write: a holder
// that loses its lease just after the check is linearised before the next
// holder's read. A proof from another lock store fails with
// ErrForeignProof, and an entity that does not survive the codec with
// ErrCodec.
func (m *Memory[T]) Save(ctx context.Context, l *locked.Locked[T]) error {
	if err := m.precheck(ctx, "save", l); err != nil {
		return err
	}
	data, err := Encode(m.codec, l.Entity())
	if err != nil {
		return idError("save", l.Entity().ID(), err)
	}
	return m.write(ctx, "save", l, data)
}

// Delete implements Repository, with the checks of Save.
func (m *Memory[T]) Delete(ctx context.Context, l *locked.Locked[T]) error {
	if err := m.precheck(ctx, "delete", l); err != nil {
		return err
	}
	return m.write(ctx, "delete", l, nil)
}

// precheck rejects, before any encoding, what needs neither the store nor
// the records: a bad option, an ended ctx, and a proof that fails
// CheckLocal (zero, ended, or whose entity changed identity).
func (m *Memory[T]) precheck(ctx context.Context, op string, l *locked.Locked[T]) error {
	if m.bad != nil {
		return m.bad
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("repository: %s: %w", op, err)
	}
	if err := l.CheckLocal(); err != nil {
		return fmt.Errorf("repository: %s: %w", op, err)
	}
	return nil
}

// write checks the proof's lock store, the proof and its fence against the
// record and stores data (or deletes the record, for nil data), all under
// mu. The first proof that passes binds an unbound repository to its store.
func (m *Memory[T]) write(ctx context.Context, op string, l *locked.Locked[T], data []byte) error {
	id := l.Entity().ID()
	m.mu.Lock()
	defer m.mu.Unlock()
	store := l.Lease().Store()
	if m.store != (locked.Store{}) && store != m.store {
		return idError(op, id, fmt.Errorf("%w (the proof's is %v, the repository's %v)", ErrForeignProof, store, m.store))
	}
	if err := l.Check(ctx); err != nil {
		return fmt.Errorf("repository: %s: %w", op, err)
	}
	m.store = store
	key := l.Key() // the entity's key: Check compared them
	rec, ok := m.records[key]
	switch {
	case !ok:
		return idError(op, id, ErrNotFound)
	case l.Fence() < rec.fence:
		return idError(op, id, ErrStale)
	case data == nil:
		delete(m.records, key)
	default:
		m.records[key] = record{data: data, fence: l.Fence()}
	}
	return nil
}

// DeleteByID implements Repository.
func (m *Memory[T]) DeleteByID(ctx context.Context, id string) error {
	key, err := m.keyFor("delete", id)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return idError("delete", id, err)
	}
	m.mu.Lock()
	delete(m.records, key)
	m.mu.Unlock()
	return nil
}

// Len returns the number of stored entities.
func (m *Memory[T]) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.records)
}
