package repository

import (
	"context"
	"fmt"
	"iter"
	"slices"
)

// All implements Repository: it yields every stored entity in ID order
// (lock-key order, "kind:id", which is ID order for one kind), without a
// lock (JustScale's find). Each is a private copy, decoded as Find
// decodes, as of when All reaches it. Keys are taken when iteration
// starts; an entity deleted since is skipped, one inserted since is not
// yielded. A decode error is yielded with the zero entity and ends the
// iteration; so does ctx ending (checked before the first entity too).
func (m *Memory[T]) All(ctx context.Context) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if m.bad != nil {
			yield(zero, m.bad)
			return
		}
		if err := ctx.Err(); err != nil {
			yield(zero, fmt.Errorf("repository: all: %w", err))
			return
		}
		m.mu.RLock()
		keys := make([]string, 0, len(m.records))
		for key := range m.records {
			keys = append(keys, key)
		}
		m.mu.RUnlock()
		slices.Sort(keys)
		for _, key := range keys {
			if err := ctx.Err(); err != nil {
				yield(zero, idError("all", key, err))
				return
			}
			m.mu.RLock()
			rec, ok := m.records[key]
			m.mu.RUnlock()
			if !ok {
				continue // deleted since the keys were taken
			}
			e, err := Decode[T](m.codec, rec.data)
			if err != nil {
				yield(zero, idError("all", key, err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}
