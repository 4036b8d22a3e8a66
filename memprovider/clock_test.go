package memprovider

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/provider"
)

// The conformance suite checks provider.LocalClock's promises for
// TryAcquire, Extend and ReleaseAt (its LocalClock subtest); these are the
// cases it does not reach.

// A waiter is granted at the release that hands it the key: its Expires
// minus the TTL is that release's reading.
func TestHandoffGrantIsExact(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	const ttl = time.Minute
	_, err := p.TryAcquire(ctx, "k", "a", ttl)
	require.NoError(t, err)
	got := make(chan provider.Grant, 1)
	go func() {
		g, err := p.Acquire(ctx, "k", "b", ttl)
		assert.NoError(t, err)
		got <- g
	}()
	waitQueued(t, p, "k", 1)
	at, err := p.ReleaseAt(ctx, "k", "a")
	require.NoError(t, err)
	g := <-got
	assert.True(t, at.Equal(g.Expires.Add(-ttl)), "granted at %v, the release read %v", g.Expires.Add(-ttl), at)
}

// A closed Provider reads no clock: ReleaseAt returns the zero Time.
func TestReleaseAtClosed(t *testing.T) {
	p := New()
	ctx := context.Background()
	_, err := p.TryAcquire(ctx, "k", "a", time.Minute)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	at, err := p.ReleaseAt(ctx, "k", "a")
	require.ErrorIs(t, err, provider.ErrClosed)
	require.True(t, at.IsZero(), "no reading once closed, got %v", at)
}
