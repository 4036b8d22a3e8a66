package locked

import (
	"context"

	"github.com/lockproof/lockproof/persistent"
)

// Claimer is a Finder that can also read an entity for a new lease and
// claim it with the lease's fence in the same step, so that no proof with
// an older fence can write the entity afterwards (sqlrepo does it in one
// UPDATE … RETURNING). Load and LoadAll call Claim instead of Find when
// the Finder is a Claimer. Claim returns what Find would, or an error.
type Claimer[T persistent.Persistent] interface {
	Finder[T]
	Claim(ctx context.Context, id string, lease *Lease) (T, error)
}

// find reads the entity with the ID for lease: by Claim if r is a
// Claimer, else by Find.
func find[T persistent.Persistent](ctx context.Context, r Finder[T], id string, lease *Lease) (T, error) {
	if c, ok := r.(Claimer[T]); ok {
		return c.Claim(ctx, id, lease)
	}
	return r.Find(ctx, id)
}
