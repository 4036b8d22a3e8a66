package repository_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/repository"
)

func TestMemoryAll(t *testing.T) {
	repo := repository.NewMemory[*counter]()
	ctx := t.Context()
	for _, id := range []string{"b", "c", "a"} {
		require.NoError(t, repo.Insert(ctx, &counter{Name: id, N: int64(len(id))}))
	}
	var ids []string
	for e, err := range repo.All(ctx) {
		require.NoError(t, err)
		ids = append(ids, e.ID())
		e.N = 99 // a private copy
	}
	require.Equal(t, []string{"a", "b", "c"}, ids)
	got, err := repo.Find(ctx, "a")
	require.NoError(t, err)
	require.Equal(t, int64(1), got.N)

	// Stopping early, and deleting while iterating.
	n := 0
	for e, err := range repo.All(ctx) {
		require.NoError(t, err)
		n++
		if e.ID() == "a" {
			require.NoError(t, repo.DeleteByID(ctx, "b"))
		}
		if e.ID() == "c" {
			break
		}
	}
	require.Equal(t, 2, n, "b was skipped")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	n = 0
	for _, err := range repo.All(cctx) {
		require.ErrorIs(t, err, context.Canceled)
		n++
	}
	require.Equal(t, 1, n, "one error, then the iteration ends")
}
