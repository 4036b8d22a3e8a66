// Package providertest implements a conformance suite for implementations of
// provider.Provider, in the spirit of testing/fstest.TestFS and
// golang.org/x/net/nettest.TestConn: every lock store runs the same tests,
// so the packages built on the contract can rely on it whatever the store.
//
// A provider package calls Run from one of its own tests:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, func(t *testing.T) provider.Provider {
//			p := memprovider.New()
//			t.Cleanup(func() { p.Close() })
//			return p
//		})
//	}
//
// # Keys and shared stores
//
// Every subtest uses its own keys, made from the test's name and a random
// UUID, so providers backed by one shared store (a single Redis server for a
// whole test binary) can be tested without clearing it between subtests, and
// leftovers of a failed subtest cannot disturb the next one.
//
// # Timing
//
// The suite never sleeps and then asserts that something "seemed to work".
// A hold's expiry is awaited by a blocking Acquire from another token with a
// generous deadline. Durations are asserted only as generous liveness bounds
// (a released lock reaches its waiter within 5 s), never as tight latencies,
// so the suite is reliable on small, busy CI machines. Short sleeps appear
// only to make it likely that a waiter is already blocked before the lock is
// released; the assertions hold whether or not it is.
//
// The package depends only on the standard library's testing package (and
// github.com/google/uuid), not on an assertion library, so importing it does
// not add test-only dependencies to a provider's module.
package providertest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/provider"
)

// Durations used by the suite. They are generous on purpose: see the package
// documentation.
const (
	// longTTL is a hold that only a release can end while a subtest runs.
	longTTL = 60 * time.Second
	// shortTTL is a hold meant to lapse during the subtest.
	shortTTL = 200 * time.Millisecond
	// waitBound is the deadline of an Acquire that is expected to succeed
	// after a release or an expiry.
	waitBound = 10 * time.Second
	// wakeBound is the liveness bound: a released lock reaches a blocked
	// waiter within this time.
	wakeBound = 5 * time.Second
	// callBound is the deadline of a call that is not expected to wait.
	callBound = 30 * time.Second
	// settle makes it likely that a waiter goroutine is blocked in Acquire
	// before the holder releases. It is never used as proof of anything.
	settle = 50 * time.Millisecond
)

// Run runs the conformance suite against providers made by newProvider.
//
// newProvider is called once at the start of each subtest listed below
// (nested subtests of one share its provider), with that subtest's
// *testing.T, and must return a fresh, open provider (providers
// sharing one backing store are fine: every subtest uses its own keys). It
// may register t.Cleanup to close the provider; whether it does or not, Run
// closes the provider when the subtest ends, after the factory's own
// cleanups have run, and accepts nil or an error matching provider.ErrClosed
// from that Close. A factory's cleanup that calls Close must likewise accept
// provider.ErrClosed, because the Closed subtest closes the provider itself.
//
// Subtests run one after another (not in parallel), each named as below:
//
//   - MutualExclusion: 16 goroutines × 50 rounds of Acquire, critical section,
//     Release on one key never overlap, all 800 rounds complete, and fences
//     rise from one holder to the next.
//   - TryAcquireHeld: TryAcquire of a held key returns ErrNotAcquired at once,
//     for another token and for the holder's own token, and Acquire by the
//     holder's own token waits (no re-entrancy).
//   - ReleaseOwnerChecked: only the holder's token releases; a second release,
//     a non-holder's release and a release or extend by a holder whose hold
//     expired and was taken over return ErrNotHeld and change nothing.
//   - Extend: extending keeps the fence, moves Expires and the State TTL
//     (also downwards, since Extend sets the TTL); extending a key one does
//     not hold, a free key or a lapsed hold returns ErrNotHeld.
//   - TTLExpiry: a hold lapses after its TTL: a blocked Acquire by another
//     token succeeds, not before the first Grant.Expires, with a higher fence.
//   - ExpiresNotAfterStore: 30 holds of 20 ms (from TryAcquire, Acquire
//     and Extend) lapse while another token spins on TryAcquire; the store
//     never grants it the key before the hold's Grant.Expires.
//   - FencesIncrease: fences strictly increase per key across releases, an
//     expiry and a ForceRelease, for TryAcquire and Acquire, on two keys.
//   - ForceRelease: frees a held key whoever holds it (reporting true), wakes
//     a waiter, leaves the old holder with ErrNotHeld; reports false on a
//     free key.
//   - State: a free key reads as the zero State; a held one shows the holder's
//     token and fence and a TTL in (0, requested TTL].
//   - GrantExpires: Grant.Expires of TryAcquire, Acquire and Extend lies after
//     the call started and no later than its end plus the TTL.
//   - WaiterWokenOnRelease: a release (not an expiry) hands the key to a
//     blocked waiter within 5 s; five queued waiters that each release in
//     turn all acquire, one at a time, each within 5 s of the previous
//     release.
//   - WaitCancelled: a waiter whose context is cancelled or times out gets an
//     error matching both ErrNotAcquired and ctx.Err(), and leaves no hold and
//     no stuck queue entry; a TryAcquire or Acquire whose context ended
//     before the call is refused the same way, on a free and on a held key,
//     and leaves nothing held.
//   - BadInput: empty keys and tokens and non-positive TTLs make every method
//     return an *provider.ArgError matching ErrInvalid, and change nothing.
//   - Closed: after Close every method returns ErrClosed, a blocked waiter
//     returns an error, and a second Close returns nil or ErrClosed.
//   - KeysIndependent: holding one key does not block another, including keys
//     that share a prefix or contain pattern characters.
//   - LocalClock (only for a provider.LocalClock): grants are exact (Expires
//     minus the TTL is a reading taken during the call), ReleaseAt is
//     Release with a reading taken during the call (the zero Time for bad
//     input), and 400 holds of microseconds are freed only at readings
//     before their Expires and found lapsed only at or after it.
func Run(t *testing.T, newProvider func(t *testing.T) provider.Provider) {
	t.Helper()
	if newProvider == nil {
		t.Fatal("providertest.Run: newProvider is nil")
	}
	s := suite{newProvider: newProvider}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"MutualExclusion", s.testMutualExclusion},
		{"TryAcquireHeld", s.testTryAcquireHeld},
		{"ReleaseOwnerChecked", s.testReleaseOwnerChecked},
		{"Extend", s.testExtend},
		{"TTLExpiry", s.testTTLExpiry},
		{"ExpiresNotAfterStore", s.testExpiresNotAfterStore},
		{"FencesIncrease", s.testFencesIncrease},
		{"ForceRelease", s.testForceRelease},
		{"State", s.testState},
		{"GrantExpires", s.testGrantExpires},
		{"WaiterWokenOnRelease", s.testWaiterWokenOnRelease},
		{"WaitCancelled", s.testWaitCancelled},
		{"BadInput", s.testBadInput},
		{"Closed", s.testClosed},
		{"KeysIndependent", s.testKeysIndependent},
		{"LocalClock", s.testLocalClock},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	newProvider func(t *testing.T) provider.Provider
}

// provider returns a new provider that is closed when t ends.
func (s suite) provider(t *testing.T) provider.Provider {
	t.Helper()
	var p provider.Provider
	// Registered before the factory runs, so it runs after the factory's own
	// cleanups (cleanups run last-in, first-out).
	t.Cleanup(func() {
		if p == nil {
			return
		}
		if err := safeClose(p); err != nil && !errors.Is(err, provider.ErrClosed) {
			t.Errorf("Close at the end of the subtest: %v", err)
		}
	})
	p = s.newProvider(t)
	if p == nil {
		t.Fatal("newProvider returned nil")
	}
	return p
}

// safeClose calls p.Close and turns a panic into an error.
func safeClose(p provider.Provider) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("Close panicked: %v", r)
		}
	}()
	return p.Close()
}

// newKey returns a key no other test uses.
func newKey(t *testing.T, name string) string {
	return "providertest:" + t.Name() + ":" + name + ":" + uuid.NewString()
}

// newToken returns a token no other holder uses.
func newToken(name string) string {
	return name + "-" + uuid.NewString()
}

// bounded returns a context that ends after d or when t ends.
func bounded(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func tryAcquire(t *testing.T, p provider.Provider, key, token string, ttl time.Duration) provider.Grant {
	t.Helper()
	g, err := p.TryAcquire(bounded(t, callBound), key, token, ttl)
	if err != nil {
		t.Fatalf("TryAcquire(%q, %q, %v) = %v, want success", key, token, ttl, err)
	}
	if g.Fence == 0 {
		t.Fatalf("TryAcquire(%q, %q, %v) granted fence 0; fences of grants must be positive", key, token, ttl)
	}
	return g
}

// acquire calls Acquire with a deadline of waitBound and fails t unless it
// succeeds.
func acquire(t *testing.T, p provider.Provider, key, token string, ttl time.Duration) provider.Grant {
	t.Helper()
	g, err := p.Acquire(bounded(t, waitBound), key, token, ttl)
	if err != nil {
		t.Fatalf("Acquire(%q, %q, %v) = %v, want success within %v", key, token, ttl, err, waitBound)
	}
	if g.Fence == 0 {
		t.Fatalf("Acquire(%q, %q, %v) granted fence 0; fences of grants must be positive", key, token, ttl)
	}
	return g
}

func release(t *testing.T, p provider.Provider, key, token string) {
	t.Helper()
	if err := p.Release(bounded(t, callBound), key, token); err != nil {
		t.Fatalf("Release(%q, %q) = %v, want nil", key, token, err)
	}
}

func forceRelease(t *testing.T, p provider.Provider, key string, want bool) {
	t.Helper()
	held, err := p.ForceRelease(bounded(t, callBound), key)
	if err != nil {
		t.Fatalf("ForceRelease(%q) = %v", key, err)
	}
	if held != want {
		t.Fatalf("ForceRelease(%q) reported held=%v, want %v", key, held, want)
	}
}

func state(t *testing.T, p provider.Provider, key string) provider.State {
	t.Helper()
	st, err := p.State(bounded(t, callBound), key)
	if err != nil {
		t.Fatalf("State(%q) = %v", key, err)
	}
	return st
}

// wantFree fails t unless key reads as the zero State.
func wantFree(t *testing.T, p provider.Provider, key string) {
	t.Helper()
	if st := state(t, p, key); st != (provider.State{}) {
		t.Fatalf("State(%q) = %+v, want the zero State (free)", key, st)
	}
}

// wantHeld fails t unless key is held by token with fence, and returns the
// state.
func wantHeld(t *testing.T, p provider.Provider, key, token string, fence uint64) provider.State {
	t.Helper()
	st := state(t, p, key)
	if !st.Held || st.Token != token || st.Fence != fence {
		t.Fatalf("State(%q) = %+v, want held by %q with fence %d", key, st, token, fence)
	}
	if st.TTL <= 0 {
		t.Fatalf("State(%q).TTL = %v for a held key, want positive", key, st.TTL)
	}
	return st
}

// wantErr fails t unless err matches every target.
func wantErr(t *testing.T, call string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error matching %v", call, targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("%s = %v, want an error matching %q (errors.Is)", call, err, target)
		}
	}
}

type acquireResult struct {
	grant provider.Grant
	err   error
	at    time.Time // when Acquire returned
}

// goAcquire calls Acquire in a new goroutine. started is closed just before
// the call; the result arrives on res, which is buffered.
func goAcquire(ctx context.Context, p provider.Provider, key, token string, ttl time.Duration) (started <-chan struct{}, res <-chan acquireResult) {
	s := make(chan struct{})
	r := make(chan acquireResult, 1)
	go func() {
		close(s)
		g, err := p.Acquire(ctx, key, token, ttl)
		r <- acquireResult{grant: g, err: err, at: time.Now()}
	}()
	return s, r
}

// await waits up to d for the result of goAcquire.
func await(t *testing.T, what string, res <-chan acquireResult, d time.Duration) acquireResult {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-res:
		return r
	case <-timer.C:
		t.Fatalf("%s: Acquire did not return within %v", what, d)
		panic("unreachable")
	}
}

// stillWaiting fails t if the Acquire behind res has returned.
func stillWaiting(t *testing.T, what string, res <-chan acquireResult) {
	t.Helper()
	select {
	case r := <-res:
		if r.err == nil {
			t.Fatalf("%s: Acquire succeeded with fence %d while the key was held", what, r.grant.Fence)
		}
		t.Fatalf("%s: Acquire returned early: %v", what, r.err)
	default:
	}
}

// blockedWaiter starts Acquire in a goroutine and gives it a moment to block.
func blockedWaiter(t *testing.T, p provider.Provider, ctx context.Context, key, token string, ttl time.Duration) <-chan acquireResult {
	t.Helper()
	started, res := goAcquire(ctx, p, key, token, ttl)
	<-started
	time.Sleep(settle) // only makes it likely the waiter is blocked; proves nothing
	stillWaiting(t, "waiter "+token, res)
	return res
}

func (s suite) testMutualExclusion(t *testing.T) {
	p := s.provider(t)
	key := newKey(t, "k")
	const (
		workers = 16
		rounds  = 50
		ttl     = 30 * time.Second // expiry cannot end a hold during the test
	)
	var (
		occupancy  atomic.Int64 // holders inside the critical section now
		maxOcc     atomic.Int64 // the most ever seen
		violations atomic.Int64 // critical sections entered with another inside
		fenceDrops atomic.Int64 // grants whose fence was not above the last one
		lastFence  atomic.Uint64
		total      atomic.Int64 // completed critical sections
		wg         sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := newToken(fmt.Sprintf("worker%d", w))
			for i := range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				g, err := p.Acquire(ctx, key, token, ttl)
				cancel()
				if err != nil {
					t.Errorf("worker %d round %d: Acquire = %v, want success", w, i, err)
					return
				}
				n := occupancy.Add(1)
				if n != 1 {
					violations.Add(1)
				}
				for m := maxOcc.Load(); n > m && !maxOcc.CompareAndSwap(m, n); m = maxOcc.Load() {
				}
				if prev := lastFence.Swap(g.Fence); g.Fence <= prev {
					fenceDrops.Add(1)
				}
				for range 3 {
					runtime.Gosched()
				}
				occupancy.Add(-1)
				total.Add(1)

				ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
				err = p.Release(ctx, key, token)
				cancel()
				if err != nil {
					t.Errorf("worker %d round %d: Release = %v, want nil", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()

	if v := violations.Load(); v != 0 {
		t.Errorf("%d critical sections were entered while another holder was inside (max occupancy %d, want 1)", v, maxOcc.Load())
	}
	if d := fenceDrops.Load(); d != 0 {
		t.Errorf("%d grants had a fence not above the previous holder's", d)
	}
	if got := total.Load(); got != workers*rounds {
		t.Errorf("completed %d critical sections, want %d", got, workers*rounds)
	}
	if !t.Failed() {
		wantFree(t, p, key)
	}
}

func (s suite) testTryAcquireHeld(t *testing.T) {
	p := s.provider(t)
	key := newKey(t, "k")
	a, b := newToken("a"), newToken("b")

	ga := tryAcquire(t, p, key, a, longTTL)

	// TryAcquire must not wait: a deadline error would mean it did.
	_, err := p.TryAcquire(bounded(t, waitBound), key, b, longTTL)
	wantErr(t, "TryAcquire by another token of a held key", err, provider.ErrNotAcquired)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("TryAcquire of a held key waited for its context: %v", err)
	}

	_, err = p.TryAcquire(bounded(t, waitBound), key, a, longTTL)
	wantErr(t, "TryAcquire by the holder's own token (locks are not re-entrant)", err, provider.ErrNotAcquired)

	// Acquire by the holder's own token waits like anybody else's.
	_, res := goAcquire(bounded(t, 2*settle), p, key, a, longTTL)
	r := await(t, "Acquire by the holder's own token", res, wakeBound)
	wantErr(t, "Acquire by the holder's own token (locks are not re-entrant)", r.err, provider.ErrNotAcquired, context.DeadlineExceeded)

	wantHeld(t, p, key, a, ga.Fence)

	release(t, p, key, a)
	gb := tryAcquire(t, p, key, b, longTTL)
	if gb.Fence <= ga.Fence {
		t.Fatalf("fence after release = %d, want > %d", gb.Fence, ga.Fence)
	}
	release(t, p, key, b)
}

func (s suite) testReleaseOwnerChecked(t *testing.T) {
	p := s.provider(t)

	t.Run("NonHolder", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")

		err := p.Release(bounded(t, callBound), key, a)
		wantErr(t, "Release of a key never held", err, provider.ErrNotHeld)

		ga := tryAcquire(t, p, key, a, longTTL)
		err = p.Release(bounded(t, callBound), key, b)
		wantErr(t, "Release by a non-holder", err, provider.ErrNotHeld)
		wantHeld(t, p, key, a, ga.Fence)

		release(t, p, key, a)
		wantFree(t, p, key)
		err = p.Release(bounded(t, callBound), key, a)
		wantErr(t, "second Release by the former holder", err, provider.ErrNotHeld)
		wantFree(t, p, key)
	})

	t.Run("StaleHolder", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")
		const bTTL = 30 * time.Second

		ga := tryAcquire(t, p, key, a, shortTTL)
		// Block until a's hold lapses and b takes over.
		gb := acquire(t, p, key, b, bTTL)
		if gb.Fence <= ga.Fence {
			t.Fatalf("fence after expiry = %d, want > %d", gb.Fence, ga.Fence)
		}

		err := p.Release(bounded(t, callBound), key, a)
		wantErr(t, "Release by a holder whose hold expired and was taken over", err, provider.ErrNotHeld)
		wantHeld(t, p, key, b, gb.Fence)

		_, err = p.Extend(bounded(t, callBound), key, a, longTTL)
		wantErr(t, "Extend by a holder whose hold expired and was taken over", err, provider.ErrNotHeld)
		st := wantHeld(t, p, key, b, gb.Fence)
		if st.TTL > bTTL {
			t.Fatalf("State.TTL = %v after a stale Extend to %v, want <= b's %v (the stale Extend changed b's hold)", st.TTL, longTTL, bTTL)
		}

		release(t, p, key, b)
	})
}

func (s suite) testExtend(t *testing.T) {
	p := s.provider(t)

	t.Run("Holder", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")
		const first = 2 * time.Second

		ga := tryAcquire(t, p, key, a, first)
		ge, err := p.Extend(bounded(t, callBound), key, a, longTTL)
		if err != nil {
			t.Fatalf("Extend(%v) by the holder = %v", longTTL, err)
		}
		if ge.Fence != ga.Fence {
			t.Fatalf("Extend changed the fence from %d to %d", ga.Fence, ge.Fence)
		}
		if !ge.Expires.After(ga.Expires) {
			t.Fatalf("Extend(%v) returned Expires %v, not after the acquire's %v", longTTL, ge.Expires, ga.Expires)
		}
		st := wantHeld(t, p, key, a, ga.Fence)
		if st.TTL <= first || st.TTL > longTTL {
			t.Fatalf("State.TTL after Extend(%v) = %v, want in (%v, %v]", longTTL, st.TTL, first, longTTL)
		}

		// Extend sets the TTL, so it can also shorten it.
		const shorter = 10 * time.Second
		gs, err := p.Extend(bounded(t, callBound), key, a, shorter)
		if err != nil {
			t.Fatalf("Extend(%v) by the holder = %v", shorter, err)
		}
		if gs.Fence != ga.Fence {
			t.Fatalf("Extend changed the fence from %d to %d", ga.Fence, gs.Fence)
		}
		st = wantHeld(t, p, key, a, ga.Fence)
		if st.TTL > shorter {
			t.Fatalf("State.TTL after Extend(%v) = %v, want <= %v (Extend sets the TTL)", shorter, st.TTL, shorter)
		}

		_, err = p.Extend(bounded(t, callBound), key, b, longTTL)
		wantErr(t, "Extend by a non-holder", err, provider.ErrNotHeld)
		st = wantHeld(t, p, key, a, ga.Fence)
		if st.TTL > shorter {
			t.Fatalf("State.TTL = %v after a non-holder's Extend, want <= %v (unchanged)", st.TTL, shorter)
		}

		release(t, p, key, a)
		_, err = p.Extend(bounded(t, callBound), key, a, longTTL)
		wantErr(t, "Extend after Release", err, provider.ErrNotHeld)
		wantFree(t, p, key)
	})

	t.Run("FreeKey", func(t *testing.T) {
		key := newKey(t, "k")
		_, err := p.Extend(bounded(t, callBound), key, newToken("a"), longTTL)
		wantErr(t, "Extend of a key never held", err, provider.ErrNotHeld)
		wantFree(t, p, key)
	})

	t.Run("Lapsed", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")
		tryAcquire(t, p, key, a, shortTTL)
		acquire(t, p, key, b, longTTL) // returns once a's hold lapsed
		release(t, p, key, b)
		_, err := p.Extend(bounded(t, callBound), key, a, longTTL)
		wantErr(t, "Extend of a lapsed hold on a free key", err, provider.ErrNotHeld)
		wantFree(t, p, key)
	})
}

func (s suite) testTTLExpiry(t *testing.T) {
	p := s.provider(t)
	key := newKey(t, "k")
	a, b := newToken("a"), newToken("b")

	ga := tryAcquire(t, p, key, a, shortTTL)
	gb, err := p.Acquire(bounded(t, waitBound), key, b, longTTL)
	acquiredAt := time.Now()
	if err != nil {
		t.Fatalf("Acquire after a %v hold = %v, want success within %v", shortTTL, err, waitBound)
	}
	if gb.Fence <= ga.Fence {
		t.Fatalf("fence after expiry = %d, want > %d", gb.Fence, ga.Fence)
	}
	// Grant.Expires is a conservative deadline: the store may not end the
	// hold before it, so nobody else may get the key before it.
	if acquiredAt.Before(ga.Expires) {
		t.Fatalf("another token acquired the key at %v, before the first hold's Grant.Expires %v",
			acquiredAt.Format(time.StampMicro), ga.Expires.Format(time.StampMicro))
	}
	wantHeld(t, p, key, b, gb.Fence)
	release(t, p, key, b)
}

// expiresRounds is the number of holds ExpiresNotAfterStore lets lapse,
// and expiresTTL their TTL (whole milliseconds: stores such as Redis count
// in them).
const (
	expiresRounds = 30
	expiresTTL    = 20 * time.Millisecond
)

// testExpiresNotAfterStore checks Grant.Expires against the store itself:
// another token spins on TryAcquire, so it is granted the key at the first
// instant the store lets the hold go, and that must not come before the
// hold's Grant.Expires. TTLExpiry checks the same with a blocked Acquire,
// whose wake-up may come late enough to hide a deadline that is a little
// too late; a lease that trusts such a deadline calls itself held after the
// store gave the key away.
func (s suite) testExpiresNotAfterStore(t *testing.T) {
	p := s.provider(t)
	for i := range expiresRounds {
		key := newKey(t, fmt.Sprint("k", i))
		a, b := newToken("a"), newToken("b")
		var ga provider.Grant
		how := [...]string{"TryAcquire", "Acquire", "Extend"}[i%3]
		switch how {
		case "TryAcquire":
			ga = tryAcquire(t, p, key, a, expiresTTL)
		case "Acquire":
			ga = acquire(t, p, key, a, expiresTTL)
		case "Extend":
			tryAcquire(t, p, key, a, longTTL)
			var err error
			if ga, err = p.Extend(bounded(t, callBound), key, a, expiresTTL); err != nil {
				t.Fatalf("Extend(%q, %q, %v) = %v, want nil", key, a, expiresTTL, err)
			}
		}
		ctx := bounded(t, waitBound)
		for tries := 1; ; tries++ {
			_, err := p.TryAcquire(ctx, key, b, longTTL)
			grantedBy := time.Now() // the store granted b before this instant
			if err == nil {
				if grantedBy.Before(ga.Expires) {
					t.Fatalf("round %d: the store gave the key to another token before %v, but %s's Grant.Expires was %v (%v later): the deadline is not conservative",
						i, grantedBy.Format(time.StampMicro), how, ga.Expires.Format(time.StampMicro), ga.Expires.Sub(grantedBy))
				}
				break
			}
			if !errors.Is(err, provider.ErrNotAcquired) || ctx.Err() != nil {
				t.Fatalf("round %d: TryAcquire #%d while a %v hold lapses = %v, want success within %v", i, tries, expiresTTL, err, waitBound)
			}
		}
		release(t, p, key, b)
	}
}

func (s suite) testFencesIncrease(t *testing.T) {
	p := s.provider(t)

	// check fails t unless fence is above every fence seen before on key.
	type sequence struct {
		key    string
		fences []uint64
	}
	check := func(t *testing.T, seq *sequence, how string, g provider.Grant) {
		t.Helper()
		if g.Fence == 0 {
			t.Fatalf("%s: fence 0; fences of grants must be positive", how)
		}
		if n := len(seq.fences); n > 0 && g.Fence <= seq.fences[n-1] {
			t.Fatalf("%s: fence %d, want > %d (fences so far: %v)", how, g.Fence, seq.fences[n-1], seq.fences)
		}
		seq.fences = append(seq.fences, g.Fence)
	}

	t.Run("OneKey", func(t *testing.T) {
		seq := &sequence{key: newKey(t, "k")}
		for i := range 20 {
			tok := newToken(fmt.Sprintf("round%d", i))
			var g provider.Grant
			if i%2 == 0 {
				g = tryAcquire(t, p, seq.key, tok, longTTL)
			} else {
				g = acquire(t, p, seq.key, tok, longTTL)
			}
			check(t, seq, fmt.Sprintf("round %d after release", i), g)
			release(t, p, seq.key, tok)
		}

		// Expiry round.
		stale := newToken("expiring")
		check(t, seq, "short hold", tryAcquire(t, p, seq.key, stale, shortTTL))
		next := newToken("after-expiry")
		check(t, seq, "acquire after expiry", acquire(t, p, seq.key, next, longTTL))

		// ForceRelease round.
		forceRelease(t, p, seq.key, true)
		forced := newToken("after-force")
		check(t, seq, "acquire after ForceRelease", tryAcquire(t, p, seq.key, forced, longTTL))
		release(t, p, seq.key, forced)
	})

	t.Run("TwoKeys", func(t *testing.T) {
		// The keys may share a counter, so only each key's own sequence is
		// checked.
		k1 := &sequence{key: newKey(t, "k1")}
		k2 := &sequence{key: newKey(t, "k2")}
		for i := range 10 {
			t1, t2 := newToken(fmt.Sprintf("k1-round%d", i)), newToken(fmt.Sprintf("k2-round%d", i))
			check(t, k1, fmt.Sprintf("key 1 round %d", i), tryAcquire(t, p, k1.key, t1, longTTL))
			check(t, k2, fmt.Sprintf("key 2 round %d", i), acquire(t, p, k2.key, t2, longTTL))
			if i%2 == 0 {
				release(t, p, k1.key, t1)
				release(t, p, k2.key, t2)
			} else {
				release(t, p, k2.key, t2)
				forceRelease(t, p, k1.key, true)
			}
		}
	})
}

func (s suite) testForceRelease(t *testing.T) {
	p := s.provider(t)

	t.Run("Held", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")

		ga := tryAcquire(t, p, key, a, longTTL)
		forceRelease(t, p, key, true)
		wantFree(t, p, key)

		err := p.Release(bounded(t, callBound), key, a)
		wantErr(t, "Release by a force-released holder", err, provider.ErrNotHeld)
		_, err = p.Extend(bounded(t, callBound), key, a, longTTL)
		wantErr(t, "Extend by a force-released holder", err, provider.ErrNotHeld)
		wantFree(t, p, key)

		gb := tryAcquire(t, p, key, b, longTTL)
		if gb.Fence <= ga.Fence {
			t.Fatalf("fence after ForceRelease = %d, want > %d", gb.Fence, ga.Fence)
		}
		release(t, p, key, b)
	})

	t.Run("WakesWaiter", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")

		ga := tryAcquire(t, p, key, a, longTTL)
		res := blockedWaiter(t, p, bounded(t, waitBound), key, b, longTTL)
		forcedAt := time.Now()
		forceRelease(t, p, key, true)
		r := await(t, "waiter after ForceRelease", res, waitBound+wakeBound)
		if r.err != nil {
			t.Fatalf("waiter's Acquire after ForceRelease = %v, want success", r.err)
		}
		if d := r.at.Sub(forcedAt); d > wakeBound {
			t.Fatalf("waiter acquired %v after ForceRelease, want within %v", d, wakeBound)
		}
		if r.grant.Fence <= ga.Fence {
			t.Fatalf("waiter's fence = %d, want > %d", r.grant.Fence, ga.Fence)
		}
		err := p.Release(bounded(t, callBound), key, a)
		wantErr(t, "Release by a force-released holder", err, provider.ErrNotHeld)
		wantHeld(t, p, key, b, r.grant.Fence)
		release(t, p, key, b)
	})

	t.Run("Free", func(t *testing.T) {
		key := newKey(t, "k")
		forceRelease(t, p, key, false) // never held
		a := newToken("a")
		tryAcquire(t, p, key, a, longTTL)
		release(t, p, key, a)
		forceRelease(t, p, key, false) // released
		wantFree(t, p, key)
	})
}

func (s suite) testState(t *testing.T) {
	p := s.provider(t)
	key := newKey(t, "k")
	a := newToken("a")
	const ttl = 30 * time.Second

	wantFree(t, p, key)

	g := tryAcquire(t, p, key, a, ttl)
	st := wantHeld(t, p, key, a, g.Fence)
	if st.TTL > ttl {
		t.Fatalf("State.TTL = %v, want <= the requested %v", st.TTL, ttl)
	}

	release(t, p, key, a)
	wantFree(t, p, key)
}

func (s suite) testGrantExpires(t *testing.T) {
	p := s.provider(t)
	const ttl = 10 * time.Second

	checkExpires := func(t *testing.T, call string, before, after time.Time, g provider.Grant) {
		t.Helper()
		if !g.Expires.After(before) {
			t.Fatalf("%s: Grant.Expires %v is not after the call started (%v)",
				call, g.Expires.Format(time.StampMicro), before.Format(time.StampMicro))
		}
		if latest := after.Add(ttl); g.Expires.After(latest) {
			t.Fatalf("%s: Grant.Expires %v is after the call's end plus the TTL (%v)",
				call, g.Expires.Format(time.StampMicro), latest.Format(time.StampMicro))
		}
	}

	key := newKey(t, "k")
	a, b := newToken("a"), newToken("b")

	before := time.Now()
	g := tryAcquire(t, p, key, a, ttl)
	checkExpires(t, "TryAcquire", before, time.Now(), g)

	before = time.Now()
	g, err := p.Extend(bounded(t, callBound), key, a, ttl)
	after := time.Now()
	if err != nil {
		t.Fatalf("Extend by the holder = %v", err)
	}
	checkExpires(t, "Extend", before, after, g)
	release(t, p, key, a)

	before = time.Now()
	g = acquire(t, p, key, b, ttl)
	checkExpires(t, "Acquire", before, time.Now(), g)
	release(t, p, key, b)
}

func (s suite) testWaiterWokenOnRelease(t *testing.T) {
	p := s.provider(t)

	t.Run("OneWaiter", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")

		// The hold outlives the test, so only the release can free the key.
		ga := tryAcquire(t, p, key, a, longTTL)
		res := blockedWaiter(t, p, bounded(t, waitBound), key, b, longTTL)
		releasedAt := time.Now()
		release(t, p, key, a)

		r := await(t, "waiter after release", res, waitBound+wakeBound)
		if r.err != nil {
			t.Fatalf("waiter's Acquire = %v, want success after the release", r.err)
		}
		if d := r.at.Sub(releasedAt); d > wakeBound {
			t.Fatalf("waiter acquired %v after the release, want within %v", d, wakeBound)
		}
		if r.grant.Fence <= ga.Fence {
			t.Fatalf("waiter's fence = %d, want > %d", r.grant.Fence, ga.Fence)
		}
		wantHeld(t, p, key, b, r.grant.Fence)
		release(t, p, key, b)
	})

	t.Run("Chain", func(t *testing.T) {
		key := newKey(t, "k")
		const waiters = 5
		holder := newToken("holder")
		gh := tryAcquire(t, p, key, holder, longTTL)

		type turn struct {
			fence      uint64
			acquiredAt time.Time
			releasedAt time.Time // just before Release was called
			err        error
		}
		var occupancy atomic.Int32
		turns := make(chan turn, waiters)
		var started sync.WaitGroup
		ctx := bounded(t, 3*waitBound)
		for i := range waiters {
			started.Add(1)
			go func() {
				tok := newToken(fmt.Sprintf("waiter%d", i))
				started.Done()
				g, err := p.Acquire(ctx, key, tok, longTTL)
				if err != nil {
					turns <- turn{err: fmt.Errorf("waiter %d: Acquire: %w", i, err)}
					return
				}
				tr := turn{fence: g.Fence, acquiredAt: time.Now()}
				if n := occupancy.Add(1); n != 1 {
					tr.err = fmt.Errorf("waiter %d acquired while %d others held the key", i, n-1)
				}
				runtime.Gosched()
				occupancy.Add(-1)
				tr.releasedAt = time.Now()
				if err := p.Release(ctx, key, tok); err != nil && tr.err == nil {
					tr.err = fmt.Errorf("waiter %d: Release: %w", i, err)
				}
				turns <- tr
			}()
		}
		started.Wait()
		time.Sleep(settle) // only makes it likely the waiters are blocked
		releases := []time.Time{time.Now()}
		release(t, p, key, holder)

		var acquisitions []time.Time
		fences := map[uint64]bool{}
		timeout := time.NewTimer(3*waitBound + wakeBound)
		defer timeout.Stop()
		for range waiters {
			var tr turn
			select {
			case tr = <-turns:
			case <-timeout.C:
				t.Fatalf("only %d of %d waiters finished", len(acquisitions), waiters)
			}
			if tr.err != nil {
				t.Fatal(tr.err)
			}
			if tr.fence <= gh.Fence || fences[tr.fence] {
				t.Fatalf("waiter's fence %d is a repeat or not above the first holder's %d", tr.fence, gh.Fence)
			}
			fences[tr.fence] = true
			acquisitions = append(acquisitions, tr.acquiredAt)
			releases = append(releases, tr.releasedAt)
		}
		// Holds were one at a time, so the i-th acquisition followed the
		// i-th release (the holder's first).
		slices.SortFunc(acquisitions, time.Time.Compare)
		slices.SortFunc(releases, time.Time.Compare)
		for i, at := range acquisitions {
			if d := at.Sub(releases[i]); d > wakeBound {
				t.Errorf("acquisition %d came %v after the release before it, want within %v", i+1, d, wakeBound)
			}
		}
		wantFree(t, p, key)
	})
}

func (s suite) testWaitCancelled(t *testing.T) {
	p := s.provider(t)

	t.Run("Waiting", func(t *testing.T) {
		key := newKey(t, "k")
		a, b, c, d := newToken("a"), newToken("b"), newToken("c"), newToken("d")
		ga := tryAcquire(t, p, key, a, longTTL)

		// Cancelled while waiting.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := blockedWaiter(t, p, ctx, key, b, longTTL)
		cancel()
		r := await(t, "cancelled waiter", res, wakeBound)
		wantErr(t, "Acquire whose context was cancelled", r.err, provider.ErrNotAcquired, context.Canceled)

		// Deadline while waiting.
		dctx, dcancel := context.WithTimeout(context.Background(), 2*settle)
		defer dcancel()
		_, res = goAcquire(dctx, p, key, c, longTTL)
		r = await(t, "waiter with a deadline", res, wakeBound)
		wantErr(t, "Acquire whose context timed out", r.err, provider.ErrNotAcquired, context.DeadlineExceeded)

		// The holder is undisturbed.
		wantHeld(t, p, key, a, ga.Fence)

		// After the release nobody holds the key and nobody is queued ahead
		// of a newcomer.
		release(t, p, key, a)
		wantFree(t, p, key)
		gd := tryAcquire(t, p, key, d, longTTL)
		if gd.Fence <= ga.Fence {
			t.Fatalf("fence after release = %d, want > %d", gd.Fence, ga.Fence)
		}
		for _, tok := range []string{b, c} {
			err := p.Release(bounded(t, callBound), key, tok)
			wantErr(t, "Release by a waiter that gave up", err, provider.ErrNotHeld)
		}
		wantHeld(t, p, key, d, gd.Fence)
		release(t, p, key, d)
	})

	t.Run("AlreadyCancelledHeldKey", func(t *testing.T) {
		key := newKey(t, "k")
		a, b := newToken("a"), newToken("b")
		ga := tryAcquire(t, p, key, a, longTTL)

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, res := goAcquire(ctx, p, key, b, longTTL)
		r := await(t, "Acquire with a cancelled context on a held key", res, wakeBound)
		wantErr(t, "Acquire with a cancelled context on a held key", r.err, provider.ErrNotAcquired, context.Canceled)
		wantHeld(t, p, key, a, ga.Fence)
		release(t, p, key, a)
		wantFree(t, p, key)
	})

	// A call whose context ended before it was made is refused, on a free
	// key as on a held one, and leaves nothing held: the caller gave up
	// before asking and will never release what it was not told it has.
	for _, tc := range []struct {
		name string
		held bool // another token holds the key during the call
		call func(ctx context.Context, key, token string) (provider.Grant, error)
	}{
		{"AlreadyCancelledFreeKeyAcquire", false, func(ctx context.Context, key, token string) (provider.Grant, error) {
			return p.Acquire(ctx, key, token, longTTL)
		}},
		{"AlreadyCancelledFreeKeyTryAcquire", false, func(ctx context.Context, key, token string) (provider.Grant, error) {
			return p.TryAcquire(ctx, key, token, longTTL)
		}},
		{"AlreadyCancelledHeldKeyTryAcquire", true, func(ctx context.Context, key, token string) (provider.Grant, error) {
			return p.TryAcquire(ctx, key, token, longTTL)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := newKey(t, "k")
			a, b, h := newToken("a"), newToken("b"), newToken("holder")
			var gh provider.Grant
			if tc.held {
				gh = tryAcquire(t, p, key, h, longTTL)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			g, err := tc.call(ctx, key, a)
			if err == nil {
				t.Errorf("call with a context cancelled before it = grant with fence %d, want an error matching %q and %q",
					g.Fence, provider.ErrNotAcquired, context.Canceled)
				_ = p.Release(bounded(t, callBound), key, a)
			} else {
				wantErr(t, "call with a context cancelled before it", err, provider.ErrNotAcquired, context.Canceled)
			}
			if tc.held {
				wantHeld(t, p, key, h, gh.Fence)
				release(t, p, key, h)
			}
			wantFree(t, p, key)
			rerr := p.Release(bounded(t, callBound), key, a)
			wantErr(t, "Release after a refused call", rerr, provider.ErrNotHeld)
			tryAcquire(t, p, key, b, longTTL)
			release(t, p, key, b)
		})
	}
}

func (s suite) testBadInput(t *testing.T) {
	p := s.provider(t)
	held, free := newKey(t, "held"), newKey(t, "free")
	holder, other := newToken("holder"), newToken("other")
	const ttl = 30 * time.Second
	gh := tryAcquire(t, p, held, holder, ttl)

	tests := []struct {
		name string
		arg  string // the bad argument, as reported in ArgError.Arg
		call func(ctx context.Context) error
	}{
		{"TryAcquireEmptyKey", "key", func(ctx context.Context) error {
			_, err := p.TryAcquire(ctx, "", other, ttl)
			return err
		}},
		{"TryAcquireEmptyToken", "token", func(ctx context.Context) error {
			_, err := p.TryAcquire(ctx, free, "", ttl)
			return err
		}},
		{"TryAcquireZeroTTL", "ttl", func(ctx context.Context) error {
			_, err := p.TryAcquire(ctx, free, other, 0)
			return err
		}},
		{"TryAcquireNegativeTTL", "ttl", func(ctx context.Context) error {
			_, err := p.TryAcquire(ctx, free, other, -time.Second)
			return err
		}},
		{"AcquireEmptyKey", "key", func(ctx context.Context) error {
			_, err := p.Acquire(ctx, "", other, ttl)
			return err
		}},
		{"AcquireEmptyToken", "token", func(ctx context.Context) error {
			_, err := p.Acquire(ctx, free, "", ttl)
			return err
		}},
		{"AcquireZeroTTL", "ttl", func(ctx context.Context) error {
			_, err := p.Acquire(ctx, free, other, 0)
			return err
		}},
		{"AcquireNegativeTTL", "ttl", func(ctx context.Context) error {
			_, err := p.Acquire(ctx, free, other, -time.Second)
			return err
		}},
		{"ReleaseEmptyKey", "key", func(ctx context.Context) error {
			return p.Release(ctx, "", holder)
		}},
		{"ReleaseEmptyToken", "token", func(ctx context.Context) error {
			return p.Release(ctx, held, "")
		}},
		{"ExtendEmptyKey", "key", func(ctx context.Context) error {
			_, err := p.Extend(ctx, "", holder, ttl)
			return err
		}},
		{"ExtendEmptyToken", "token", func(ctx context.Context) error {
			_, err := p.Extend(ctx, held, "", ttl)
			return err
		}},
		{"ExtendZeroTTL", "ttl", func(ctx context.Context) error {
			_, err := p.Extend(ctx, held, holder, 0)
			return err
		}},
		{"ExtendNegativeTTL", "ttl", func(ctx context.Context) error {
			_, err := p.Extend(ctx, held, holder, -time.Second)
			return err
		}},
		{"StateEmptyKey", "key", func(ctx context.Context) error {
			_, err := p.State(ctx, "")
			return err
		}},
		{"ForceReleaseEmptyKey", "key", func(ctx context.Context) error {
			_, err := p.ForceRelease(ctx, "")
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Bad input must be refused at once, never waited on.
			err := tc.call(bounded(t, wakeBound))
			wantErr(t, tc.name, err, provider.ErrInvalid)
			var ae *provider.ArgError
			if !errors.As(err, &ae) {
				t.Fatalf("%s = %v (%T), want an error wrapping *provider.ArgError", tc.name, err, err)
			}
			if ae.Arg != tc.arg {
				t.Fatalf("%s: ArgError.Arg = %q, want %q", tc.name, ae.Arg, tc.arg)
			}

			// Nothing changed.
			wantFree(t, p, free)
			st := wantHeld(t, p, held, holder, gh.Fence)
			if st.TTL > ttl {
				t.Fatalf("State(held).TTL = %v, want <= %v (unchanged)", st.TTL, ttl)
			}
		})
	}
	release(t, p, held, holder)
}

func (s suite) testClosed(t *testing.T) {
	p := s.provider(t)
	held, free := newKey(t, "held"), newKey(t, "free")
	a, b := newToken("a"), newToken("b")
	tryAcquire(t, p, held, a, longTTL)
	res := blockedWaiter(t, p, bounded(t, waitBound), held, b, longTTL)

	if err := safeClose(p); err != nil {
		t.Fatalf("first Close = %v, want nil", err)
	}

	// Whether Close ends a blocked Acquire at once is up to the provider; it
	// must end it with an error (nobody released the key).
	r := await(t, "waiter blocked during Close", res, waitBound+wakeBound)
	if r.err == nil {
		t.Fatalf("Acquire blocked during Close succeeded with fence %d, want an error", r.grant.Fence)
	}
	if !errors.Is(r.err, provider.ErrClosed) && !errors.Is(r.err, provider.ErrNotAcquired) {
		t.Fatalf("Acquire blocked during Close = %v, want an error matching ErrClosed or ErrNotAcquired", r.err)
	}

	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"TryAcquire", func(ctx context.Context) error {
			_, err := p.TryAcquire(ctx, free, b, longTTL)
			return err
		}},
		{"Acquire", func(ctx context.Context) error {
			_, err := p.Acquire(ctx, free, b, longTTL)
			return err
		}},
		{"AcquireHeld", func(ctx context.Context) error {
			_, err := p.Acquire(ctx, held, b, longTTL)
			return err
		}},
		{"Release", func(ctx context.Context) error {
			return p.Release(ctx, held, a)
		}},
		{"Extend", func(ctx context.Context) error {
			_, err := p.Extend(ctx, held, a, longTTL)
			return err
		}},
		{"State", func(ctx context.Context) error {
			_, err := p.State(ctx, held)
			return err
		}},
		{"ForceRelease", func(ctx context.Context) error {
			_, err := p.ForceRelease(ctx, held)
			return err
		}},
	}
	for _, c := range calls {
		err := c.call(bounded(t, wakeBound))
		wantErr(t, c.name+" after Close", err, provider.ErrClosed)
	}

	if err := safeClose(p); err != nil && !errors.Is(err, provider.ErrClosed) {
		t.Fatalf("second Close = %v, want nil or ErrClosed", err)
	}
}

func (s suite) testKeysIndependent(t *testing.T) {
	p := s.provider(t)
	base := newKey(t, "k")
	a, b := newToken("a"), newToken("b")

	ga := tryAcquire(t, p, base, a, longTTL)

	// Keys that share a prefix with base or contain characters that are
	// special in Redis patterns, hash tags or paths.
	others := []string{
		base + "2",
		base + ":sub",
		base + "*",
		base + "?",
		base + "[a-z]",
		"{" + base + "}",
		base + " space/slash\\",
		base + "é✓",
	}
	for i, key := range others {
		var g provider.Grant
		if i%2 == 0 {
			g = tryAcquire(t, p, key, b, longTTL)
		} else {
			g = acquire(t, p, key, b, longTTL) // must not wait: the key is free
		}
		wantHeld(t, p, key, b, g.Fence)
	}
	wantHeld(t, p, base, a, ga.Fence)

	// Releasing base must not release or wake anything on the others.
	release(t, p, base, a)
	for _, key := range others {
		st := state(t, p, key)
		if !st.Held || st.Token != b {
			t.Fatalf("State(%q) = %+v after releasing another key, want held by %q", key, st, b)
		}
		release(t, p, key, b)
		wantFree(t, p, key)
	}
	wantFree(t, p, base)
}
