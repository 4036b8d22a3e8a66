package redisprovider_test

// Redlock's node workers: a token that acquires again right after its
// release (its late requests run in order), many callers at once
// (pipelined), and Close with calls in flight and a hung node.

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// TestRedlockSameTokenAgain: one token takes and releases a key 300 times
// in a row. Each call returns at a quorum, so the third node's vote and
// release are still in flight when the next TryAcquire starts; a release
// that overtook its vote, or a vote that a stale release freed, made a
// try fail (ErrNotAcquired) before each node's requests went out in
// order. After Close, which waits for the stragglers, no node keeps a
// hold.
func TestRedlockSameTokenAgain(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	r, err := redisprovider.NewRedlock(clients, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, tok := uniqueKey(t, "k"), uuid.NewString()
	var last uint64
	for i := range 300 {
		g, err := r.TryAcquire(ctx, key, tok, longTTL)
		if err != nil {
			t.Fatalf("TryAcquire %d by the token that just released: %v", i, err)
		}
		if g.Fence <= last {
			t.Fatalf("TryAcquire %d: fence %d after %d", i, g.Fence, last)
		}
		last = g.Fence
		if err := r.Release(ctx, key, tok); err != nil {
			t.Fatalf("Release %d: %v", i, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if n, err := c.Exists(ctx, lockKey(key)).Result(); err != nil || n != 0 {
			t.Errorf("node %d after Close: hold exists = %d, %v; want none", i, n, err)
		}
	}
}

// TestRedlockManyCallers: 16 goroutines, each on its own key and on one
// shared key, so that each node's worker has several requests waiting and
// sends them as one pipeline. Every call on an own key succeeds, its
// fences rise, and the shared key is never granted to two at once.
func TestRedlockManyCallers(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	r := newRedlock(t, clients, nil)
	shared := uniqueKey(t, "shared")
	var (
		wg      sync.WaitGroup
		holding atomic.Int32
		grants  atomic.Int32
		errs    = make(chan error, 16)
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := uniqueKey(t, fmt.Sprint("own", w))
			var last uint64
			for i := range 30 {
				tok := fmt.Sprintf("w%d-%d", w, i)
				g, err := r.TryAcquire(ctx, key, tok, longTTL)
				if err != nil || g.Fence <= last {
					errs <- fmt.Errorf("worker %d, own key, try %d: fence %d after %d, %v", w, i, g.Fence, last, err)
					return
				}
				last = g.Fence
				if err := r.Release(ctx, key, tok); err != nil {
					errs <- fmt.Errorf("worker %d, own key, release %d: %v", w, i, err)
					return
				}
				if _, err := r.TryAcquire(ctx, shared, tok, longTTL); err == nil {
					if holding.Add(1) != 1 {
						errs <- fmt.Errorf("worker %d: the shared key granted to two at once", w)
					}
					grants.Add(1)
					holding.Add(-1)
					if err := r.Release(ctx, shared, tok); err != nil {
						errs <- fmt.Errorf("worker %d, shared key, release: %v", w, err)
						return
					}
				} else if !errors.Is(err, provider.ErrNotAcquired) {
					errs <- fmt.Errorf("worker %d, shared key: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if grants.Load() == 0 {
		t.Error("the shared key was never granted")
	}
}

// workerGoroutines counts the goroutines that NewRedlock started (its
// node workers), whether they run yet or not.
func workerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "created by github.com/lockproof/lockproof/redisprovider.NewRedlock")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestRedlockCloseWithCallsInFlight: Close while 8 goroutines call
// TryAcquire, Extend and Release and one of the three nodes is hung (its
// requests queue behind the hung one). Close returns, every caller ends
// (with ErrClosed once Close has begun), and the node workers are gone.
// Not parallel: it counts the process's worker goroutines.
func TestRedlockCloseWithCallsInFlight(t *testing.T) {
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 2)
	hole := newBlackHole(t)
	clients := []redis.UniversalClient{fastClient(t, nodes[0].Addr()), fastClient(t, hole.addr), fastClient(t, nodes[1].Addr())}
	for _, i := range []int{0, 2} {
		if err := clients[i].HSet(ctx, nodeMarker, "floor", 0, "high", 0, "maxttl", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	before := workerGoroutines()
	r, err := redisprovider.NewRedlock(clients, &redisprovider.RedlockOptions{NodeTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if n := workerGoroutines(); n != before+3 {
		t.Fatalf("%d node workers after NewRedlock of 3 nodes, want %d", n, before+3)
	}
	var (
		wg     sync.WaitGroup
		calls  atomic.Int64
		errs   = make(chan error, 8)
		closed = make(chan struct{})
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := uniqueKey(t, fmt.Sprint("k", w))
			for i := 0; ; i++ {
				tok := fmt.Sprintf("w%d-%d", w, i)
				_, err := r.TryAcquire(ctx, key, tok, longTTL)
				if err == nil {
					_, err = r.Extend(ctx, key, tok, longTTL)
				}
				if err == nil {
					err = r.Release(ctx, key, tok)
				}
				calls.Add(1)
				select {
				case <-closed:
					if !errors.Is(err, provider.ErrClosed) && err != nil {
						// A call that began before Close may end otherwise;
						// the next one must see ErrClosed.
						_, err = r.TryAcquire(ctx, key, tok+"x", longTTL)
					}
					if err != nil && !errors.Is(err, provider.ErrClosed) {
						errs <- fmt.Errorf("worker %d after Close: %v, want ErrClosed", w, err)
					}
					return
				default:
				}
				if err != nil && !errors.Is(err, provider.ErrClosed) {
					errs <- fmt.Errorf("worker %d: %v", w, err)
					return
				}
			}
		}()
	}
	for calls.Load() < 40 && ctx.Err() == nil {
		runtime.Gosched()
	}
	close(closed)
	if err := r.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := workerGoroutines(); n != before {
		t.Errorf("%d node workers after Close, want %d", n, before)
	}
	if _, err := r.TryAcquire(ctx, uniqueKey(t, "after"), "t", longTTL); !errors.Is(err, provider.ErrClosed) {
		t.Errorf("TryAcquire after Close = %v, want ErrClosed", err)
	}
}

// TestRedlockScriptsFlushed: a node that lost its scripts (SCRIPT FLUSH)
// while requests wait for it: the worker's pipeline gets NOSCRIPT and
// sends them again by EVAL.
func TestRedlockScriptsFlushed(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	r := newRedlock(t, clients, nil)
	grantRelease(t, ctx, r, uniqueKey(t, "warm"), longTTL) // admits the nodes, loads the scripts
	for _, c := range clients {
		if err := c.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key, tok := uniqueKey(t, fmt.Sprint("k", w)), uuid.NewString()
			if _, err := r.TryAcquire(ctx, key, tok, longTTL); err != nil {
				errs <- fmt.Errorf("TryAcquire after SCRIPT FLUSH: %v", err)
				return
			}
			if err := r.Release(ctx, key, tok); err != nil {
				errs <- fmt.Errorf("Release after SCRIPT FLUSH: %v", err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRedlockForeignValues: on a one-node Redlock (every answer decides),
// a lock key holding a value lockproof did not write gives definite
// answers and is left as it is, through the release script's fast path
// (which reads holds with hold.lua's constants) as through the others.
func TestRedlockForeignValues(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	c := redistest.Server(t).Client(t)
	r := newRedlock(t, []redis.UniversalClient{c}, nil)
	grantRelease(t, ctx, r, uniqueKey(t, "warm"), longTTL) // admits the node
	for _, tc := range foreignValues(ctx, c) {
		t.Run(tc.name, func(t *testing.T) {
			key := uniqueKey(t, "k")
			lock := lockKey(key)
			if err := tc.set(lock); err != nil {
				t.Fatal(err)
			}
			before, err := tc.get(lock)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Release(ctx, key, "tok"); !errors.Is(err, provider.ErrNotHeld) {
				t.Errorf("Release = %v, want ErrNotHeld", err)
			}
			if _, err := r.Extend(ctx, key, "tok", longTTL); !errors.Is(err, provider.ErrNotHeld) {
				t.Errorf("Extend = %v, want ErrNotHeld", err)
			}
			if _, err := r.TryAcquire(ctx, key, "tok", longTTL); !errors.Is(err, provider.ErrNotAcquired) {
				t.Errorf("TryAcquire = %v, want ErrNotAcquired", err)
			}
			if held, err := r.ForceRelease(ctx, key); err != nil || held {
				t.Errorf("ForceRelease = %v, %v; want false, nil (not a lockproof hold)", held, err)
			}
			if after, err := tc.get(lock); err != nil || after != before {
				t.Errorf("value after the calls = %q, %v; want %q untouched", after, err, before)
			}
		})
	}
	// A hold of the format, by another token, and one marked as waited
	// for: the fast path frees only its own token's.
	key := uniqueKey(t, "k")
	for _, v := range []string{"7 rl other", "7 rl+ tok"} {
		if err := c.Set(ctx, lockKey(key), v, longTTL).Err(); err != nil {
			t.Fatal(err)
		}
		err := r.Release(ctx, key, "tok")
		n, _ := c.Exists(ctx, lockKey(key)).Result()
		switch {
		case v == "7 rl other" && (!errors.Is(err, provider.ErrNotHeld) || n != 1):
			t.Errorf("Release of %q by tok = %v, key exists %d; want ErrNotHeld, kept", v, err, n)
		case v == "7 rl+ tok" && (err != nil || n != 0):
			t.Errorf("Release of %q by tok = %v, key exists %d; want nil, freed", v, err, n)
		}
	}
}
