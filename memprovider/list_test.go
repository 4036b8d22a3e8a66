package memprovider

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/provider"
)

func TestList(t *testing.T) {
	p := New()
	t.Cleanup(func() { _ = p.Close() })
	ctx := t.Context()
	for _, k := range []string{"ns:a", "ns:b", "other:c", "ns:lapsed", "ns:freed"} {
		ttl := time.Minute
		if k == "ns:lapsed" {
			ttl = time.Millisecond
		}
		_, err := p.TryAcquire(ctx, k, "tok-"+k, ttl)
		require.NoError(t, err)
	}
	require.NoError(t, p.Release(ctx, "ns:freed", "tok-ns:freed"))
	require.Eventually(t, func() bool { return !p.IsLocked("ns:lapsed") }, 10*time.Second, time.Millisecond)

	got, err := p.List(ctx, "ns:")
	require.NoError(t, err)
	slices.SortFunc(got, func(a, b provider.Entry) int { return strings.Compare(a.Key, b.Key) })
	require.Len(t, got, 2)
	for i, k := range []string{"ns:a", "ns:b"} {
		require.Equal(t, k, got[i].Key)
		require.True(t, got[i].State.Held)
		require.Equal(t, "tok-"+k, got[i].State.Token)
		require.Positive(t, got[i].State.Fence)
		require.Greater(t, got[i].State.TTL, time.Duration(0))
		require.LessOrEqual(t, got[i].State.TTL, time.Minute)
	}
	all, err := p.List(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 3)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = p.List(cctx, "")
	require.ErrorIs(t, err, provider.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)

	require.NoError(t, p.Close())
	_, err = p.List(ctx, "")
	require.ErrorIs(t, err, provider.ErrClosed)
}
