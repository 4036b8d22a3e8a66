package redisrepo

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/repository"
)

// All implements repository.Repository: it yields every stored entity of
// T in this repository's namespace, in ID order (byte order), without a
// lock (JustScale's find). It lists the records first
// (redisprovider.Provider.KeysWith, a SCAN: linear in the keys under the
// provider's prefix), then reads each with Find, as of when All reaches it:
// a record deleted since is skipped, one inserted since is not yielded. A
// listing or read error is yielded with the zero entity and ends the
// iteration.
func (r *Repository[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		kind := r.prefix + persistent.KindOf[T]() + ":"
		keys, err := r.p.KeysWith(ctx, kind, "entity")
		if err != nil {
			yield(zero, fmt.Errorf("redisrepo: all: %w", err)) // already ErrUnavailable or ErrClosed
			return
		}
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = strings.TrimPrefix(k, kind)
		}
		slices.Sort(ids)
		for _, id := range ids {
			e, err := r.Find(ctx, id)
			if errors.Is(err, repository.ErrNotFound) {
				continue
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}
