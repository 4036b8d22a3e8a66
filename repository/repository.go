// Package repository stores entities so that reads are free and writes of an
// existing entity need proof of its lock.
//
// Repository is the contract; NewMemory is an in-memory implementation, and
// repositorytest is the conformance suite every implementation must pass.
// Save and Delete take *locked.Locked[T], so calling them without a lock
// does not compile; at run time they reject a zero, closed, lapsed or lost
// proof, and a proof whose fence is older than the last one written, so a
// holder that paused past its lease cannot overwrite the next holder's work.
package repository

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
)

var (
	// ErrNotFound: no entity has the ID.
	ErrNotFound = errors.New("repository: not found")

	// ErrExists: Insert found an entity with the same ID.
	ErrExists = errors.New("repository: already exists")

	// ErrStale: the proof's fence is older than the fence of the last write,
	// so a newer holder has written since this proof was minted. It also
	// matches locked.ErrNotHeld.
	ErrStale = fmt.Errorf("repository: stale fence: %w", locked.ErrNotHeld)
)

// Repository stores entities of type T by ID.
type Repository[T persistent.Persistent] interface {
	// Find returns the entity with the ID, or ErrNotFound. It needs no lock;
	// to modify the entity, lock it first with locked.Load.
	Find(ctx context.Context, id string) (T, error)

	// Insert stores a new entity; it returns ErrExists if the ID is taken.
	// A new entity needs no lock: nobody else can hold a proof on it yet.
	Insert(ctx context.Context, e T) error

	// Save writes the locked entity over its stored version. It returns an
	// error matching locked.ErrNotHeld (ErrStale for an old fence) for a
	// proof that does not hold the lock, and ErrNotFound if the entity was
	// deleted; nothing is written then.
	Save(ctx context.Context, l *locked.Locked[T]) error

	// Delete removes the locked entity, with the checks of Save.
	Delete(ctx context.Context, l *locked.Locked[T]) error

	// DeleteByID removes the entity with the ID if there is one. It is
	// idempotent and needs no lock, for clean-up paths only.
	DeleteByID(ctx context.Context, id string) error

	// All yields every stored entity, in ID order (the byte order of the
	// IDs), without a lock (JustScale's find): like Find it only reads; to
	// modify an entity, lock it with locked.Load. Each entity is a private
	// copy read as of when the iteration reaches it, not one snapshot of
	// the whole store: an entity stored for the whole iteration is yielded
	// exactly once, one deleted or inserted meanwhile may or may not be,
	// and no ID is yielded twice. A deleted entity is never yielded, even
	// if the store keeps a tombstone for it. An error (ctx ended, the store
	// failed, an entity does not decode) is yielded with the zero entity
	// and ends the iteration. Breaking out of the loop stops the reading;
	// the loop body may call the repository and lock entities.
	All(ctx context.Context) iter.Seq2[T, error]
}

func idError(op, id string, err error) error {
	return fmt.Errorf("repository: %s %q: %w", op, id, err)
}
