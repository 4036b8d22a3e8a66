package locked_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
)

// A lease's Context and expiry timer are made on first use (see
// docs/decisions.md): these tests end leases that never had them.

// pastDeadline waits until a lease taken with ttl before this call is past
// its local deadline (which is no later than the acquire's start + ttl).
func pastDeadline(ttl time.Duration) { time.Sleep(ttl + ttl/2) }

func TestLapseWithoutTimer(t *testing.T) {
	const ttl = 30 * time.Millisecond
	tests := []struct {
		name string
		end  func(*locked.Lease) error // the first call after the deadline
	}{
		{"Release", func(l *locked.Lease) error { return l.Release(context.Background()) }},
		{"Close", func(l *locked.Lease) error { return l.Close() }},
		{"Check", func(l *locked.Lease) error { return l.Check(context.Background()) }},
		{"ExtendTo", func(l *locked.Lease) error { return l.ExtendTo(context.Background(), time.Minute) }},
		{"Context", func(l *locked.Lease) error {
			ctx := l.Context()
			if ctx.Err() == nil {
				return nil
			}
			return context.Cause(ctx)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			s := newService(t, p, nil)
			key := uniqueKey(t, "k")
			l := mustAcquire(t, s, key, locked.WithTTL(ttl))
			pastDeadline(ttl)

			assert.True(t, l.Expired())
			assert.Zero(t, l.Remaining())
			require.ErrorIs(t, tt.end(l), locked.ErrExpired, "the first %s reports the lapse", tt.name)
			require.ErrorIs(t, context.Cause(l.Context()), locked.ErrExpired, "the Context ends with the lapse")
			assert.Equal(t, uint64(1), s.Stats().Lost, "the lapse is counted once")
			require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld)
			assert.Equal(t, uint64(1), s.Stats().Lost)
			assert.Equal(t, 0, s.Stats().Open)
		})
	}
}

func TestStatsCountLapseWithoutTimer(t *testing.T) {
	const ttl = 30 * time.Millisecond
	s := newService(t, newProvider(t), nil)
	l := mustAcquire(t, s, uniqueKey(t, "k"), locked.WithTTL(ttl))
	pastDeadline(ttl)
	st := s.Stats()
	assert.Equal(t, uint64(1), st.Lost)
	assert.Equal(t, 1, st.Open, "a lapsed lease stays open until released")
	require.ErrorIs(t, l.Release(t.Context()), locked.ErrExpired)
	assert.Equal(t, uint64(1), s.Stats().Lost)
}

func TestDetachAfterLapseCounts(t *testing.T) {
	const ttl = 30 * time.Millisecond
	s := newService(t, newProvider(t), nil)
	l := mustAcquire(t, s, uniqueKey(t, "k"), locked.WithTTL(ttl))
	pastDeadline(ttl)
	l.Detach()
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrExpired)
	assert.Equal(t, uint64(1), s.Stats().Lost)
	assert.Equal(t, 0, s.Stats().Open)
}

// A subscriber sees the Lost event of a lease that was open, without a
// timer, when it subscribed: Subscribe starts the timers.
func TestSubscribeSeesLapseOfOpenLease(t *testing.T) {
	s := newService(t, newProvider(t), nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key, locked.WithTTL(50*time.Millisecond))
	lost := make(chan locked.Event, 1)
	unsubscribe := s.Subscribe(func(e locked.Event) {
		if e.Type == locked.Lost {
			lost <- e
		}
	})
	defer unsubscribe()
	e := receive(t, lost, 10*time.Second, "the Lost event")
	assert.Equal(t, key, e.Key)
	assert.Equal(t, l.Token(), e.Token)
	require.ErrorIs(t, e.Err, locked.ErrExpired)
	assert.Equal(t, uint64(1), s.Stats().Lost)
	require.ErrorIs(t, l.Release(t.Context()), locked.ErrExpired)
}

// A Context taken while the lease lasts ends at the deadline by itself
// (its timer; on a machine slow enough to reach the deadline first, it is
// made already ended).
func TestContextEndsAtDeadline(t *testing.T) {
	s := newService(t, newProvider(t), nil)
	l := mustAcquire(t, s, uniqueKey(t, "k"), locked.WithTTL(50*time.Millisecond))
	ctx := l.Context()
	waitDone(t, ctx, "the lease's Context")
	require.ErrorIs(t, context.Cause(ctx), locked.ErrExpired)
	assert.Equal(t, uint64(1), s.Stats().Lost)
}

// A Context taken after Release is already done, with the release's cause.
func TestContextAfterRelease(t *testing.T) {
	s := newService(t, newProvider(t), nil)
	l := mustAcquire(t, s, uniqueKey(t, "k"))
	require.NoError(t, l.Release(t.Context()))
	ctx := l.Context()
	require.Error(t, ctx.Err())
	require.ErrorIs(t, context.Cause(ctx), locked.ErrNotHeld)
	require.NotErrorIs(t, context.Cause(ctx), locked.ErrExpired)
	assert.Zero(t, s.Stats().Lost)
}

// Nesting is seen through a Context made on demand, and the Context of a
// lease acquired under it carries both.
func TestNestedThroughLazyContext(t *testing.T) {
	s := newService(t, newProvider(t), nil)
	a, b := uniqueKey(t, "a"), uniqueKey(t, "b")
	la := mustAcquire(t, s, a)
	_, err := s.TryAcquire(la.Context(), a)
	require.ErrorIs(t, err, locked.ErrNested)
	lb, err := s.TryAcquire(la.Context(), b)
	require.NoError(t, err)
	_, err = s.TryAcquire(lb.Context(), a)
	require.ErrorIs(t, err, locked.ErrNested, "the chain of b's lease includes a's")
	require.NoError(t, la.Release(t.Context()))
	again, err := s.TryAcquire(lb.Context(), a)
	require.NoError(t, err, "a released lease no longer counts")
	require.NoError(t, again.Release(t.Context()))
	require.NoError(t, lb.Release(t.Context()))
}

func TestReentrantReleaseOfFirstEndsSecond(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	a := mustAcquire(t, s, key, locked.WithOwner("o"))
	b, err := s.Acquire(t.Context(), key, locked.WithOwner("o"), locked.WithReentrant())
	require.NoError(t, err)
	other := mustAcquire(t, s, uniqueKey(t, "other"), locked.WithOwner("o"))
	require.NoError(t, a.Release(t.Context()))
	require.ErrorIs(t, context.Cause(b.Context()), locked.ErrNotHeld, "releasing either ends both here")
	require.NoError(t, other.Check(t.Context()), "a lease on another hold stays")
	assert.Equal(t, 1, s.Stats().Open)
	require.False(t, p.IsLocked(key))
}

func TestTokenFormat(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	owner := s.Owner()
	require.Len(t, owner, 16, "the default owner is the Service's 96-bit instance ID")
	require.NotContains(t, owner, "/")

	var last uint64
	for i := range 40 {
		l := mustAcquire(t, s, uniqueKey(t, "k"+strconv.Itoa(i)))
		tok := l.Token()
		require.True(t, strings.HasPrefix(tok, owner+"//"), "the default owner's token leaves the instance out: %q", tok)
		seq, err := strconv.ParseUint(strings.TrimPrefix(tok, owner+"//"), 36, 64)
		require.NoError(t, err, "the sequence number is base 36: %q", tok)
		require.Greater(t, seq, last)
		last = seq
		assert.Equal(t, owner, l.Owner())
		assert.LessOrEqual(t, len(tok), 16+2+4)
	}

	job := mustAcquire(t, s, uniqueKey(t, "job"), locked.WithOwner("job-1"))
	parts := strings.Split(job.Token(), "/")
	require.Len(t, parts, 3, "a token for another owner names the instance: %q", job.Token())
	assert.Equal(t, []string{"job-1", owner}, parts[:2])
	assert.Equal(t, "job-1", job.Owner())

	named := newService(t, p, &locked.Options{Owner: "worker/7"})
	l := mustAcquire(t, named, uniqueKey(t, "named"))
	rest, ok := strings.CutPrefix(l.Token(), "worker/7/")
	require.True(t, ok, l.Token())
	instance, _, ok := strings.Cut(rest, "/")
	require.True(t, ok, l.Token())
	assert.Len(t, instance, 16)
	assert.NotEqual(t, owner, instance, "each Service has its own instance")
	assert.Equal(t, "worker/7", l.Owner())
}

// Holds taken with tokens of the old format ("owner/<uuid>/<decimal seq>",
// still in stores during an upgrade) report and release by owner.
func TestOldFormatTokensKeepTheirOwner(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "old")
	_, err := p.TryAcquire(t.Context(), key, "alice/3f8e2a10-6b4c-4d2e-9f00-1a2b3c4d5e6f/1207", time.Minute)
	require.NoError(t, err)
	st, err := s.State(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, "alice", st.Owner)
	assert.Equal(t, locked.HeldByOther, st.Status)
	n, err := s.ReleaseOwner(t.Context(), "alice")
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.False(t, p.IsLocked(key))
}

// A lease restored in the Service that still has the original open shares
// its hold: releasing either ends both here.
func TestRestoreInSameServiceSharesTheHold(t *testing.T) {
	for _, releaseRestored := range []bool{true, false} {
		t.Run("releaseRestored="+strconv.FormatBool(releaseRestored), func(t *testing.T) {
			p := newProvider(t)
			s := newService(t, p, nil)
			key := uniqueKey(t, "k")
			orig := mustAcquire(t, s, key)
			restored, err := s.Restore(t.Context(), orig.Handle())
			require.NoError(t, err)
			first, second := orig, restored
			if releaseRestored {
				first, second = restored, orig
			}
			require.NoError(t, first.Release(t.Context()))
			require.ErrorIs(t, context.Cause(second.Context()), locked.ErrNotHeld)
			assert.Equal(t, 0, s.Stats().Open)
			require.False(t, p.IsLocked(key))
		})
	}
}
