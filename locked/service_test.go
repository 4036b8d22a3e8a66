package locked_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
)

// liveness bounds every wait for something that must happen. It is far
// longer than any of those waits should take, even under -race on a small,
// busy machine: only a hang reaches it. No test asserts an upper bound on
// how fast something happens.
const liveness = 10 * time.Second

// errFn is what test callbacks return to prove their error comes back.
var errFn = errors.New("fn failed")

// newProvider returns a fresh in-memory provider, closed when t ends (after
// any Service made later, since cleanups run last in, first out).
func newProvider(t *testing.T) *memprovider.Provider {
	t.Helper()
	p := memprovider.New()
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// newService returns a Service on p, closed when t ends.
func newService(t *testing.T, p provider.Provider, opts *locked.Options) *locked.Service {
	t.Helper()
	s, err := locked.New(p, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	return s
}

// uniqueKey returns a key that no other test uses.
func uniqueKey(t *testing.T, name string) string {
	t.Helper()
	return t.Name() + "/" + name
}

// mustAcquire takes key with TryAcquire and closes the lease when t ends.
func mustAcquire(t *testing.T, s *locked.Service, key string, opts ...locked.CallOption) *locked.Lease {
	t.Helper()
	l, err := s.TryAcquire(t.Context(), key, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// waitDone waits, for at most liveness, until ctx is done.
func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	timer := time.NewTimer(liveness)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
		t.Fatalf("%s: context not done after %v", what, liveness)
	}
}

// receive waits, for at most bound, for a value on ch.
func receive[V any](t *testing.T, ch <-chan V, bound time.Duration, what string) V {
	t.Helper()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: nothing after %v", what, bound)
		panic("unreachable")
	}
}

// requireOpError asserts that err is a *locked.Error for op on key.
func requireOpError(t *testing.T, err error, op, key string) {
	t.Helper()
	var le *locked.Error
	require.ErrorAs(t, err, &le)
	assert.Equal(t, op, le.Op, "Error.Op")
	assert.Equal(t, key, le.Key, "Error.Key")
}

// requireArgError asserts that err matches ErrInvalid and carries a
// *provider.ArgError.
func requireArgError(t *testing.T, err error) *provider.ArgError {
	t.Helper()
	require.ErrorIs(t, err, locked.ErrInvalid)
	var ae *provider.ArgError
	require.ErrorAs(t, err, &ae)
	return ae
}

// requireFree asserts that nobody holds key in s's view of the store.
func requireFree(t *testing.T, s *locked.Service, key string) {
	t.Helper()
	held, err := s.IsLocked(context.Background(), key)
	require.NoError(t, err)
	require.False(t, held, "key %q should be free", key)
}

// requireHeld asserts that someone holds key in s's view of the store.
func requireHeld(t *testing.T, s *locked.Service, key string) {
	t.Helper()
	held, err := s.IsLocked(context.Background(), key)
	require.NoError(t, err)
	require.True(t, held, "key %q should be held", key)
}

// eventLog records the events a Service reports. OnEvent runs on whichever
// goroutine changed the lease (the caller's, a renewal's or a timer's).
type eventLog struct {
	mu sync.Mutex
	// events is guarded by mu.
	events []locked.Event
}

func (r *eventLog) record(e locked.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *eventLog) all() []locked.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *eventLog) ofType(typ locked.EventType) []locked.Event {
	var out []locked.Event
	for _, e := range r.all() {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (r *eventLog) types() []locked.EventType {
	var out []locked.EventType
	for _, e := range r.all() {
		out = append(out, e.Type)
	}
	return out
}

func TestNewRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		nilProv bool
		opts    *locked.Options
		arg     string
	}{
		{name: "nil provider", nilProv: true, arg: "provider"},
		{name: "negative TTL", opts: &locked.Options{TTL: -time.Second}, arg: "TTL"},
		{name: "negative Timeout", opts: &locked.Options{Timeout: -time.Nanosecond}, arg: "Timeout"},
		{name: "namespace with colon", opts: &locked.Options{Namespace: "app:v1"}, arg: "Namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p provider.Provider
			if !tt.nilProv {
				p = newProvider(t)
			}
			s, err := locked.New(p, tt.opts)
			require.Nil(t, s)
			ae := requireArgError(t, err)
			assert.Equal(t, tt.arg, ae.Arg)
		})
	}
}

func TestNewDefaults(t *testing.T) {
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, &locked.Options{}) // every zero field means the default

	require.NotEmpty(t, s1.Owner())
	require.NotEmpty(t, s2.Owner())
	require.NotEqual(t, s1.Owner(), s2.Owner(), "each Service gets its own owner ID")

	key := uniqueKey(t, "k")
	before := time.Now()
	l := mustAcquire(t, s1, key)
	after := time.Now()

	// The lease lives DefaultTTL: its deadline is conservative (never later
	// than the store's), so allow some slack below but none above.
	const slack = 5 * time.Second
	exp := l.ExpiresAt()
	assert.False(t, exp.Before(before.Add(locked.DefaultTTL-slack)), "ExpiresAt %v too early", exp)
	assert.False(t, exp.After(after.Add(locked.DefaultTTL)), "ExpiresAt %v too late", exp)

	st, err := s1.State(t.Context(), key)
	require.NoError(t, err)
	assert.Greater(t, st.TTL, locked.DefaultTTL-slack)
	assert.LessOrEqual(t, st.TTL, locked.DefaultTTL)
	assert.Equal(t, s1.Owner(), l.Owner())
}

func TestNewOptionsOwner(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, &locked.Options{Owner: "worker/7"}) // '/' is fine in an owner
	require.Equal(t, "worker/7", s.Owner())

	key := uniqueKey(t, "k")
	l := mustAcquire(t, s, key)
	assert.Equal(t, "worker/7", l.Owner())
	st, err := s.State(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, "worker/7", st.Owner)
	assert.Equal(t, locked.HeldByMe, st.Status)

	// Two Services sharing an Owner still mint distinct tokens.
	s2 := newService(t, p, &locked.Options{Owner: "worker/7"})
	l2 := mustAcquire(t, s2, uniqueKey(t, "k2"))
	assert.NotEqual(t, l.Token(), l2.Token())
}

func TestServiceOptionsTimeout(t *testing.T) {
	p := newProvider(t)
	holder := newService(t, p, nil)
	s := newService(t, p, &locked.Options{Timeout: 50 * time.Millisecond})
	key := uniqueKey(t, "k")
	// The holder's lease lapses well before DefaultTimeout: a Service that
	// waited DefaultTimeout instead of its own Timeout would get the key.
	mustAcquire(t, holder, key, locked.WithTTL(3*time.Second))

	l, err := s.Acquire(t.Context(), key) // no WithTimeout: the Service's applies
	if err == nil {
		_ = l.Close()
	}
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestServiceOptionsTTL(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, &locked.Options{TTL: time.Hour})
	key := uniqueKey(t, "k")
	mustAcquire(t, s, key)
	st, err := s.State(t.Context(), key)
	require.NoError(t, err)
	assert.Greater(t, st.TTL, locked.DefaultTTL, "Options.TTL should replace the default")
	assert.LessOrEqual(t, st.TTL, time.Hour)
}

func TestDefaultTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: waits DefaultTimeout")
	}
	p := newProvider(t)
	holder := newService(t, p, nil)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	mustAcquire(t, holder, key)

	start := time.Now()
	_, err := s.Acquire(t.Context(), key)
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	// A lower bound only: the wait cannot end before its deadline.
	assert.GreaterOrEqual(t, time.Since(start), locked.DefaultTimeout)
}

func TestTryAcquireHeld(t *testing.T) {
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, nil)
	key := uniqueKey(t, "k")
	holder := mustAcquire(t, s1, key)

	for _, s := range []*locked.Service{s1, s2} { // the same Service is no exception
		l, err := s.TryAcquire(t.Context(), key)
		require.Nil(t, l)
		require.ErrorIs(t, err, locked.ErrNotAcquired)
		require.NotErrorIs(t, err, context.DeadlineExceeded, "TryAcquire does not wait")
		requireOpError(t, err, "acquire", key)
	}
	require.NoError(t, holder.Check(t.Context()), "a failed TryAcquire must not disturb the holder")
	assert.Equal(t, 1, s1.Stats().Open)
	assert.Equal(t, 0, s2.Stats().Open)
}

func TestAcquireWaitsForRelease(t *testing.T) {
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, nil)
	key := uniqueKey(t, "k")
	holder := mustAcquire(t, s1, key)

	type result struct {
		l   *locked.Lease
		err error
	}
	got := make(chan result, 1)
	go func() {
		l, err := s2.Acquire(context.Background(), key, locked.WithTimeout(liveness))
		got <- result{l, err}
	}()

	select {
	case r := <-got:
		t.Fatalf("Acquire returned while the key was held: %v, %v", r.l, r.err)
	default:
	}
	require.NoError(t, holder.Release(t.Context()))

	r := receive(t, got, 2*liveness, "waiting Acquire")
	require.NoError(t, r.err)
	t.Cleanup(func() { _ = r.l.Close() })
	assert.Greater(t, r.l.Fence(), holder.Fence(), "the next holder's fence must be greater")
	assert.Equal(t, s2.Owner(), r.l.Owner())
	require.NoError(t, r.l.Check(t.Context()))
}

func TestAcquireTimeout(t *testing.T) {
	p := newProvider(t)
	s1 := newService(t, p, nil)
	s2 := newService(t, p, nil)
	key := uniqueKey(t, "k")
	holder := mustAcquire(t, s1, key)

	l, err := s2.Acquire(t.Context(), key, locked.WithTimeout(50*time.Millisecond))
	require.Nil(t, l)
	require.ErrorIs(t, err, locked.ErrNotAcquired)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	requireOpError(t, err, "acquire", key)

	st, err := s2.State(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, holder.Fence(), st.Fence, "the holder keeps the key")
	assert.Equal(t, 0, s2.Stats().Open)
}

func TestAcquireContextCanceled(t *testing.T) {
	tests := []struct {
		name      string
		cancelNow bool // cancel before calling Acquire, or while it waits
	}{
		{name: "before the call", cancelNow: true},
		{name: "while waiting", cancelNow: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			s1 := newService(t, p, nil)
			s2 := newService(t, p, nil)
			key := uniqueKey(t, "k")
			holder := mustAcquire(t, s1, key)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelNow {
				cancel()
			}
			errc := make(chan error, 1)
			go func() {
				_, err := s2.Acquire(ctx, key, locked.WithTimeout(time.Hour))
				errc <- err
			}()
			cancel()

			err := receive(t, errc, liveness, "cancelled Acquire")
			require.ErrorIs(t, err, locked.ErrNotAcquired)
			require.ErrorIs(t, err, context.Canceled)
			require.NotErrorIs(t, err, context.DeadlineExceeded)
			requireOpError(t, err, "acquire", key)
			require.NoError(t, holder.Check(t.Context()))
			assert.Equal(t, 0, s2.Stats().Open)
		})
	}
}

func TestAcquireRejectsBadInput(t *testing.T) {
	tests := []struct {
		name string
		key  string // "" means the empty key; otherwise a unique key is used
		opts []locked.CallOption
		arg  string
	}{
		{name: "empty key", arg: "key"},
		{name: "zero TTL", key: "k", opts: []locked.CallOption{locked.WithTTL(0)}, arg: "ttl"},
		{name: "negative TTL", key: "k", opts: []locked.CallOption{locked.WithTTL(-time.Second)}, arg: "ttl"},
		{name: "zero timeout", key: "k", opts: []locked.CallOption{locked.WithTimeout(0)}, arg: "timeout"},
		{name: "negative timeout", key: "k", opts: []locked.CallOption{locked.WithTimeout(-1)}, arg: "timeout"},
		{name: "bad option after good ones", key: "k", opts: []locked.CallOption{locked.WithTTL(time.Minute), locked.WithAutoRenew(), locked.WithTTL(-1)}, arg: "ttl"},
	}
	methods := []struct {
		name    string
		acquire func(*locked.Service, context.Context, string, ...locked.CallOption) (*locked.Lease, error)
	}{
		{"Acquire", (*locked.Service).Acquire},
		{"TryAcquire", (*locked.Service).TryAcquire},
	}
	for _, m := range methods {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				p := newProvider(t)
				s := newService(t, p, nil)
				key := tt.key
				if key != "" {
					key = uniqueKey(t, key)
				}
				l, err := m.acquire(s, t.Context(), key, tt.opts...)
				require.Nil(t, l)
				ae := requireArgError(t, err)
				assert.Equal(t, tt.arg, ae.Arg)
				requireOpError(t, err, "acquire", key)

				assert.Equal(t, 0, p.Len(), "nothing may be acquired")
				assert.Equal(t, 0, s.Stats().Open)
				if key != "" {
					requireFree(t, s, key)
				}
			})
		}
	}
}

func TestNilService(t *testing.T) {
	var s *locked.Service
	ctx := context.Background()
	finder := finderFunc(func(context.Context, string) (*account, error) {
		panic("Find must not be called")
	})
	tests := []struct {
		name string
		call func() error
	}{
		{"Acquire", func() error { _, err := s.Acquire(ctx, "k"); return err }},
		{"TryAcquire", func() error { _, err := s.TryAcquire(ctx, "k"); return err }},
		{"Run", func() error {
			return s.Run(ctx, "k", func(context.Context) error { panic("fn must not run") })
		}},
		{"State", func() error { _, err := s.State(ctx, "k"); return err }},
		{"IsLocked", func() error { _, err := s.IsLocked(ctx, "k"); return err }},
		{"ForceRelease", func() error { _, err := s.ForceRelease(ctx, "k"); return err }},
		{"Restore", func() error {
			_, err := s.Restore(ctx, locked.Handle{Key: "k", Token: "t", Fence: 1})
			return err
		}},
		{"locked.Acquire", func() error { _, err := locked.Acquire(ctx, s, &account{Num: "1"}); return err }},
		{"locked.TryAcquire", func() error { _, err := locked.TryAcquire(ctx, s, &account{Num: "1"}); return err }},
		{"locked.AcquireAll", func() error {
			_, err := locked.AcquireAll(ctx, s, []*account{{Num: "1"}, {Num: "2"}})
			return err
		}},
		{"locked.Load", func() error { _, err := locked.Load(ctx, s, finder, "1"); return err }},
		{"locked.LoadAll", func() error { _, err := locked.LoadAll(ctx, s, finder, []string{"1", "2"}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			require.NotPanics(t, func() { err = tt.call() })
			requireArgError(t, err)
		})
	}
}

func TestClosedProvider(t *testing.T) {
	p := memprovider.New()
	s := newService(t, p, nil)
	require.NoError(t, p.Close())
	_, err := s.TryAcquire(t.Context(), uniqueKey(t, "k"))
	require.ErrorIs(t, err, locked.ErrClosed)
	_, err = s.Acquire(t.Context(), uniqueKey(t, "k"))
	require.ErrorIs(t, err, locked.ErrClosed)
	assert.Equal(t, 0, s.Stats().Open)
}

func TestState(t *testing.T) {
	p := newProvider(t)
	me := newService(t, p, nil)
	other := newService(t, p, nil)
	key := uniqueKey(t, "k")
	const ttl = time.Minute

	for _, s := range []*locked.Service{me, other} {
		st, err := s.State(t.Context(), key)
		require.NoError(t, err)
		assert.Equal(t, locked.State{Status: locked.Free}, st)
		requireFree(t, s, key)
	}

	l := mustAcquire(t, me, key, locked.WithTTL(ttl))
	tests := []struct {
		name string
		s    *locked.Service
		want locked.Status
	}{
		{"holder's view", me, locked.HeldByMe},
		{"other's view", other, locked.HeldByOther},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := tt.s.State(t.Context(), key)
			require.NoError(t, err)
			assert.Equal(t, tt.want, st.Status)
			assert.Equal(t, me.Owner(), st.Owner)
			assert.Equal(t, l.Fence(), st.Fence)
			assert.Greater(t, st.TTL, time.Duration(0))
			assert.LessOrEqual(t, st.TTL, ttl)
			requireHeld(t, tt.s, key)
		})
	}

	require.NoError(t, l.Release(t.Context()))
	st, err := other.State(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, locked.State{Status: locked.Free}, st)

	_, err = me.State(t.Context(), "")
	requireArgError(t, err)
	_, err = me.IsLocked(t.Context(), "")
	requireArgError(t, err)
}

func TestStatusString(t *testing.T) {
	tests := []struct {
		st   locked.Status
		want string
	}{
		{locked.Free, "free"},
		{locked.HeldByMe, "held by me"},
		{locked.HeldByOther, "held by other"},
		{locked.Status(42), "Status(42)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.st.String())
	}
}

func TestEventTypeString(t *testing.T) {
	tests := []struct {
		typ  locked.EventType
		want string
	}{
		{locked.Acquired, "acquired"},
		{locked.Extended, "extended"},
		{locked.Released, "released"},
		{locked.Lost, "lost"},
		{locked.ForceReleased, "force released"},
		{locked.EventType(0), "EventType(?)"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.typ.String())
	}
}

func TestForceRelease(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	s := newService(t, p, &locked.Options{OnEvent: log.record})
	other := newService(t, p, nil)
	key := uniqueKey(t, "k")
	l := mustAcquire(t, other, key)

	held, err := s.ForceRelease(t.Context(), key)
	require.NoError(t, err)
	require.True(t, held)
	requireFree(t, s, key)
	require.ErrorIs(t, l.Check(t.Context()), locked.ErrNotHeld)

	forced := log.ofType(locked.ForceReleased)
	require.Len(t, forced, 1)
	assert.Equal(t, locked.Event{Type: locked.ForceReleased, Key: key}, forced[0],
		"ForceReleased carries the key only: no fence, token or owner")

	held, err = s.ForceRelease(t.Context(), key)
	require.NoError(t, err)
	require.False(t, held, "a free key was not held")
	assert.Len(t, log.ofType(locked.ForceReleased), 1, "no event for a free key")

	// The key can be taken again, with a greater fence.
	l2 := mustAcquire(t, s, key)
	assert.Greater(t, l2.Fence(), l.Fence())
	// The old holder's late release must not free the new holder's lock.
	require.ErrorIs(t, l.Release(t.Context()), locked.ErrNotHeld)
	require.NoError(t, l2.Check(t.Context()))

	_, err = s.ForceRelease(t.Context(), "")
	requireArgError(t, err)
}

func TestNamespace(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	a := newService(t, p, &locked.Options{Namespace: "a", OnEvent: log.record})
	a2 := newService(t, p, &locked.Options{Namespace: "a"})
	b := newService(t, p, &locked.Options{Namespace: "b"})
	plain := newService(t, p, nil)
	key := uniqueKey(t, "k")

	la := mustAcquire(t, a, key)
	assert.Equal(t, key, la.Key(), "Lease.Key is the caller's key, without namespace")

	lb, err := b.TryAcquire(t.Context(), key)
	require.NoError(t, err, "another namespace must not contend")
	t.Cleanup(func() { _ = lb.Close() })
	lp, err := plain.TryAcquire(t.Context(), key)
	require.NoError(t, err, "no namespace must not contend with a namespace")
	t.Cleanup(func() { _ = lp.Close() })

	_, err = a2.TryAcquire(t.Context(), key)
	require.ErrorIs(t, err, locked.ErrNotAcquired, "the same namespace contends")
	requireOpError(t, err, "acquire", key)

	st, err := a2.State(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, locked.HeldByOther, st.Status)
	assert.Equal(t, la.Fence(), st.Fence)

	// The store key is Namespace + ":" + key, as Options.Namespace says.
	requireHeld(t, plain, "a:"+key)
	requireHeld(t, plain, "b:"+key)
	assert.True(t, p.IsLocked("a:"+key))

	require.NoError(t, la.Release(t.Context()))
	requireFree(t, a2, key)
	requireHeld(t, b, key)

	for _, e := range log.all() {
		assert.Equal(t, key, e.Key, "%v event key", e.Type)
	}
	assert.Equal(t, []locked.EventType{locked.Acquired, locked.Released}, log.types())

	held, err := a2.ForceRelease(t.Context(), key)
	require.NoError(t, err)
	assert.False(t, held, "a's key is already free; b's must not be touched")
	requireHeld(t, b, key)
}

func TestHeldAndClose(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	ctx := t.Context()
	require.Equal(t, 0, s.Stats().Open)

	var leases []*locked.Lease
	for i, opts := range [][]locked.CallOption{
		nil,
		{locked.WithTTL(time.Hour)},
		{locked.WithTTL(300 * time.Millisecond), locked.WithAutoRenew()},
	} {
		l, err := s.Acquire(ctx, uniqueKey(t, string(rune('a'+i))), opts...)
		require.NoError(t, err)
		leases = append(leases, l)
		require.Equal(t, i+1, s.Stats().Open)
	}
	released := mustAcquire(t, s, uniqueKey(t, "released"))
	require.Equal(t, 4, s.Stats().Open)
	require.NoError(t, released.Release(ctx))
	require.Equal(t, 3, s.Stats().Open, "a released lease is no longer held")

	require.NoError(t, s.Close())
	require.Equal(t, 0, s.Stats().Open)
	for _, l := range leases {
		requireFree(t, s, l.Key())
		require.False(t, p.IsLocked(l.Key()))
		waitDone(t, l.Context(), "lease closed by Service.Close")
		require.ErrorIs(t, context.Cause(l.Context()), locked.ErrNotHeld)
		require.ErrorIs(t, l.Release(ctx), locked.ErrNotHeld)
		require.NoError(t, l.Close())
	}

	key := uniqueKey(t, "after")
	_, err := s.Acquire(ctx, key)
	require.ErrorIs(t, err, locked.ErrClosed)
	requireOpError(t, err, "acquire", key)
	// A closed Service does not wait for a held key: it fails at once.
	other := newService(t, p, nil)
	busy := mustAcquire(t, other, uniqueKey(t, "busy"), locked.WithTTL(time.Hour))
	bounded, cancel := context.WithTimeout(ctx, liveness)
	defer cancel()
	_, err = s.Acquire(bounded, busy.Key(), locked.WithTimeout(time.Hour))
	require.ErrorIs(t, err, locked.ErrClosed)
	require.NotErrorIs(t, err, locked.ErrNotAcquired)
	_, err = s.TryAcquire(ctx, key)
	require.ErrorIs(t, err, locked.ErrClosed)
	_, err = s.Restore(ctx, leases[0].Handle())
	require.ErrorIs(t, err, locked.ErrClosed)
	require.False(t, p.IsLocked(key))

	require.NoError(t, s.Close(), "Close is idempotent")
}

func TestEvents(t *testing.T) {
	var log eventLog
	p := newProvider(t)
	s := newService(t, p, &locked.Options{OnEvent: log.record, Owner: "events-owner"})
	ctx := t.Context()

	// Acquired, Extended, Released.
	k1 := uniqueKey(t, "k1")
	l1, err := s.Acquire(ctx, k1, locked.WithTTL(time.Minute))
	require.NoError(t, err)
	require.NoError(t, l1.ExtendTo(ctx, time.Hour))
	require.NoError(t, l1.Release(ctx))
	require.NoError(t, l1.Close())
	want := func(typ locked.EventType, l *locked.Lease) locked.Event {
		return locked.Event{Type: typ, Key: l.Key(), Fence: l.Fence(), Token: l.Token(), Owner: "events-owner"}
	}
	require.Equal(t, []locked.Event{
		want(locked.Acquired, l1),
		want(locked.Extended, l1),
		want(locked.Released, l1),
	}, log.all(), "a second Close reports nothing")

	// Lost, when the TTL lapses.
	k2 := uniqueKey(t, "k2")
	l2 := mustAcquire(t, s, k2, locked.WithTTL(50*time.Millisecond))
	waitDone(t, l2.Context(), "lapsing lease")
	// OnEvent runs after the context ends, on the timer's goroutine.
	require.Eventually(t, func() bool { return len(log.ofType(locked.Lost)) == 1 }, liveness, time.Millisecond)
	lost := log.ofType(locked.Lost)[0]
	require.ErrorIs(t, lost.Err, locked.ErrNotHeld)
	lost.Err = nil
	assert.Equal(t, want(locked.Lost, l2), lost)

	// ForceReleased.
	k3 := uniqueKey(t, "k3")
	mustAcquire(t, s, k3)
	held, err := s.ForceRelease(ctx, k3)
	require.NoError(t, err)
	require.True(t, held)
	assert.Equal(t, locked.Event{Type: locked.ForceReleased, Key: k3}, log.all()[len(log.all())-1])

	assert.Equal(t, []locked.EventType{
		locked.Acquired, locked.Extended, locked.Released,
		locked.Acquired, locked.Lost,
		locked.Acquired, locked.ForceReleased,
	}, log.types())
}

func TestRun(t *testing.T) {
	t.Run("holds the key while fn runs", func(t *testing.T) {
		p := newProvider(t)
		s := newService(t, p, nil)
		other := newService(t, p, nil)
		key := uniqueKey(t, "k")
		calls := 0
		err := s.Run(t.Context(), key, func(ctx context.Context) error {
			calls++
			require.NoError(t, ctx.Err())
			requireHeld(t, s, key)
			st, err := s.State(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, locked.HeldByMe, st.Status)
			_, err = other.TryAcquire(ctx, key)
			require.ErrorIs(t, err, locked.ErrNotAcquired)
			assert.Equal(t, 1, s.Stats().Open)
			return errFn
		})
		require.ErrorIs(t, err, errFn, "Run returns fn's error")
		require.Equal(t, 1, calls)
		requireFree(t, s, key)
		assert.Equal(t, 0, s.Stats().Open)
	})

	t.Run("nil from fn", func(t *testing.T) {
		p := newProvider(t)
		s := newService(t, p, nil)
		key := uniqueKey(t, "k")
		require.NoError(t, s.Run(t.Context(), key, func(context.Context) error { return nil }))
		requireFree(t, s, key)
		assert.Equal(t, 0, s.Stats().Open)
	})

	t.Run("fn's context ends when the lease is lost", func(t *testing.T) {
		p := newProvider(t)
		s := newService(t, p, nil)
		key := uniqueKey(t, "k")
		err := s.Run(t.Context(), key, func(ctx context.Context) error {
			held, err := s.ForceRelease(context.Background(), key)
			require.NoError(t, err)
			require.True(t, held)
			// Auto-renewal's next Extend finds the lease gone.
			waitDone(t, ctx, "fn's context after ForceRelease")
			require.ErrorIs(t, context.Cause(ctx), locked.ErrNotHeld)
			return nil
		}, locked.WithTTL(150*time.Millisecond), locked.WithAutoRenew())
		require.ErrorIs(t, err, locked.ErrNotHeld, "Run reports the lost lease")
		requireFree(t, s, key)
		assert.Equal(t, 0, s.Stats().Open)
	})

	t.Run("fn's context ends with the caller's", func(t *testing.T) {
		p := newProvider(t)
		s := newService(t, p, nil)
		key := uniqueKey(t, "k")
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		err := s.Run(ctx, key, func(ctx context.Context) error {
			cancel()
			waitDone(t, ctx, "fn's context after the caller's ended")
			return ctx.Err()
		})
		require.ErrorIs(t, err, context.Canceled)
		requireFree(t, s, key)
	})

	t.Run("acquire error when the key is held", func(t *testing.T) {
		p := newProvider(t)
		s := newService(t, p, nil)
		other := newService(t, p, nil)
		key := uniqueKey(t, "k")
		holder := mustAcquire(t, other, key)
		called := false
		err := s.Run(t.Context(), key, func(context.Context) error {
			called = true
			return nil
		}, locked.WithTimeout(50*time.Millisecond))
		require.ErrorIs(t, err, locked.ErrNotAcquired)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		requireOpError(t, err, "acquire", key)
		require.False(t, called, "fn must not run without the lock")
		require.NoError(t, holder.Check(t.Context()))
	})

	t.Run("bad option", func(t *testing.T) {
		p := newProvider(t)
		s := newService(t, p, nil)
		err := s.Run(t.Context(), uniqueKey(t, "k"), func(context.Context) error {
			t.Error("fn must not run")
			return nil
		}, locked.WithTTL(-1))
		requireArgError(t, err)
		assert.Equal(t, 0, p.Len())
	})
}

// TestRunReleasesOnPanic: a panicking fn must not leave the key locked (an
// HTTP server, for one, recovers handler panics and carries on).
func TestRunReleasesOnPanic(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	func() {
		defer func() { require.Equal(t, "boom", recover()) }()
		_ = s.Run(t.Context(), key, func(context.Context) error { panic("boom") }, locked.WithAutoRenew())
	}()
	requireFree(t, s, key)
	assert.Equal(t, 0, s.Stats().Open)
}

// TestRunNilFn: a nil fn is bad input (invariant 7): a clear error, no panic
// and no lock left behind.
func TestRunNilFn(t *testing.T) {
	p := newProvider(t)
	s := newService(t, p, nil)
	key := uniqueKey(t, "k")
	var err error
	require.NotPanics(t, func() { err = s.Run(t.Context(), key, nil) })
	requireArgError(t, err)
	requireFree(t, s, key)
}

// TestNilServiceMethods: every method of a nil *Service reports ErrInvalid
// (or zero) rather than panicking (invariant 7: "nil Service").
func TestNilServiceMethods(t *testing.T) {
	var s *locked.Service
	assert.NotPanics(t, func() { _ = s.Close() }, "Close")
	assert.NotPanics(t, func() { _ = s.Stats().Open }, "Held")
	assert.NotPanics(t, func() { _ = s.Owner() }, "Owner")
}

func TestConcurrentAcquireRelease(t *testing.T) {
	const (
		goroutines = 16
		iterations = 200
	)
	p := newProvider(t)
	services := []*locked.Service{newService(t, p, nil), newService(t, p, nil)}
	key := uniqueKey(t, "k")

	var (
		occupancy atomic.Int32
		overlaps  atomic.Int32
		lastFence atomic.Uint64
		backwards atomic.Int32
		acquired  atomic.Int32
		wg        sync.WaitGroup
	)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := services[g%len(services)]
			for range iterations {
				l, err := s.Acquire(context.Background(), key, locked.WithTimeout(liveness))
				if !assert.NoError(t, err) {
					return
				}
				if occupancy.Add(1) != 1 {
					overlaps.Add(1)
				}
				if l.Fence() <= lastFence.Load() {
					backwards.Add(1)
				}
				lastFence.Store(l.Fence())
				acquired.Add(1)
				occupancy.Add(-1)
				if !assert.NoError(t, l.Release(context.Background())) {
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	receive(t, done, 6*liveness, "all workers")

	assert.Zero(t, overlaps.Load(), "two holders at once")
	assert.Zero(t, backwards.Load(), "a fence did not increase")
	assert.EqualValues(t, goroutines*iterations, acquired.Load())
	requireFree(t, services[0], key)
	for _, s := range services {
		assert.Equal(t, 0, s.Stats().Open)
	}
}
