// Package servicetest is the Service-level conformance suite: the
// key-level behaviour of locked.Service and locked.Lease (nested
// acquisition, Do and TryRun, multi-key sets, owners and owner releases,
// admin listing and release, locks without expiry, Extend semantics, retry
// counts, events, the Mutex handle) that must be the same on every
// provider. memprovider, redisprovider (single node, Cluster) and Redlock
// run it.
package servicetest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider"
)

// Liveness bounds every wait for something that must happen; only a hang
// reaches it. No subtest asserts how fast anything happens.
const Liveness = 20 * time.Second

// Harness says how to reach the store under test.
type Harness struct {
	// NewPair returns two providers on one and the same store, as two
	// processes would have (memprovider: the same Provider twice). Both
	// must be closed by the harness when t ends. Required.
	NewPair func(t *testing.T) (provider.Provider, provider.Provider)

	// ShortTTL is a TTL short enough for a subtest to wait for its expiry
	// and long enough for the store to grant it. Default 300ms.
	ShortTTL time.Duration
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	if h.ShortTTL == 0 {
		h.ShortTTL = 300 * time.Millisecond
	}
	e := env{h: h}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, env)
	}{
		{"Nested", testNested},
		{"DoAndTryRun", testDoAndTryRun},
		{"AcquireAll", testAcquireAll},
		{"RunAll", testRunAll},
		{"Owners", testOwners},
		{"Reentrant", testReentrant},
		{"ReleaseByOwner", testReleaseByOwner},
		{"ReleaseOwner", testReleaseOwner},
		{"ForceReleaseAll", testForceReleaseAll},
		{"Locks", testLocks},
		{"NoExpiry", testNoExpiry},
		{"ExtendToAndBy", testExtend},
		{"Accessors", testAccessors},
		{"Expired", testExpired},
		{"MaxRetries", testMaxRetries},
		{"NoTimeout", testNoTimeout},
		{"Events", testEvents},
		{"ReleaseAll", testReleaseAll},
		{"Mutex", testMutex},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, e) })
	}
}

type env struct{ h Harness }

// services returns two Services with opts on the two providers of a pair,
// in a namespace of this test's own.
func (e env) services(t *testing.T, opts locked.Options) (*locked.Service, *locked.Service) {
	t.Helper()
	p1, p2 := e.h.NewPair(t)
	if opts.Namespace == "" {
		opts.Namespace = Namespace(t)
	}
	if opts.Timeout == 0 {
		opts.Timeout = Liveness
	}
	return newService(t, p1, opts), newService(t, p2, opts)
}

func newService(t *testing.T, p provider.Provider, opts locked.Options) *locked.Service {
	t.Helper()
	s, err := locked.New(p, &opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// Namespace returns a namespace unique to t: its name without ':'.
func Namespace(t *testing.T) string {
	return strings.NewReplacer(":", "_", " ", "_").Replace(t.Name())
}

func acquire(t *testing.T, s *locked.Service, key string, opts ...locked.CallOption) *locked.Lease {
	t.Helper()
	l, err := s.TryAcquire(t.Context(), key, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func requireFree(t *testing.T, s *locked.Service, key string) {
	t.Helper()
	st, err := s.State(t.Context(), key)
	require.NoError(t, err)
	require.Equal(t, locked.Free, st.Status, "key %q", key)
}

func requireHeld(t *testing.T, s *locked.Service, key string) locked.State {
	t.Helper()
	st, err := s.State(t.Context(), key)
	require.NoError(t, err)
	require.NotEqual(t, locked.Free, st.Status, "key %q", key)
	return st
}

func testNested(t *testing.T, e env) {
	p, _ := e.h.NewPair(t)
	opts := locked.Options{Namespace: Namespace(t), Timeout: Liveness}
	s, other := newService(t, p, opts), newService(t, p, opts)
	ctx := t.Context()
	err := s.Run(ctx, "a", func(ctx context.Context) error {
		// Taking the key again from inside would wait for itself for the
		// whole Liveness timeout; it fails at once instead.
		_, err := s.Acquire(ctx, "a")
		require.ErrorIs(t, err, locked.ErrNested)
		require.ErrorIs(t, err, locked.ErrNotAcquired)
		require.NotErrorIs(t, err, context.DeadlineExceeded)
		// Another Service on the same provider and namespace: the same key.
		_, err = other.Acquire(ctx, "a")
		require.ErrorIs(t, err, locked.ErrNested)
		// Another key is fine, and the chain grows.
		return s.Run(ctx, "b", func(ctx context.Context) error {
			_, err := s.Acquire(ctx, "a")
			require.ErrorIs(t, err, locked.ErrNested)
			err = s.Run(ctx, "b", func(context.Context) error { return nil })
			require.ErrorIs(t, err, locked.ErrNested)
			return nil
		})
	})
	require.NoError(t, err)

	l := acquire(t, s, "c")
	_, err = s.Acquire(l.Context(), "c")
	require.ErrorIs(t, err, locked.ErrNested, "a lease's Context carries it")
	require.NoError(t, l.Release(ctx))
	l2, err := s.Acquire(context.WithoutCancel(l.Context()), "c")
	require.NoError(t, err, "an ended lease in the chain does not count")
	require.NoError(t, l2.Release(ctx))
}

func testDoAndTryRun(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	n, err := locked.Do(ctx, s, "k", func(ctx context.Context) (int, error) {
		requireHeld(t, s, "k")
		return 42, nil
	})
	require.NoError(t, err)
	require.Equal(t, 42, n)
	requireFree(t, s, "k")

	errFn := errors.New("fn failed")
	_, err = locked.Do(ctx, s, "k", func(context.Context) (int, error) { return 0, errFn })
	require.ErrorIs(t, err, errFn)

	hold := acquire(t, other, "k")
	called := false
	err = s.TryRun(ctx, "k", func(context.Context) error { called = true; return nil })
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.False(t, called, "TryRun must not run fn on a held key")
	require.NoError(t, hold.Release(ctx))
	err = s.TryRun(ctx, "k", func(context.Context) error { called = true; return nil })
	require.NoError(t, err)
	require.True(t, called)

	var nilFn func(context.Context) (int, error)
	_, err = locked.Do(ctx, s, "k", nilFn)
	require.ErrorIs(t, err, locked.ErrInvalid)
}

func testAcquireAll(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	keys := []string{"c", "a", "b"}
	ls, err := s.AcquireAll(ctx, keys)
	require.NoError(t, err)
	all := ls.All()
	require.Len(t, all, 3)
	for i, l := range all {
		require.Equal(t, keys[i], l.Key(), "leases come back in the order of keys")
		requireHeld(t, other, keys[i])
	}
	require.NoError(t, ls.Close())
	require.NoError(t, ls.Close(), "Close is idempotent")
	for _, k := range keys {
		requireFree(t, other, k)
	}

	// All or nothing: one key held elsewhere, the others are given back.
	hold := acquire(t, other, "b")
	_, err = s.AcquireAll(ctx, keys, locked.WithTimeout(e.h.ShortTTL))
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	requireFree(t, other, "a")
	requireFree(t, other, "c")
	require.NoError(t, hold.Release(ctx))

	for _, bad := range [][]string{nil, {"a", "a"}, {"a", ""}} {
		_, err = s.AcquireAll(ctx, bad)
		require.ErrorIs(t, err, locked.ErrInvalid, "%q", bad)
		requireFree(t, other, "a")
	}
}

func testRunAll(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	err := s.RunAll(ctx, []string{"x", "y"}, func(ctx context.Context) error {
		requireHeld(t, other, "x")
		requireHeld(t, other, "y")
		_, err := s.Acquire(ctx, "x")
		require.ErrorIs(t, err, locked.ErrNested)
		_, err = s.Acquire(ctx, "y")
		require.ErrorIs(t, err, locked.ErrNested)
		return nil
	})
	require.NoError(t, err)
	requireFree(t, other, "x")
	requireFree(t, other, "y")
}

func testOwners(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	l1 := acquire(t, s, "k1", locked.WithOwner("user-1"))
	l2 := acquire(t, s, "k2", locked.WithOwner("user-1"))
	require.Equal(t, "user-1", l1.Owner())
	require.NotEqual(t, l1.Token(), l2.Token(), "tokens stay unique per lease")
	st := requireHeld(t, other, "k1")
	require.Equal(t, "user-1", st.Owner)
	require.Equal(t, locked.HeldByOther, st.Status)

	// Without WithReentrant the same owner is refused like anybody.
	_, err := s.TryAcquire(ctx, "k1", locked.WithOwner("user-1"))
	require.ErrorIs(t, err, locked.ErrNotAcquired)

	_, err = s.TryAcquire(ctx, "k3", locked.WithOwner(""))
	require.ErrorIs(t, err, locked.ErrInvalid)
	requireFree(t, s, "k3")
}

func testReentrant(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	first := acquire(t, s, "k", locked.WithOwner("job-7"), locked.WithTTL(time.Minute))
	again, err := other.TryAcquire(ctx, "k", locked.WithOwner("job-7"), locked.WithReentrant(), locked.WithTTL(time.Hour))
	require.NoError(t, err, "the same owner extends instead of failing")
	require.Equal(t, first.Fence(), again.Fence(), "the same hold")
	require.Equal(t, first.Token(), again.Token())
	// Redlock returns once a quorum has extended; a State read from
	// another quorum may meet a straggler that has not yet (its TTL is the
	// quorum's shortest, a safe understatement), so wait for it.
	require.Eventually(t, func() bool { return requireHeld(t, s, "k").TTL > time.Minute },
		Liveness, 10*time.Millisecond, "extended to the new call's TTL")

	_, err = other.TryAcquire(ctx, "k", locked.WithOwner("job-8"), locked.WithReentrant())
	require.ErrorIs(t, err, locked.ErrNotAcquired, "a different owner is refused")
	_, err = other.Acquire(ctx, "k", locked.WithOwner("job-8"), locked.WithReentrant(), locked.WithTimeout(e.h.ShortTTL))
	require.ErrorIs(t, err, locked.ErrNotAcquired, "and waits like anybody")

	require.NoError(t, again.Release(ctx))
	requireFree(t, s, "k")

	_, err = s.TryAcquire(ctx, "k", locked.WithReentrant(), locked.WithNoExpiry())
	require.ErrorIs(t, err, locked.ErrInvalid)
}

func testReleaseByOwner(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	l := acquire(t, s, "k", locked.WithOwner("alice"))

	err := other.Release(ctx, "k", "bob")
	require.ErrorIs(t, err, locked.ErrNotOwner)
	require.ErrorIs(t, err, locked.ErrNotHeld)
	requireHeld(t, s, "k")
	require.NoError(t, l.Context().Err())

	require.NoError(t, s.Release(ctx, "k", "alice"))
	requireFree(t, other, "k")
	select {
	case <-l.Context().Done():
	case <-time.After(Liveness):
		t.Fatal("the lease's Context did not end")
	}
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotOwner)
	require.Equal(t, 0, s.Stats().Open)

	err = other.Release(ctx, "k", "alice")
	require.ErrorIs(t, err, locked.ErrNotHeld)
	require.NotErrorIs(t, err, locked.ErrNotOwner, "a free key is not another owner's")
	for _, bad := range [][2]string{{"", "alice"}, {"k", ""}} {
		require.ErrorIs(t, s.Release(ctx, bad[0], bad[1]), locked.ErrInvalid)
	}
}

func testReleaseOwner(t *testing.T, e env) {
	s1, s2 := e.services(t, locked.Options{})
	ctx := t.Context()
	a1 := acquire(t, s1, "a1", locked.WithOwner("alice"))
	a2 := acquire(t, s2, "a2", locked.WithOwner("alice"))
	acquire(t, s2, "b1", locked.WithOwner("bob"))
	acquire(t, s1, "plain")

	n, err := s1.ReleaseOwner(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	requireFree(t, s1, "a1")
	requireFree(t, s1, "a2")
	requireHeld(t, s1, "b1")
	requireHeld(t, s1, "plain")
	<-a1.Context().Done() // this Service's lease ends at once
	require.ErrorIs(t, context.Cause(a1.Context()), locked.ErrNotOwner)
	// The other process learns it at its next check.
	require.ErrorIs(t, a2.Check(ctx), locked.ErrNotHeld)
	require.Error(t, a2.Context().Err(), "and its Context ends then")
	require.ErrorIs(t, context.Cause(a2.Context()), locked.ErrNotHeld)

	n, err = s1.ReleaseOwner(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 0, n)
	_, err = s1.ReleaseOwner(ctx, "")
	require.ErrorIs(t, err, locked.ErrInvalid)
}

func testForceReleaseAll(t *testing.T, e env) {
	p1, p2 := e.h.NewPair(t)
	ns := Namespace(t)
	s := newService(t, p1, locked.Options{Namespace: ns})
	s2 := newService(t, p2, locked.Options{Namespace: ns})
	neighbour := newService(t, p2, locked.Options{Namespace: ns + "x"})
	l := acquire(t, s, "a")
	acquire(t, s2, "b", locked.WithOwner("bob"))
	acquire(t, neighbour, "a")

	n, err := s.ForceReleaseAll(t.Context())
	require.NoError(t, err)
	require.Equal(t, 2, n)
	requireFree(t, s, "a")
	requireFree(t, s, "b")
	requireHeld(t, neighbour, "a")
	<-l.Context().Done()
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
}

func testLocks(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	acquire(t, s, "a", locked.WithOwner("alice"))
	acquire(t, other, "b")
	acquire(t, other, "c", locked.WithNoExpiry())
	free := acquire(t, s, "gone")
	require.NoError(t, free.Release(t.Context()))

	got, err := s.Locks(t.Context())
	require.NoError(t, err)
	slices.SortFunc(got, func(a, b locked.KeyState) int { return strings.Compare(a.Key, b.Key) })
	require.Len(t, got, 3)
	require.Equal(t, []string{"a", "b", "c"}, []string{got[0].Key, got[1].Key, got[2].Key})
	require.Equal(t, "alice", got[0].Owner)
	require.Equal(t, other.Owner(), got[1].Owner)
	require.Greater(t, got[1].TTL, time.Duration(0))
	require.True(t, got[2].NoExpiry)
}

func testNoExpiry(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{AutoRenew: true})
	ctx := t.Context()
	l := acquire(t, s, "k", locked.WithNoExpiry())
	require.True(t, l.NoExpiry())
	require.False(t, l.AutoRenewing(), "nothing to renew")
	require.Zero(t, l.TTL())
	require.True(t, l.ExpiresAt().IsZero())
	require.Greater(t, l.Remaining(), locked.MaxTTL)
	require.False(t, l.Expired())
	st := requireHeld(t, other, "k")
	require.True(t, st.NoExpiry)
	require.Zero(t, st.TTL)

	require.ErrorIs(t, l.ExtendTo(ctx, time.Minute), locked.ErrInvalid)
	require.ErrorIs(t, l.ExtendBy(ctx, time.Minute), locked.ErrInvalid)
	require.NoError(t, l.Check(ctx))

	_, err := other.TryAcquire(ctx, "k")
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.NoError(t, l.Release(ctx))
	requireFree(t, other, "k")

	// ForceRelease frees one too.
	l = acquire(t, other, "k", locked.WithNoExpiry())
	freed, err := s.ForceRelease(ctx, "k")
	require.NoError(t, err)
	require.True(t, freed)
	require.ErrorIs(t, l.Check(ctx), locked.ErrNotHeld)

	_, err = s.TryAcquire(ctx, "k2", locked.WithTTL(locked.MaxTTL+time.Second))
	require.ErrorIs(t, err, locked.ErrInvalid)
	requireFree(t, s, "k2")
}

func testExtend(t *testing.T, e env) {
	s, _ := e.services(t, locked.Options{})
	ctx := t.Context()
	l := acquire(t, s, "k", locked.WithTTL(time.Hour))

	// The store's view is awaited: Redlock returns once a quorum has
	// extended, and a State read from another quorum may meet a straggler.
	require.NoError(t, l.ExtendBy(ctx, time.Hour))
	require.Greater(t, l.Remaining(), time.Hour)
	require.Eventually(t, func() bool { return requireHeld(t, s, "k").TTL > time.Hour },
		Liveness, 10*time.Millisecond, "ExtendBy adds to the remaining TTL")

	require.NoError(t, l.ExtendTo(ctx, 10*time.Minute))
	require.LessOrEqual(t, l.Remaining(), 10*time.Minute)
	require.Eventually(t, func() bool { return requireHeld(t, s, "k").TTL <= 10*time.Minute },
		Liveness, 10*time.Millisecond, "ExtendTo sets the remaining TTL")

	require.ErrorIs(t, l.ExtendBy(ctx, 0), locked.ErrInvalid)
	require.ErrorIs(t, l.ExtendTo(ctx, -time.Second), locked.ErrInvalid)
	require.ErrorIs(t, l.ExtendTo(ctx, locked.MaxTTL+1), locked.ErrInvalid)
	require.NoError(t, l.Release(ctx))
	require.ErrorIs(t, l.ExtendBy(ctx, time.Minute), locked.ErrNotHeld)
}

func testAccessors(t *testing.T, e env) {
	s, _ := e.services(t, locked.Options{AutoRenew: true, TTL: time.Minute})
	before := time.Now()
	l := acquire(t, s, "renewing")
	after := time.Now()
	require.Equal(t, time.Minute, l.TTL())
	require.False(t, l.AcquiredAt().Before(before))
	require.False(t, l.AcquiredAt().After(after))
	require.True(t, l.AutoRenewing())
	require.Equal(t, 1, s.Stats().AutoRenewing)
	l.StopAutoRenew()
	require.False(t, l.AutoRenewing())
	l.StopAutoRenew() // idempotent
	require.NoError(t, l.Check(t.Context()), "still held after StopAutoRenew")

	plain := acquire(t, s, "plain", locked.WithoutAutoRenew())
	require.False(t, plain.AutoRenewing())
	require.False(t, plain.Expired())
	require.Greater(t, plain.Remaining(), time.Duration(0))
	require.LessOrEqual(t, plain.Remaining(), time.Minute)

	st := s.Stats()
	require.Equal(t, 2, st.Open)
	require.Equal(t, 0, st.AutoRenewing)
	require.Equal(t, uint64(2), st.Acquired)
	_, err := s.TryAcquire(t.Context(), "plain")
	require.Error(t, err)
	require.Equal(t, uint64(1), s.Stats().AcquireFailed)
}

func testExpired(t *testing.T, e env) {
	s, _ := e.services(t, locked.Options{})
	l := acquire(t, s, "k", locked.WithTTL(e.h.ShortTTL))
	select {
	case <-l.Context().Done():
	case <-time.After(Liveness):
		t.Fatal("lease did not expire")
	}
	require.True(t, l.Expired())
	require.Zero(t, l.Remaining())
	require.ErrorIs(t, context.Cause(l.Context()), locked.ErrExpired)
	err := l.Release(t.Context())
	require.ErrorIs(t, err, locked.ErrExpired)
	require.ErrorIs(t, err, locked.ErrNotHeld)
	require.NotErrorIs(t, err, locked.ErrNotOwner)
	msg := err.Error()
	require.Equal(t, 1, strings.Count(msg, "locked:"), "one prefix per layer: %s", msg)
	require.Equal(t, 1, strings.Count(msg, "lockproof:"), "one prefix per layer: %s", msg)
	require.Equal(t, uint64(1), s.Stats().Lost)
}

func testMaxRetries(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()

	// A retry is still woken by the release: the key comes free while
	// the retry (up to Liveness long) is waiting. (This runs first: a
	// redisprovider whose subscription attempt was cut short by a 1ms
	// context waits a poll interval before subscribing again.)
	hold := acquire(t, other, "woken")
	got := make(chan error, 1)
	go func() {
		l, err := s.Acquire(ctx, "woken", locked.WithMaxRetries(1, Liveness))
		if err == nil {
			err = l.Release(context.WithoutCancel(ctx))
		}
		got <- err
	}()
	require.NoError(t, hold.Release(ctx))
	require.NoError(t, <-got)

	hold = acquire(t, other, "k")
	// Each retry waits 50ms: long enough that its deadline does not fall
	// on a request in flight (that would be an unknown outcome, not a
	// refusal), short enough to keep the suite quick.
	_, err := s.Acquire(ctx, "k", locked.WithMaxRetries(2, 50*time.Millisecond))
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.Contains(t, err.Error(), "after 2 retries")
	_, err = s.Acquire(ctx, "k", locked.WithMaxRetries(0, 0))
	require.ErrorIs(t, err, locked.ErrNotAcquired, "no retries: one try")
	_, err = s.Acquire(ctx, "k", locked.WithMaxRetries(-1, 0))
	require.ErrorIs(t, err, locked.ErrInvalid)
	require.NoError(t, hold.Release(ctx))
}

func testNoTimeout(t *testing.T, e env) {
	// The Service's Timeout is far too short to wait for anything; the
	// holder's short TTL is what frees the key. With WithNoTimeout the
	// waiter outlasts the Timeout and gets it.
	p1, p2 := e.h.NewPair(t)
	ns := Namespace(t)
	s := newService(t, p1, locked.Options{Namespace: ns, Timeout: time.Nanosecond})
	other := newService(t, p2, locked.Options{Namespace: ns})
	acquire(t, other, "k", locked.WithTTL(e.h.ShortTTL))
	ctx, cancel := context.WithTimeout(t.Context(), Liveness)
	defer cancel()
	l, err := s.Acquire(ctx, "k", locked.WithNoTimeout())
	require.NoError(t, err)
	require.NoError(t, l.Release(ctx))
}

func testEvents(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	var (
		mu  sync.Mutex
		got []locked.Event
	)
	unsubscribe := s.Subscribe(func(ev locked.Event) {
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	})
	l := acquire(t, s, "k", locked.WithOwner("ann"))
	_, err := s.TryAcquire(ctx, "k")
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.NoError(t, l.Release(ctx))
	unsubscribe()
	unsubscribe() // idempotent
	l = acquire(t, s, "k")
	require.NoError(t, l.Release(ctx))

	mu.Lock()
	defer mu.Unlock()
	types := make([]locked.EventType, len(got))
	for i, ev := range got {
		types[i] = ev.Type
	}
	require.Equal(t, []locked.EventType{locked.Acquired, locked.AcquireFailed, locked.Released}, types)
	require.Equal(t, "ann", got[0].Owner)
	require.ErrorIs(t, got[1].Err, locked.ErrNotAcquired)
	_ = other
}

func testReleaseAll(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	acquire(t, s, "a")
	acquire(t, s, "b")
	lapsed := acquire(t, s, "c", locked.WithTTL(e.h.ShortTTL))
	<-lapsed.Context().Done()
	kept := acquire(t, other, "d")

	n, err := s.ReleaseAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, 0, s.Stats().Open)
	requireFree(t, other, "a")
	requireFree(t, other, "b")
	require.NoError(t, kept.Check(ctx), "other Services' leases are not touched")
	l, err := s.TryAcquire(ctx, "a")
	require.NoError(t, err, "the Service stays open")
	require.NoError(t, l.Release(ctx))
}

func testMutex(t *testing.T, e env) {
	s, other := e.services(t, locked.Options{})
	ctx := t.Context()
	m := s.Mutex("m", locked.WithTTL(time.Minute))
	require.Equal(t, "m", m.Key())
	require.ErrorIs(t, m.Release(ctx), locked.ErrNotHeld)
	require.NoError(t, m.Acquire(ctx))
	st, err := m.State(ctx)
	require.NoError(t, err)
	require.Equal(t, locked.HeldByMe, st.Status)
	require.ErrorIs(t, other.Mutex("m").TryAcquire(ctx), locked.ErrNotAcquired)
	require.NoError(t, m.ExtendBy(ctx, time.Minute))
	require.Greater(t, m.Lease().Remaining(), time.Minute)
	require.NoError(t, m.Release(ctx))
	requireFree(t, other, "m")

	// As a sync.Locker shared by goroutines on two Services: never two
	// inside at once.
	const workers, rounds = 4, 5
	lockers := []sync.Locker{m.Locker(), other.Mutex("m").Locker()}
	var inside, maxInside, done atomic.Int32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lk := lockers[w%2]
			for range rounds {
				lk.Lock()
				n := inside.Add(1)
				for {
					m := maxInside.Load()
					if n <= m || maxInside.CompareAndSwap(m, n) {
						break
					}
				}
				inside.Add(-1)
				done.Add(1)
				lk.Unlock()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), maxInside.Load())
	assert.Equal(t, int32(workers*rounds), done.Load())
	require.Panics(t, func() { s.Mutex("unlocked").Locker().Unlock() })
}
