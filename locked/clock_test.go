package locked_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
)

// On a provider.LocalClock (memprovider) a TryAcquire + Release reads the
// clock only in the provider: the Service takes the grant's instant and
// the release's reading from its answers (see docs/decisions.md). These
// tests pin what that keeps: AcquiredAt, WaitDuration and ErrExpired, on
// such a provider and on one that is not (as Redis is not; plain hides
// memprovider's LocalClock as it hides its List).

// span is when one provider call ran, read around it.
type span struct{ begin, end time.Time }

// callTimer records the span of each TryAcquire and Acquire of the
// provider it wraps. It hides LocalClock; localCallTimer passes it on.
type callTimer struct {
	provider.Provider
	mu    sync.Mutex
	spans []span // guarded by mu
}

func (c *callTimer) record(begin time.Time) {
	end := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.spans = append(c.spans, span{begin, end})
}

func (c *callTimer) last(t *testing.T) span {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.NotEmpty(t, c.spans, "no acquire reached the provider")
	return c.spans[len(c.spans)-1]
}

func (c *callTimer) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	defer c.record(time.Now())
	return c.Provider.TryAcquire(ctx, key, token, ttl)
}

func (c *callTimer) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	defer c.record(time.Now())
	return c.Provider.Acquire(ctx, key, token, ttl)
}

// localCallTimer is a callTimer on memprovider that is a LocalClock too:
// it changes neither grants nor releases.
type localCallTimer struct {
	*callTimer
	mp *memprovider.Provider
}

func (c localCallTimer) ReleaseAt(ctx context.Context, key, token string) (time.Time, error) {
	return c.mp.ReleaseAt(ctx, key, token)
}

var _ provider.LocalClock = localCallTimer{}

// WaitDuration covers every provider call that the Service times, and
// AcquiredAt is read before it; a TryAcquire on a LocalClock is not timed
// (it does not wait) and is acquired at the grant's own instant.
func TestAcquireTimes(t *testing.T) {
	const ttl = time.Minute
	tests := []struct {
		name  string
		local bool // the provider is a LocalClock
		wait  bool // Acquire, else TryAcquire
	}{
		{"plain TryAcquire", false, false},
		{"plain Acquire", false, true},
		{"LocalClock TryAcquire", true, false},
		{"LocalClock Acquire", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp := newProvider(t)
			ct := &callTimer{Provider: mp}
			var p provider.Provider = ct
			if tt.local {
				p = localCallTimer{ct, mp}
			}
			s := newService(t, p, &locked.Options{TTL: ttl})
			acquire := s.TryAcquire
			if tt.wait {
				acquire = s.Acquire
			}
			key := uniqueKey(t, "k")
			before := time.Now()
			l, err := acquire(t.Context(), key)
			after := time.Now()
			require.NoError(t, err)
			defer l.Close()
			call := ct.last(t)
			waited := s.Stats().WaitDuration

			if tt.local && !tt.wait {
				assert.Zero(t, waited, "a TryAcquire on a LocalClock adds no wait")
				assert.True(t, l.AcquiredAt().Equal(l.ExpiresAt().Add(-ttl)), "acquired at the grant's instant")
				assert.False(t, l.AcquiredAt().Before(call.begin), "the grant's instant is inside the provider call")
				assert.False(t, l.AcquiredAt().After(call.end), "the grant's instant is inside the provider call")
			} else {
				assert.GreaterOrEqual(t, waited, call.end.Sub(call.begin), "the wait covers the provider call")
				assert.False(t, l.AcquiredAt().Before(before), "AcquiredAt is not before the call began")
				assert.False(t, l.AcquiredAt().After(call.begin), "AcquiredAt is read before the provider is asked")
			}
			assert.False(t, l.AcquiredAt().After(after))

			// A refused TryAcquire counts as a wait where a granted one does.
			_, err = s.TryAcquire(t.Context(), key)
			require.ErrorIs(t, err, locked.ErrNotAcquired)
			refused := ct.last(t)
			if tt.local {
				assert.Equal(t, waited, s.Stats().WaitDuration, "a refused TryAcquire on a LocalClock adds no wait")
			} else {
				assert.GreaterOrEqual(t, s.Stats().WaitDuration-waited, refused.end.Sub(refused.begin))
			}
		})
	}
}

// A lease released after its deadline reports ErrExpired, and is counted
// Lost once, whether the provider is a LocalClock (the provider's reading
// decides) or not (the Service's does).
func TestReleaseAfterDeadline(t *testing.T) {
	const ttl = 30 * time.Millisecond
	for _, local := range []bool{true, false} {
		name := map[bool]string{true: "LocalClock", false: "plain"}[local]
		t.Run(name, func(t *testing.T) {
			mp := newProvider(t)
			var p provider.Provider = plain{mp}
			if local {
				p = mp
			}
			s := newService(t, p, nil)
			key := uniqueKey(t, "k")
			l := mustAcquire(t, s, key, locked.WithTTL(ttl))
			pastDeadline(ttl)
			require.ErrorIs(t, l.Release(t.Context()), locked.ErrExpired)
			require.ErrorIs(t, context.Cause(l.Context()), locked.ErrExpired)
			assert.Equal(t, uint64(1), s.Stats().Lost)
			require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld)
			assert.Equal(t, uint64(1), s.Stats().Lost)

			// A lease released in time is not lost.
			l = mustAcquire(t, s, key)
			require.NoError(t, l.Release(t.Context()))
			assert.Equal(t, uint64(1), s.Stats().Lost)
			require.False(t, mp.IsLocked(key))
		})
	}
}

// lateClock is memprovider whose ReleaseAt reports a reading an hour late:
// only a Service that takes the release's reading from the provider sees
// a fresh lease as past its deadline.
type lateClock struct{ *memprovider.Provider }

func (c lateClock) ReleaseAt(ctx context.Context, key, token string) (time.Time, error) {
	at, err := c.Provider.ReleaseAt(ctx, key, token)
	return at.Add(time.Hour), err
}

func TestReleaseTakesTheProviderReading(t *testing.T) {
	mp := newProvider(t)
	var log eventLog
	s := newService(t, lateClock{mp}, &locked.Options{TTL: time.Minute, OnEvent: log.record})
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key)
	require.ErrorIs(t, l.Release(t.Context()), locked.ErrExpired, "past the deadline at the provider's reading")
	require.False(t, mp.IsLocked(key), "the store still had the hold, and the release freed it")
	assert.Equal(t, uint64(1), s.Stats().Lost)
	assert.Equal(t, []locked.EventType{locked.Acquired, locked.Lost, locked.Released}, log.types())
}

// The Service compares the release's reading with this lease's own
// deadline: when another Service of the same owner has extended the hold
// in the store (WithReentrant), the store frees it, yet the lease whose
// TTL ran out still reports ErrExpired.
func TestReleaseExpiredThoughTheHoldWasExtended(t *testing.T) {
	const ttl = 30 * time.Millisecond
	mp := newProvider(t)
	s1 := newService(t, mp, &locked.Options{Owner: "shared"})
	s2 := newService(t, mp, &locked.Options{Owner: "shared"})
	key := uniqueKey(t, "k")
	a := mustAcquire(t, s1, key, locked.WithTTL(ttl))
	b := mustAcquire(t, s2, key, locked.WithReentrant(), locked.WithTTL(time.Minute))
	require.Equal(t, a.Token(), b.Token(), "the re-entrant acquire shares the hold")
	pastDeadline(ttl)
	require.True(t, mp.IsLocked(key), "the store hold was extended")
	require.ErrorIs(t, a.Release(t.Context()), locked.ErrExpired)
	assert.Equal(t, uint64(1), s1.Stats().Lost)
	require.False(t, mp.IsLocked(key), "the release freed the shared hold")
}

// A release that fails before the provider reads the clock (the provider
// is closed) takes the Service's own reading: a lapsed lease is still
// counted Lost, and the store's error is what Release reports.
func TestReleaseWithoutProviderReading(t *testing.T) {
	const ttl = 30 * time.Millisecond
	mp := memprovider.New()
	s := newService(t, mp, nil)
	fresh := mustAcquire(t, s, uniqueKey(t, "fresh"))
	lapsed := mustAcquire(t, s, uniqueKey(t, "lapsed"), locked.WithTTL(ttl))
	pastDeadline(ttl)
	require.NoError(t, mp.Close())

	require.ErrorIs(t, fresh.Release(t.Context()), locked.ErrClosed)
	require.NotErrorIs(t, context.Cause(fresh.Context()), locked.ErrExpired, "a lease within its TTL ends released")
	require.ErrorIs(t, lapsed.Release(t.Context()), locked.ErrClosed)
	require.ErrorIs(t, context.Cause(lapsed.Context()), locked.ErrExpired, "the lapse is seen on the Service's clock")
	assert.Equal(t, uint64(1), s.Stats().Lost)
}

// The open leases stay a consistent list whichever end or middle leaves
// it: Stats and Close see exactly the leases not yet ended.
func TestOpenLeasesList(t *testing.T) {
	p := newProvider(t)
	s, err := locked.New(p, nil)
	require.NoError(t, err)
	leases := make([]*locked.Lease, 6)
	for i := range leases {
		leases[i] = mustAcquire(t, s, uniqueKey(t, string(rune('a'+i))))
	}
	// Newest first in the list: 5 is its head, 0 its tail.
	for n, i := range []int{3, 2, 5, 0} { // middle, its neighbour, head, tail
		require.NoError(t, leases[i].Release(t.Context()))
		require.Equal(t, len(leases)-n-1, s.Stats().Open)
	}
	require.NoError(t, s.Close())
	for i, l := range leases {
		require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld, "lease %d ended by Release or Close", i)
		require.False(t, p.IsLocked(l.Key()), "lease %d's key is free", i)
	}
}

// A lease without expiry on a LocalClock is acquired at its grant's
// instant too (its century-long TTL is taken off exactly).
func TestAcquiredAtNoExpiry(t *testing.T) {
	s := newService(t, newProvider(t), nil)
	before := time.Now()
	l := mustAcquire(t, s, uniqueKey(t, "k"), locked.WithNoExpiry())
	after := time.Now()
	require.True(t, l.NoExpiry())
	require.False(t, l.AcquiredAt().Before(before), "AcquiredAt %v before the call began", l.AcquiredAt())
	require.False(t, l.AcquiredAt().After(after), "AcquiredAt %v after the call returned", l.AcquiredAt())
}
