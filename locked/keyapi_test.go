package locked_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider"
)

func TestNewRejectsBadOptions(t *testing.T) {
	p := newProvider(t)
	for _, tc := range []struct {
		name string
		opts locked.Options
		arg  string
	}{
		{"negative MaxRetries", locked.Options{MaxRetries: -1}, "MaxRetries"},
		{"negative RetryDelay", locked.Options{RetryDelay: -time.Second}, "RetryDelay"},
		{"TTL above MaxTTL", locked.Options{TTL: locked.MaxTTL + 1}, "TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := locked.New(p, &tc.opts)
			require.ErrorIs(t, err, locked.ErrInvalid)
			require.Nil(t, s)
			var argErr *locked.ArgError
			require.ErrorAs(t, err, &argErr, "the provider's ArgError, through locked alone")
			require.Equal(t, tc.arg, argErr.Arg)
		})
	}
}

func TestBadCallOptionsChangeNothing(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	for _, tc := range []struct {
		name string
		opt  locked.CallOption
		arg  string
	}{
		{"empty owner", locked.WithOwner(""), "owner"},
		{"negative retries", locked.WithMaxRetries(-1, 0), "maxRetries"},
		{"negative retry delay", locked.WithMaxRetries(1, -time.Second), "retryDelay"},
		{"TTL above MaxTTL", locked.WithTTL(locked.MaxTTL + 1), "ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := uniqueKey(t, "k")
			for _, call := range []func() error{
				func() error { _, err := s.Acquire(t.Context(), key, tc.opt); return err },
				func() error { _, err := s.TryAcquire(t.Context(), key, tc.opt); return err },
				func() error { _, err := s.AcquireAll(t.Context(), []string{key}, tc.opt); return err },
				func() error { return s.Run(t.Context(), key, func(context.Context) error { return nil }, tc.opt) },
			} {
				err := call()
				require.ErrorIs(t, err, locked.ErrInvalid)
				var argErr *locked.ArgError
				require.ErrorAs(t, err, &argErr)
				require.Equal(t, tc.arg, argErr.Arg)
				require.False(t, p.IsLocked(key), "nothing taken")
			}
			require.Equal(t, uint64(0), s.Stats().Acquired)
		})
	}
}

func TestErrorsDistinct(t *testing.T) {
	require.ErrorIs(t, locked.ErrExpired, locked.ErrNotHeld)
	require.ErrorIs(t, locked.ErrNotOwner, locked.ErrNotHeld)
	require.NotErrorIs(t, locked.ErrExpired, locked.ErrNotOwner)
	require.NotErrorIs(t, locked.ErrNotOwner, locked.ErrExpired)
	require.ErrorIs(t, locked.ErrNested, locked.ErrNotAcquired)
	require.NotErrorIs(t, locked.ErrNested, locked.ErrNotHeld)
}

// TestOnePrefixPerLayer: errors that pass through several layers of this
// package (Run → Acquire, Do → release) carry "locked:" once.
func TestOnePrefixPerLayer(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, &locked.Options{Timeout: time.Millisecond})
	key := uniqueKey(t, "k")
	mustAcquire(t, s, key)
	errs := map[string]error{}
	errs["Run"] = s.Run(t.Context(), key, func(context.Context) error { return nil })
	_, errs["Do"] = locked.Do(t.Context(), s, key, func(context.Context) (int, error) { return 0, nil })
	errs["RunAll"] = s.RunAll(t.Context(), []string{key, key + "2"}, func(context.Context) error { return nil })
	errs["TryRun"] = s.TryRun(t.Context(), key, func(context.Context) error { return nil })
	var nilS *locked.Service
	_, errs["nil Service"] = nilS.Acquire(t.Context(), key)
	for name, err := range errs {
		require.Error(t, err, name)
		msg := err.Error()
		assert.Equal(t, 1, strings.Count(msg, "locked:"), "%s: %s", name, msg)
		assert.Equal(t, 1, strings.Count(msg, "lockproof:"), "%s: %s", name, msg)
	}
}

// plain hides memprovider's List: a provider without provider.Lister.
type plain struct{ provider.Provider }

func TestAdminNeedsLister(t *testing.T) {
	p := newProvider(t)
	s := newService(t, plain{p}, nil)
	key := uniqueKey(t, "k")
	mustAcquire(t, s, key)
	_, err := s.Locks(t.Context())
	require.ErrorIs(t, err, errors.ErrUnsupported)
	n, err := s.ReleaseOwner(t.Context(), s.Owner())
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.Zero(t, n)
	n, err = s.ForceReleaseAll(t.Context())
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.Zero(t, n)
	require.True(t, p.IsLocked(key), "nothing released")
	// Release by key and owner needs no listing.
	require.NoError(t, s.Release(t.Context(), key, s.Owner()))
	require.False(t, p.IsLocked(key))
}

// TestNoListenerCostsNothing: with no subscriber, or after the last one
// left, an acquire and release allocate no more than a Service that never
// had one.
func TestNoListenerCostsNothing(t *testing.T) {
	p := newProvider(t)
	never := newService(t, p, nil)
	left := newService(t, p, nil)
	unsubscribe := left.Subscribe(func(locked.Event) {})
	unsubscribe()
	cycle := func(s *locked.Service, key string) func() {
		return func() {
			l, err := s.TryAcquire(context.Background(), key)
			if err != nil {
				panic(err)
			}
			if err := l.Release(context.Background()); err != nil {
				panic(err)
			}
		}
	}
	base := testing.AllocsPerRun(50, cycle(never, uniqueKey(t, "never")))
	after := testing.AllocsPerRun(50, cycle(left, uniqueKey(t, "left")))
	require.Equal(t, base, after)

	counted := 0
	unsubscribe = never.Subscribe(func(locked.Event) { counted++ })
	cycle(never, uniqueKey(t, "never"))()
	unsubscribe()
	require.Equal(t, 2, counted, "acquired and released were delivered while subscribed")
}

func TestSlogEventsLevels(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := newProvider(t)
	s := newService(t, p, &locked.Options{OnEvent: locked.SlogEvents(logger)})
	lost := make(chan struct{})
	// Subscribers run in order, so this one runs after the logger.
	s.Subscribe(func(e locked.Event) {
		if e.Type == locked.Lost {
			close(lost)
		}
	})
	key := uniqueKey(t, "k")
	mustAcquire(t, s, key, locked.WithTTL(20*time.Millisecond))
	_, err := s.TryAcquire(t.Context(), key)
	require.Error(t, err)
	<-lost
	out := buf.String()
	assert.Contains(t, out, `level=DEBUG msg="lockproof: acquired"`)
	assert.Contains(t, out, `level=WARN msg="lockproof: acquire failed"`)
	assert.Contains(t, out, `level=WARN msg="lockproof: lost"`)
	assert.Contains(t, out, "fence=1")
}

func TestReentrantLeasesShareTheHold(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	a := mustAcquire(t, s, key, locked.WithOwner("o"))
	b, err := s.Acquire(t.Context(), key, locked.WithOwner("o"), locked.WithReentrant())
	require.NoError(t, err)
	require.Equal(t, 2, s.Stats().Open)
	require.NoError(t, b.Release(t.Context()))
	<-a.Context().Done() // releasing either ends both here
	require.Equal(t, 0, s.Stats().Open)
	require.False(t, p.IsLocked(key))
}

func TestLeasesContextEndsWithAnyLease(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	ctx := t.Context()
	a, b := uniqueKey(t, "a"), uniqueKey(t, "b")
	set, err := s.AcquireAll(ctx, []string{a, b})
	require.NoError(t, err)
	lctx, stop := set.Context()
	defer stop()
	require.NoError(t, lctx.Err())
	_, err = s.ForceRelease(ctx, b)
	require.NoError(t, err)
	require.ErrorIs(t, set.All()[1].Check(ctx), locked.ErrNotHeld) // noticed: that lease ends
	<-lctx.Done()
	require.ErrorIs(t, context.Cause(lctx), locked.ErrNotHeld)

	err = set.Release(ctx)
	require.ErrorIs(t, err, locked.ErrNotHeld, "b had ended")
	require.False(t, p.IsLocked(a), "a was released all the same")
	require.NoError(t, set.Close(), "nothing left to close")
	var nilSet *locked.Leases
	require.NoError(t, nilSet.Close())
	require.Nil(t, nilSet.All())
}

// counting counts the grant attempts a Service makes.
type counting struct {
	provider.Provider
	tries, waits atomic.Int32
}

func (c *counting) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	c.tries.Add(1)
	return c.Provider.TryAcquire(ctx, key, token, ttl)
}

func (c *counting) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	c.waits.Add(1)
	return c.Provider.Acquire(ctx, key, token, ttl)
}

func TestMaxRetriesCountsAttempts(t *testing.T) {
	p := newProvider(t)
	holder := newService(t, p, nil)
	for _, tc := range []struct {
		name         string
		svcOpts      locked.Options
		opts         []locked.CallOption
		tries, waits int32
	}{
		{"no count: one wait", locked.Options{Timeout: time.Millisecond}, nil, 0, 1},
		{"WithMaxRetries(3)", locked.Options{}, []locked.CallOption{locked.WithMaxRetries(3, time.Millisecond)}, 1, 3},
		{"WithMaxRetries(0)", locked.Options{}, []locked.CallOption{locked.WithMaxRetries(0, 0)}, 1, 0},
		{"Options.MaxRetries", locked.Options{MaxRetries: 2, RetryDelay: time.Millisecond}, nil, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := uniqueKey(t, "k")
			mustAcquire(t, holder, key)
			c := &counting{Provider: p}
			s := newService(t, c, &tc.svcOpts)
			_, err := s.Acquire(t.Context(), key, tc.opts...)
			require.ErrorIs(t, err, locked.ErrNotAcquired)
			require.Equal(t, tc.tries, c.tries.Load(), "tries")
			require.Equal(t, tc.waits, c.waits.Load(), "waits")
		})
	}
}
