package repository

import (
	"context"
	"errors"
	"iter"
	"slices"
)

// All yields every stored entity, in ID order, without a lock (JustScale's
// find): each is a private copy read by Find, as of when All reaches it.
// IDs are taken when iteration starts; an entity deleted since is skipped,
// one inserted since is not yielded. A read error is yielded with the zero
// entity and ends the iteration; so does ctx ending.
func (m *Memory[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		m.mu.RLock()
		ids := make([]string, 0, len(m.records))
		for id := range m.records {
			ids = append(ids, id)
		}
		m.mu.RUnlock()
		slices.Sort(ids)
		for _, id := range ids {
			e, err := m.Find(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}
