package locked_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
)

// renewTTL is the TTL of auto-renewed leases: renewal runs every third of
// it, so a lease only lapses if renewal stalls for two thirds of it.
const renewTTL = 300 * time.Millisecond

func TestLeaseAccessors(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, &locked.Options{Owner: "alice"})
	key := uniqueKey(t, "k")

	l1 := mustAcquire(t, s, key)
	assert.Equal(t, key, l1.Key())
	assert.NotEmpty(t, l1.Token())
	assert.Equal(t, "alice", l1.Owner())
	assert.NotZero(t, l1.Fence())
	assert.Equal(t, locked.Handle{Key: key, Token: l1.Token(), Fence: l1.Fence()}, l1.Handle())

	other := mustAcquire(t, s, uniqueKey(t, "other"))
	assert.NotEqual(t, l1.Token(), other.Token(), "tokens are unique per lease")

	require.NoError(t, l1.Release(t.Context()))
	l2 := mustAcquire(t, s, key)
	assert.NotEqual(t, l1.Token(), l2.Token(), "tokens are unique per lease")
	assert.Greater(t, l2.Fence(), l1.Fence(), "fences strictly increase per key")
}

func TestLeaseRelease(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key)

	require.NoError(t, l.Context().Err(), "context of a held lease")
	require.NoError(t, l.Check(t.Context()))

	require.NoError(t, l.Release(t.Context()))
	requireFree(t, s, key)
	waitDone(t, l.Context(), "released lease")
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)

	err := l.Release(t.Context())
	require.ErrorIs(t, err, locked.ErrNotHeld, "second Release")
	requireOpError(t, err, "release", key)
	require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)
	require.ErrorIs(t, l.ExtendTo(t.Context(), time.Minute), locked.ErrNotHeld)
	require.NoError(t, l.Close(), "Close after Release")
	assert.Equal(t, 0, s.Stats().Open)
}

func TestLeaseCloseIdempotent(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key)

	require.NoError(t, l.Close())
	require.NoError(t, l.Close())
	requireFree(t, s, key)
	waitDone(t, l.Context(), "closed lease")
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
	require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld)
	assert.Equal(t, 0, s.Stats().Open)
}

func TestLeaseLapses(t *testing.T) {
	tests := []struct {
		name string
		end  func(*locked.Lease) error // the first call after the lapse
	}{
		{"Release", func(l *locked.Lease) error { return l.Release(context.Background()) }},
		{"Close", func(l *locked.Lease) error { return l.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			s := newService(t, p, nil)
			key := uniqueKey(t, "k")
			l := mustAcquire(t, s, key, locked.WithTTL(50*time.Millisecond))

			waitDone(t, l.Context(), "lapsing lease")
			require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
			requireFree(t, s, key) // memprovider shares the lease's clock
			require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)
			require.ErrorIs(t, l.ExtendTo(t.Context(), time.Minute), locked.ErrNotHeld)

			require.ErrorIs(t, tt.end(l), locked.ErrNotHeld, "the first %s reports the lapse", tt.name)
			require.NoError(t, l.Close(), "later Closes return nil")
			require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld)
			assert.Equal(t, 0, s.Stats().Open)
		})
	}
}

func TestLapsedLeaseDoesNotReleaseNextHolder(t *testing.T) {
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, nil)
	key := uniqueKey(t, "k")
	old := mustAcquire(t, s1, key, locked.WithTTL(50*time.Millisecond))
	waitDone(t, old.Context(), "lapsing lease")

	next := mustAcquire(t, s2, key)
	require.Greater(t, next.Fence(), old.Fence())
	require.ErrorIs(t, old.Release(t.Context()), locked.ErrNotHeld)
	require.NoError(t, next.Check(t.Context()), "a late release must not free the next holder's lock")
	st, err := s1.State(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, locked.HeldByOther, st.Status)
	assert.Equal(t, next.Fence(), st.Fence)
}

func TestZeroAndNilLease(t *testing.T) {
	tests := []struct {
		name string
		l    *locked.Lease
	}{
		{"zero", &locked.Lease{}},
		{"nil", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			l := tt.l
			require.NotPanics(t, func() {
				require.ErrorIs(t, l.Release(ctx), locked.ErrNotHeld)
				require.ErrorIs(t, l.ExtendTo(ctx, time.Minute), locked.ErrNotHeld)
				require.ErrorIs(t, l.Check(ctx), locked.ErrNotHeld)
				require.NoError(t, l.Close())
				require.NoError(t, l.Close())
				require.Error(t, l.Context().Err(), "context must be done")
				require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
				assert.Empty(t, l.Key())
				assert.Empty(t, l.Token())
				assert.Empty(t, l.Owner())
				assert.Zero(t, l.Fence())
				assert.Zero(t, l.ExpiresAt())
				assert.Zero(t, l.Handle())
			})
		})
	}
}

func TestLeaseExtend(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	s := newService(t, p, &locked.Options{OnEvent: log.record})
	key := uniqueKey(t, "k")
	const ttl = time.Minute
	l := mustAcquire(t, s, key, locked.WithTTL(ttl))

	stateTTL := func() time.Duration {
		t.Helper()
		st, err := s.State(t.Context(), key)
		require.NoError(t, err)
		require.Equal(t, locked.HeldByMe, st.Status)
		return st.TTL
	}
	before := l.ExpiresAt()
	require.LessOrEqual(t, stateTTL(), ttl)

	require.NoError(t, l.ExtendTo(t.Context(), time.Hour))
	extended := l.ExpiresAt()
	assert.True(t, extended.After(before), "ExpiresAt %v should move past %v", extended, before)
	assert.Greater(t, stateTTL(), ttl, "the store's TTL grows")
	assert.LessOrEqual(t, stateTTL(), time.Hour)

	// Zero means the lease's own TTL again.
	require.NoError(t, l.ExtendTo(t.Context(), 0))
	assert.True(t, l.ExpiresAt().Before(extended), "Extend(0) sets the lease's TTL, %v", ttl)
	assert.LessOrEqual(t, stateTTL(), ttl)

	err := l.ExtendTo(t.Context(), -time.Second)
	ae := requireArgError(t, err)
	assert.Equal(t, "ttl", ae.Arg)
	requireOpError(t, err, "extend", key)
	require.NoError(t, l.Check(t.Context()), "a rejected Extend leaves the lease alone")

	assert.Len(t, log.ofType(locked.Extended), 2)
}

func TestLeaseExtendOutlivesTTL(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key, locked.WithTTL(200*time.Millisecond))
	require.NoError(t, l.ExtendTo(t.Context(), time.Hour))

	// A second lease with a longer TTL serves as a clock: once it has
	// lapsed, the first lease's original TTL is over too.
	clock := mustAcquire(t, s, uniqueKey(t, "clock"), locked.WithTTL(400*time.Millisecond))
	waitDone(t, clock.Context(), "clock lease")

	require.NoError(t, l.Context().Err(), "the extended lease must not lapse at its original TTL")
	require.NoError(t, l.Check(t.Context()))
	requireHeld(t, s, key)
}

func TestLeaseExtendShortens(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key, locked.WithTTL(time.Hour))

	require.NoError(t, l.ExtendTo(t.Context(), 50*time.Millisecond))
	waitDone(t, l.Context(), "lease extended to a shorter TTL")
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
	requireFree(t, s, key)
}

func TestLeaseCloseConcurrent(t *testing.T) {
	const leases, closers = 50, 4
	p := newProvider(t)
	s := newService(t, p, nil)
	for i := range leases {
		l := mustAcquire(t, s, uniqueKey(t, fmt.Sprint(i)))
		start := make(chan struct{})
		errs := make(chan error, closers)
		for range closers {
			go func() {
				<-start
				errs <- l.Close()
			}()
		}
		close(start)
		for range closers {
			require.NoError(t, receive(t, errs, liveness, "concurrent Close"), "every Close returns nil")
		}
		requireFree(t, s, l.Key())
	}
	assert.Equal(t, 0, s.Stats().Open)
}

func TestLeaseExtendAfterForceRelease(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	s := newService(t, p, &locked.Options{OnEvent: log.record})
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key)

	held, err := s.ForceRelease(t.Context(), key)
	require.NoError(t, err)
	require.True(t, held)

	err = l.ExtendTo(t.Context(), time.Minute)
	require.ErrorIs(t, err, locked.ErrNotHeld)
	requireOpError(t, err, "extend", key)
	waitDone(t, l.Context(), "lease after a failed Extend")
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
	require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)
	require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld)

	lost := log.ofType(locked.Lost)
	require.Len(t, lost, 1)
	assert.Equal(t, key, lost[0].Key)
	assert.Equal(t, l.Fence(), lost[0].Fence)
	require.ErrorIs(t, lost[0].Err, locked.ErrNotHeld)
}

func TestLeaseCheck(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	other := newService(t, p, nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key)

	require.NoError(t, l.Check(t.Context()))
	require.NoError(t, l.Check(t.Context()), "Check changes nothing")

	held, err := s.ForceRelease(t.Context(), key)
	require.NoError(t, err)
	require.True(t, held)
	err = l.Check(t.Context())
	require.ErrorIs(t, err, locked.ErrNotHeld)
	requireOpError(t, err, "check", key)

	// Taken over by another holder: still not held.
	next := mustAcquire(t, other, key)
	require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)
	require.NoError(t, next.Check(t.Context()))
}

func TestAutoRenew(t *testing.T) {
	tests := []struct {
		name    string
		svcOpts locked.Options
		opts    []locked.CallOption
	}{
		{name: "WithAutoRenew", opts: []locked.CallOption{locked.WithTTL(renewTTL), locked.WithAutoRenew()}},
		{name: "Options.AutoRenew", svcOpts: locked.Options{AutoRenew: true}, opts: []locked.CallOption{locked.WithTTL(renewTTL)}},
		{name: "Options.AutoRenew and TTL", svcOpts: locked.Options{AutoRenew: true, TTL: renewTTL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			var log eventLog
			p := newProvider(t)
			opts := tt.svcOpts
			opts.OnEvent = log.record
			s := newService(t, p, &opts)
			other := newService(t, p, nil)
			key := uniqueKey(t, "k")

			l, err := s.Acquire(t.Context(), key, tt.opts...)
			require.NoError(t, err)
			first := l.ExpiresAt()
			waitRenewed(t, l, 3)
			require.True(t, time.Now().After(first), "the lease outlived its first TTL")

			_, err = other.TryAcquire(t.Context(), key)
			require.ErrorIs(t, err, locked.ErrNotAcquired, "a renewed lease keeps its key")
			require.NoError(t, l.Context().Err())
			require.NoError(t, l.Check(t.Context()))
			// Each renewal moves ExpiresAt, then emits its event.
			require.Eventually(t, func() bool { return len(log.ofType(locked.Extended)) >= 3 }, liveness, time.Millisecond)

			// Lost: the next renewal finds the key gone and ends the lease.
			held, err := other.ForceRelease(t.Context(), key)
			require.NoError(t, err)
			require.True(t, held)
			waitDone(t, l.Context(), "renewed lease after ForceRelease")
			require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
			require.Eventually(t, func() bool { return len(log.ofType(locked.Lost)) == 1 }, liveness, time.Millisecond)
			requireFree(t, s, key)

			require.ErrorIs(t, l.Close(), locked.ErrNotHeld, "Close reports the loss")
			require.NoError(t, l.Close())
			assert.Equal(t, 0, s.Stats().Open)
			// The deferred VerifyNone proves the renewal goroutine ended.
		})
	}
}

// waitRenewed waits, for at most liveness, until l's ExpiresAt has moved
// forward at least n times, and past its first value by a whole TTL.
func waitRenewed(t *testing.T, l *locked.Lease, n int) {
	t.Helper()
	first := l.ExpiresAt()
	last, moves := first, 0
	require.Eventually(t, func() bool {
		if cur := l.ExpiresAt(); cur.After(last) {
			last, moves = cur, moves+1
		}
		return moves >= n && last.After(first.Add(renewTTL))
	}, liveness, 5*time.Millisecond, "ExpiresAt moved %d times", moves)
}

func TestAutoRenewStops(t *testing.T) {
	tests := []struct {
		name string
		stop func(*locked.Service, *locked.Lease) error
	}{
		{"Lease.Close", func(_ *locked.Service, l *locked.Lease) error { return l.Close() }},
		{"Lease.Release", func(_ *locked.Service, l *locked.Lease) error { return l.Release(context.Background()) }},
		{"Service.Close", func(s *locked.Service, _ *locked.Lease) error { return s.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			var log eventLog
			p := newProvider(t)
			s := newService(t, p, &locked.Options{OnEvent: log.record})
			key := uniqueKey(t, "k")
			l, err := s.Acquire(t.Context(), key, locked.WithTTL(renewTTL), locked.WithAutoRenew())
			require.NoError(t, err)
			waitRenewed(t, l, 1)

			require.NoError(t, tt.stop(s, l))
			requireFree(t, s, key)
			waitDone(t, l.Context(), "stopped lease")
			require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
			assert.Equal(t, 0, s.Stats().Open)
			events := log.all()
			assert.Equal(t, locked.Released, events[len(events)-1].Type, "no renewal after Released")
			assert.Empty(t, log.ofType(locked.Lost))
			// The deferred VerifyNone proves the renewal goroutine ended.
		})
	}
}

func TestHandleJSON(t *testing.T) {
	h := locked.Handle{Key: "account:42", Token: "owner/instance/7", Fence: 12}
	data, err := json.Marshal(h)
	require.NoError(t, err)
	assert.JSONEq(t, `{"key":"account:42","token":"owner/instance/7","fence":12}`, string(data))
	var back locked.Handle
	require.NoError(t, json.Unmarshal(data, &back))
	assert.Equal(t, h, back)
}

func TestRestore(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, &locked.Options{OnEvent: log.record})
	key := uniqueKey(t, "k")
	const ttl = time.Minute
	l := mustAcquire(t, s1, key, locked.WithTTL(ttl))

	data, err := json.Marshal(l.Handle())
	require.NoError(t, err)
	var h locked.Handle
	require.NoError(t, json.Unmarshal(data, &h))
	require.Equal(t, l.Handle(), h)

	before := time.Now()
	r, err := s2.Restore(t.Context(), h)
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	assert.Equal(t, key, r.Key())
	assert.Equal(t, l.Token(), r.Token())
	assert.Equal(t, l.Fence(), r.Fence())
	assert.Equal(t, s1.Owner(), r.Owner(), "the owner is the token's")
	assert.True(t, r.ExpiresAt().After(before), "the store's remaining TTL")
	assert.False(t, r.ExpiresAt().After(l.ExpiresAt().Add(time.Second)), "no longer than the original lease")
	require.NoError(t, r.Context().Err())
	require.NoError(t, r.Check(t.Context()))
	assert.Equal(t, 1, s2.Stats().Open)
	require.Equal(t, []locked.Event{{
		Type: locked.Acquired, Key: key, Fence: l.Fence(), Token: l.Token(), Owner: s1.Owner(),
	}}, log.all())

	require.NoError(t, r.Release(t.Context()), "the restored lease releases the key")
	requireFree(t, s1, key)
	assert.Equal(t, 0, s2.Stats().Open)
	require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld, "the original no longer holds it")
	require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld)
}

func TestRestoreNamespace(t *testing.T) {
	p := newProvider(t)
	s1 := newService(t, p, &locked.Options{Namespace: "ns"})
	s2 := newService(t, p, &locked.Options{Namespace: "ns"})
	elsewhere := newService(t, p, &locked.Options{Namespace: "other"})
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s1, key)

	_, err := elsewhere.Restore(t.Context(), l.Handle())
	require.ErrorIs(t, err, locked.ErrNotHeld, "a handle is checked in the Service's own namespace")

	r, err := s2.Restore(t.Context(), l.Handle())
	require.NoError(t, err)
	assert.Equal(t, key, r.Key())
	require.NoError(t, r.Close())
	requireFree(t, s1, key)
}

func TestRestoreStale(t *testing.T) {
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, nil)
	first := mustAcquire(t, s1, uniqueKey(t, "held"))
	require.NoError(t, first.Release(t.Context()))
	held := mustAcquire(t, s1, uniqueKey(t, "held")) // fence 2 or more, so fence-1 is valid
	released := mustAcquire(t, s1, uniqueKey(t, "released"))
	require.NoError(t, released.Release(t.Context()))
	lapsed := mustAcquire(t, s1, uniqueKey(t, "lapsed"), locked.WithTTL(50*time.Millisecond))
	waitDone(t, lapsed.Context(), "lapsing lease")

	tests := []struct {
		name string
		h    locked.Handle
	}{
		{"after release", released.Handle()},
		{"after lapse", lapsed.Handle()},
		{"wrong fence", locked.Handle{Key: held.Key(), Token: held.Token(), Fence: held.Fence() + 1}},
		{"older fence", locked.Handle{Key: held.Key(), Token: held.Token(), Fence: held.Fence() - 1}},
		{"wrong token", locked.Handle{Key: held.Key(), Token: held.Token() + "x", Fence: held.Fence()}},
		{"never locked", locked.Handle{Key: uniqueKey(t, "never"), Token: held.Token(), Fence: held.Fence()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.h.Fence == 0 {
				t.Fatalf("bad test: fence 0 is an invalid handle, not a stale one")
			}
			r, err := s2.Restore(t.Context(), tt.h)
			require.Nil(t, r)
			require.ErrorIs(t, err, locked.ErrNotHeld)
			requireOpError(t, err, "restore", tt.h.Key)
			assert.Equal(t, 0, s2.Stats().Open)
			require.NoError(t, held.Check(t.Context()), "a stale handle must not disturb the holder")
		})
	}
}

func TestRestoreInvalid(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	l := mustAcquire(t, s, uniqueKey(t, "k"))
	h := l.Handle()

	tests := []struct {
		name string
		h    locked.Handle
		opts []locked.CallOption
	}{
		{name: "empty handle", h: locked.Handle{}},
		{name: "no key", h: locked.Handle{Token: h.Token, Fence: h.Fence}},
		{name: "no token", h: locked.Handle{Key: h.Key, Fence: h.Fence}},
		{name: "no fence", h: locked.Handle{Key: h.Key, Token: h.Token}},
		{name: "bad TTL option", h: h, opts: []locked.CallOption{locked.WithTTL(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Restore(t.Context(), tt.h, tt.opts...)
			require.Nil(t, r)
			requireArgError(t, err)
			assert.Equal(t, 1, s.Stats().Open, "only the original lease")
			require.NoError(t, l.Check(t.Context()))
		})
	}
}

func TestRestoreAutoRenew(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, s1, key, locked.WithTTL(2*renewTTL))

	r, err := s2.Restore(t.Context(), l.Handle(), locked.WithTTL(renewTTL), locked.WithAutoRenew())
	require.NoError(t, err)
	// The original lease does not renew: its local deadline passes at the
	// original TTL, which proves that time is over.
	waitDone(t, l.Context(), "original lease")
	waitRenewed(t, r, 3)
	require.NoError(t, r.Context().Err(), "the restored lease renews itself")
	require.NoError(t, r.Check(t.Context()))
	requireHeld(t, s1, key)
	require.NoError(t, r.Close())
	requireFree(t, s1, key)
}

// TestDetach: a detached lease keeps its hold in the store (the restored
// lease releases it), ends locally, and is not released by Service.Close.
func TestDetach(t *testing.T) {
	p := memprovider.New()
	t.Cleanup(func() { p.Close() })
	ctx := context.Background()
	a, err := locked.New(p, nil)
	require.NoError(t, err)
	b, err := locked.New(p, nil)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })

	l, err := a.Acquire(ctx, "detach", locked.WithAutoRenew(), locked.WithTTL(time.Minute))
	require.NoError(t, err)
	h := l.Handle()
	l.Detach()
	l.Detach() // idempotent

	require.Error(t, l.Context().Err(), "a detached lease's Context ends")
	assert.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
	assert.ErrorIs(t, l.ExtendTo(ctx, 0), locked.ErrNotHeld)
	assert.ErrorIs(t, l.Release(ctx), locked.ErrNotHeld)
	assert.NoError(t, l.Close())
	assert.Equal(t, 0, a.Stats().Open)

	require.NoError(t, a.Close()) // must not release the handed-over hold
	st, err := b.State(ctx, "detach")
	require.NoError(t, err)
	assert.Equal(t, locked.HeldByOther, st.Status, "the hold survives Detach and the old Service's Close")

	r, err := b.Restore(ctx, h)
	require.NoError(t, err)
	require.NoError(t, r.Release(ctx))
	held, err := b.IsLocked(ctx, "detach")
	require.NoError(t, err)
	assert.False(t, held)

	var zero locked.Lease
	zero.Detach() // no panic
	(*locked.Lease)(nil).Detach()
}
