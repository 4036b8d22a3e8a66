package memprovider

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/provider"
)

// requireWithin fails unless before ≤ at ≤ after (monotonic readings).
func requireWithin(t *testing.T, at, before, after time.Time, what string) {
	t.Helper()
	require.False(t, at.Before(before), "%s: %v is before the call began", what, at)
	require.False(t, at.After(after), "%s: %v is after the call returned", what, at)
}

// Every grant is exact (provider.LocalClock): Expires minus the TTL is a
// clock reading taken during the call that granted it.
func TestGrantsAreExact(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	const ttl = time.Minute

	before := time.Now()
	g, err := p.TryAcquire(ctx, "k", "a", ttl)
	after := time.Now()
	require.NoError(t, err)
	requireWithin(t, g.Expires.Add(-ttl), before, after, "TryAcquire")

	before = time.Now()
	g, err = p.Extend(ctx, "k", "a", 2*ttl)
	after = time.Now()
	require.NoError(t, err)
	requireWithin(t, g.Expires.Add(-2*ttl), before, after, "Extend")

	// A waiter is granted at the release that hands it the key.
	got := make(chan provider.Grant, 1)
	go func() {
		g, err := p.Acquire(ctx, "k", "b", ttl)
		assert.NoError(t, err)
		got <- g
	}()
	waitQueued(t, p, "k", 1)
	before = time.Now()
	at, err := p.ReleaseAt(ctx, "k", "a")
	require.NoError(t, err)
	g = <-got
	after = time.Now()
	requireWithin(t, g.Expires.Add(-ttl), before, after, "Acquire (handed over)")
	assert.True(t, at.Equal(g.Expires.Add(-ttl)), "the waiter is granted at the release's reading")
}

// ReleaseAt is Release, with the reading it decided at.
func TestReleaseAt(t *testing.T) {
	p := New()
	ctx := context.Background()
	_, err := p.TryAcquire(ctx, "k", "a", time.Minute)
	require.NoError(t, err)

	before := time.Now()
	at, err := p.ReleaseAt(ctx, "k", "b")
	after := time.Now()
	require.ErrorIs(t, err, provider.ErrNotHeld, "another token")
	requireWithin(t, at, before, after, "ReleaseAt refused")
	require.True(t, p.IsLocked("k"), "a refused release changes nothing")

	before = time.Now()
	at, err = p.ReleaseAt(ctx, "k", "a")
	after = time.Now()
	require.NoError(t, err)
	requireWithin(t, at, before, after, "ReleaseAt")
	require.False(t, p.IsLocked("k"))

	for _, c := range []struct{ key, token string }{{"", "a"}, {"k", ""}} {
		at, err = p.ReleaseAt(ctx, c.key, c.token)
		require.ErrorIs(t, err, provider.ErrInvalid, "key %q token %q", c.key, c.token)
		require.True(t, at.IsZero(), "no reading for bad input")
	}

	require.NoError(t, p.Close())
	at, err = p.ReleaseAt(ctx, "k", "a")
	require.ErrorIs(t, err, provider.ErrClosed)
	require.True(t, at.IsZero(), "no reading once closed")
}

// A hold ends at its Expires, not later: a release that frees it read the
// clock before Expires, and one that finds it lapsed read it at or after.
// Short TTLs put the release on both sides of the deadline.
func TestReleaseDecidesAtExpires(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	var freed, lapsed int
	for i := range 400 {
		ttl := time.Duration(1+i%40) * time.Microsecond
		g, err := p.TryAcquire(ctx, "k", "a", ttl)
		require.NoError(t, err)
		at, err := p.ReleaseAt(ctx, "k", "a")
		switch {
		case err == nil:
			freed++
			require.True(t, at.Before(g.Expires), "freed at %v, not before Expires %v", at, g.Expires)
		default:
			lapsed++
			require.ErrorIs(t, err, provider.ErrNotHeld)
			require.False(t, at.Before(g.Expires), "found lapsed at %v, before Expires %v", at, g.Expires)
		}
	}
	t.Logf("%d freed before Expires, %d found lapsed", freed, lapsed)
}
