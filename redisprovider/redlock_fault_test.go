package redisprovider_test

// Redlock with nodes that lose their data (restart without persistence),
// nodes that lose nothing (AOF always), a lost majority, hung nodes, and
// the classes Release and Extend return. All on real redis-servers.

import (
	"context"
	"errors"
	"fmt"
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

// shortTTL keeps admission waits (the longest TTL granted, plus drift)
// short.
const shortTTL = 300 * time.Millisecond

// Keys of a node's Redlock state under the default prefix.
const (
	nodeMarker = redisprovider.DefaultPrefix + "redlock:node"
	nodeWait   = redisprovider.DefaultPrefix + "redlock:wait"
)

// grantRelease takes key with a new token, releases it and returns the
// fence.
func grantRelease(t testing.TB, ctx context.Context, r *redisprovider.Redlock, key string, ttl time.Duration) uint64 {
	t.Helper()
	tok := "tok-" + uuid.NewString()
	g, err := r.TryAcquire(ctx, key, tok, ttl)
	if err != nil {
		t.Fatalf("TryAcquire: %v", err)
	}
	if err := r.Release(ctx, key, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	return g.Fence
}

// restartEmpty kills the nodes and starts them again without their data.
func restartEmpty(t testing.TB, nodes ...*redistest.Node) {
	t.Helper()
	for _, n := range nodes {
		n.Kill(t)
	}
	for _, n := range nodes {
		n.Start(t)
	}
}

// admitted reports whether node c has a marker and no admission wait left.
func admitted(ctx context.Context, c redis.UniversalClient) (bool, error) {
	n, err := c.Exists(ctx, nodeMarker).Result()
	if err != nil || n == 0 {
		return false, err
	}
	w, err := c.Exists(ctx, nodeWait).Result()
	return w == 0, err
}

// TestRedlockEmptiedNodesSequence is the deterministic sequence of issue
// 9: 10 grants while a stale hold keeps node 0 from voting (its counter
// lags); nodes 1 and 2 restart empty; nodes 3 and 4 are held by two other
// tokens (a split); the stale hold on node 0 lapses. Before admission,
// nodes 0, 1 and 2 formed a majority that remembered nothing and granted
// fence 1. Now nodes 1 and 2 refuse until they are re-admitted with a floor
// of 10, and the next grant's fence is above 10.
func TestRedlockEmptiedNodesSequence(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes, clients := fastNodes(t, 5)
	r := newRedlock(t, clients, nil)
	key := uniqueKey(t, "k")

	if err := clients[0].Set(ctx, lockKey(key), "999 stale", 0).Err(); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for i := range 10 {
		f := grantRelease(t, ctx, r, key, shortTTL)
		if f <= last {
			t.Fatalf("grant %d: fence %d after %d", i, f, last)
		}
		last = f
	}
	if last != 10 {
		t.Fatalf("10 grants ended at fence %d, want 10 (one increment per grant)", last)
	}
	if got := getFence(t, clients[0], key); got != 0 {
		t.Fatalf("node 0 (held stale) fence counter %d, want 0 (it lags)", got)
	}

	restartEmpty(t, nodes[1], nodes[2])
	for i, tok := range map[int]string{3: "split-x", 4: "split-y"} {
		if err := clients[i].Set(ctx, lockKey(key), "5 "+tok, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := clients[0].Del(ctx, lockKey(key)).Err(); err != nil { // the stale hold lapses
		t.Fatal(err)
	}
	for i := range 5 { // nodes 0, 1, 2 are free and up: only admission stands between them and fence 1
		g, err := r.TryAcquire(ctx, key, fmt.Sprintf("late-%d", i), shortTTL)
		if err == nil {
			// Only a re-admission (floor from a quorum, wait served) may
			// let nodes 1 and 2 vote again; on a slow machine it can end
			// within these tries. Then the fence must be above the last.
			ok1, err1 := admitted(ctx, clients[1])
			ok2, err2 := admitted(ctx, clients[2])
			if err1 != nil || err2 != nil || !ok1 || !ok2 || g.Fence <= last {
				t.Fatalf("TryAcquire granted fence %d (last %d) with nodes 1 and 2 emptied and 3, 4 held (admitted: %v %v)", g.Fence, last, ok1, ok2)
			}
			if err := r.Release(ctx, key, fmt.Sprintf("late-%d", i)); err != nil {
				t.Fatal(err)
			}
			break
		}
		wantErr(t, "TryAcquire with nodes 1, 2 emptied and 3, 4 held", err, provider.ErrNotAcquired)
	}
	for _, i := range []int{1, 2} {
		eventually(t, fmt.Sprintf("node %d re-admitted", i), faultBound, func() error {
			floor, err := clients[i].HGet(ctx, nodeMarker, "floor").Uint64()
			if err == nil && floor < last {
				t.Fatalf("node %d re-admitted with floor %d, want >= %d", i, floor, last)
			}
			return err
		})
	}
	for _, i := range []int{3, 4} {
		if err := clients[i].Del(ctx, lockKey(key)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var g provider.Grant
	eventually(t, "TryAcquire once the split holds are gone", faultBound, func() (err error) {
		g, err = r.TryAcquire(ctx, key, "after", shortTTL)
		return err
	})
	if g.Fence <= last {
		t.Fatalf("fence %d after %d: the fence went backwards", g.Fence, last)
	}
	// Nodes 1 and 2 vote again once their wait is over, with fences above
	// the floor.
	if err := r.Release(ctx, key, "after"); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		eventually(t, fmt.Sprintf("node %d votes", i), faultBound, func() error {
			ok, err := admitted(ctx, clients[i])
			if err == nil && !ok {
				err = errors.New("still waiting")
			}
			return err
		})
	}
	f := grantRelease(t, ctx, r, key, shortTTL)
	if f <= g.Fence {
		t.Fatalf("fence %d after %d", f, g.Fence)
	}
}

// TestRedlockWaitsOutForgottenHold: a node that lost a hold does not vote
// for another holder until the longest TTL plus drift has passed, so the
// forgotten hold has expired everywhere: mutual exclusion across the
// restart.
func TestRedlockWaitsOutForgottenHold(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes, clients := fastNodes(t, 3)
	r := newRedlock(t, clients, nil)
	key := uniqueKey(t, "k")
	const ttl = 2 * time.Second

	ga, err := r.TryAcquire(ctx, key, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	restartEmpty(t, nodes[0]) // A's hold now lives on nodes 1, 2 (or just one of them)
	if err := clients[2].Del(ctx, lockKey(key)).Err(); err != nil {
		t.Fatal(err) // and node 2 loses it too, as to a lapse: A holds node 1 only
	}
	// Node 0 is free and node 2 is free: without admission B would win
	// them while A's hold is still valid.
	deadline := ga.Expires
	for time.Now().Before(deadline) {
		g, err := r.TryAcquire(ctx, key, "b", ttl)
		if err == nil {
			if time.Now().Before(deadline) {
				t.Fatalf("B granted fence %d while A's hold (fence %d) was valid until %v", g.Fence, ga.Fence, deadline)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var gb provider.Grant
	eventually(t, "B after A's hold expired", faultBound, func() (err error) {
		gb, err = r.TryAcquire(ctx, key, "b", ttl)
		return err
	})
	if gb.Fence <= ga.Fence {
		t.Fatalf("B's fence %d, want > A's %d", gb.Fence, ga.Fence)
	}
}

// TestRedlockTwoKillsNoGrantBetween: 2 of 5 nodes restart empty, then 2
// others, with no grant of the key in between. If the first two were
// re-admitted meanwhile (admission needs no grant of the key: here a call on
// another key meets them), the fences continue; if not, 3 of 5 nodes have
// lost their data, nothing can be re-admitted, and calls fail with
// ErrUnavailable — never a low fence.
func TestRedlockTwoKillsNoGrantBetween(t *testing.T) {
	t.Parallel()
	for _, readmit := range []bool{true, false} {
		t.Run(fmt.Sprintf("readmitted=%v", readmit), func(t *testing.T) {
			t.Parallel()
			ctx := bounded(t, testBound)
			nodes, clients := fastNodes(t, 5)
			r := newRedlock(t, clients, nil)
			key := uniqueKey(t, "k")
			var last uint64
			for range 5 {
				last = grantRelease(t, ctx, r, key, shortTTL)
			}

			restartEmpty(t, nodes[0], nodes[1])
			if readmit {
				other := uniqueKey(t, "other")
				eventually(t, "nodes 0 and 1 re-admitted", faultBound, func() error {
					tok := uuid.NewString()
					if _, err := r.TryAcquire(ctx, other, tok, shortTTL); err == nil {
						_ = r.Release(ctx, other, tok)
					}
					for _, i := range []int{0, 1} {
						if n, err := clients[i].Exists(ctx, nodeMarker).Result(); err != nil || n == 0 {
							return fmt.Errorf("node %d has no marker (%v)", i, err)
						}
					}
					return nil
				})
			}
			restartEmpty(t, nodes[2], nodes[3])

			if !readmit {
				for range 3 {
					g, err := r.TryAcquire(ctx, key, uuid.NewString(), shortTTL)
					wantErr(t, "TryAcquire with 4 of 5 nodes emptied", err, provider.ErrUnavailable)
					if g.Fence != 0 {
						t.Fatalf("granted fence %d", g.Fence)
					}
				}
				return
			}
			var g provider.Grant
			tok := uuid.NewString()
			eventually(t, "TryAcquire after the second restart", faultBound, func() (err error) {
				g, err = r.TryAcquire(ctx, key, tok, shortTTL)
				return err
			})
			if g.Fence <= last {
				t.Fatalf("fence %d after %d: the fence went backwards", g.Fence, last)
			}
		})
	}
}

// TestRedlockMajorityKilled: with 3 of 5 nodes killed every call fails
// with ErrUnavailable; when they come back empty nothing is granted
// either (a majority lost its data: outside the fault model, refused).
func TestRedlockMajorityKilled(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes, clients := fastNodes(t, 5)
	r := newRedlock(t, clients, nil)
	key := uniqueKey(t, "k")
	for range 5 {
		grantRelease(t, ctx, r, key, shortTTL)
	}
	for _, i := range []int{0, 2, 4} {
		nodes[i].Kill(t)
	}
	check := func(what string) {
		t.Helper()
		for range 3 {
			g, err := r.TryAcquire(ctx, key, uuid.NewString(), shortTTL)
			wantErr(t, what, err, provider.ErrUnavailable)
			if g.Fence != 0 {
				t.Fatalf("%s: granted fence %d", what, g.Fence)
			}
		}
		actx, cancel := context.WithTimeout(ctx, faultBound)
		_, err := r.Acquire(actx, key, uuid.NewString(), shortTTL)
		cancel()
		wantErr(t, what+": Acquire", err, provider.ErrUnavailable)
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: Acquire = %v; want ErrUnavailable at once, not a wait for the context", what, err)
		}
	}
	check("3 of 5 nodes dead")
	for _, i := range []int{0, 2, 4} {
		nodes[i].Start(t)
	}
	check("3 of 5 nodes restarted empty")
}

// TestRedlockRestartWithAOF: nodes with appendfsync always lose nothing
// when killed, keep their markers and vote at once after a restart; the
// fences continue, even after a majority was killed.
func TestRedlockRestartWithAOF(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 5, redistest.Args("--appendonly", "yes", "--appendfsync", "always"))
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = fastClient(t, n.Addr())
	}
	r := newRedlock(t, clients, nil)
	key := uniqueKey(t, "k")
	var last uint64
	for range 5 {
		last = grantRelease(t, ctx, r, key, longTTL) // a long TTL: an admission wait would show
	}
	for round, kill := range [][]int{{0, 1}, {2, 3, 4}} {
		for _, i := range kill {
			nodes[i].Kill(t)
		}
		for _, i := range kill {
			nodes[i].Start(t)
		}
		for _, i := range kill {
			eventually(t, fmt.Sprintf("round %d: node %d back", round, i), faultBound, func() error {
				ok, err := admitted(ctx, clients[i])
				if err == nil && !ok {
					t.Fatalf("round %d: node %d lost its marker or waits, with AOF always", round, i)
				}
				return err
			})
		}
		for range 3 {
			var f uint64
			eventually(t, "grant after the restart", faultBound, func() error {
				tok := uuid.NewString()
				g, err := r.TryAcquire(ctx, key, tok, longTTL)
				if err == nil {
					f = g.Fence
					err = r.Release(ctx, key, tok)
				}
				return err
			})
			if f <= last {
				t.Fatalf("round %d: fence %d after %d", round, f, last)
			}
			last = f
		}
	}
}

// TestRedlockFenceIncrements: under 8-worker contention on 5 nodes the
// fence rises by at most 1.5 per grant (votes that did not make a grant
// give their increment back; no INCR where a node refuses).
func TestRedlockFenceIncrements(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	_, clients := fastNodes(t, 5)
	r := newRedlock(t, clients, &redisprovider.RedlockOptions{Options: redisprovider.Options{PollInterval: 200 * time.Millisecond}})
	key := uniqueKey(t, "k")
	const workers, cycles = 8, 25
	var (
		wg      sync.WaitGroup
		grants  atomic.Int64
		maxSeen atomic.Uint64
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range cycles {
				tok := fmt.Sprintf("w%d-%d", w, c)
				g, err := r.Acquire(ctx, key, tok, 10*time.Second)
				if err != nil {
					t.Errorf("worker %d: Acquire: %v", w, err)
					return
				}
				grants.Add(1)
				for m := maxSeen.Load(); g.Fence > m && !maxSeen.CompareAndSwap(m, g.Fence); m = maxSeen.Load() {
				}
				if err := r.Release(ctx, key, tok); err != nil {
					t.Errorf("worker %d: Release: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	ratio := float64(maxSeen.Load()) / float64(grants.Load())
	t.Logf("%d grants, highest fence %d: %.2f fence increments per grant", grants.Load(), maxSeen.Load(), ratio)
	if ratio > 1.5 {
		t.Fatalf("%.2f fence increments per grant, want <= 1.5", ratio)
	}
}

// TestRedlockAnyNodeCount: any N >= 1 works with quorum N/2+1; 0 nodes and
// Cluster clients are refused.
func TestRedlockAnyNodeCount(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	_, all := fastNodes(t, 4)
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := newRedlock(t, all[:n], &redisprovider.RedlockOptions{Options: redisprovider.Options{Prefix: fmt.Sprintf("n%d:", n)}})
			key := uniqueKey(t, "k")
			f1 := grantRelease(t, ctx, r, key, shortTTL)
			if _, err := r.TryAcquire(ctx, key, "a", longTTL); err != nil {
				t.Fatal(err)
			}
			_, err := r.TryAcquire(ctx, key, "b", longTTL)
			wantErr(t, "TryAcquire of a held key", err, provider.ErrNotAcquired)
			if err := r.Release(ctx, key, "a"); err != nil {
				t.Fatal(err)
			}
			if f2 := grantRelease(t, ctx, r, key, shortTTL); f2 <= f1 {
				t.Fatalf("fence %d after %d", f2, f1)
			}
		})
	}
	_, err := redisprovider.NewRedlock(nil, nil)
	var ae *provider.ArgError
	if !errors.As(err, &ae) || ae.Arg != "clients" {
		t.Fatalf("NewRedlock(no clients) = %v, want an ArgError for clients", err)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = cc.Close() })
	_, err = redisprovider.NewRedlock([]redis.UniversalClient{all[0], cc, all[1]}, nil)
	if !errors.As(err, &ae) || ae.Arg != "clients[1]" || !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("NewRedlock with a Cluster client = %v, want an ArgError for clients[1]", err)
	}
}

// TestRedlockTruthfulRelease: Release and Extend say ErrNotHeld only when
// the nodes that did not refuse cannot make a quorum; with too few freed
// or extended but enough unanswered, the outcome is unknown. Nodes 2 and 3
// are hung (they accept connections and never answer).
func TestRedlockTruthfulRelease(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 3)
	h2, h3 := newBlackHole(t), newBlackHole(t)
	clients := []redis.UniversalClient{
		fastClient(t, nodes[0].Addr()), fastClient(t, nodes[1].Addr()),
		fastClient(t, h2.addr), fastClient(t, h3.addr), fastClient(t, nodes[2].Addr()),
	}
	for _, i := range []int{0, 1, 4} { // admitted before 2 and 3 hung
		if err := clients[i].HSet(ctx, nodeMarker, "floor", 0, "high", 0, "maxttl", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r := newRedlock(t, clients, &redisprovider.RedlockOptions{NodeTimeout: 200 * time.Millisecond})
	t.Cleanup(h2.close) // before r.Close, which waits for the calls to the holes
	t.Cleanup(h3.close)

	cases := []struct {
		name    string
		lose    []int // nodes whose hold is deleted before the call
		want    error
		notWant error
	}{
		{"AllHeld", nil, nil, nil},
		{"TwoFreed", []int{0}, provider.ErrOutcomeUnknown, provider.ErrNotHeld},
		{"OneFreed", []int{0, 1}, provider.ErrOutcomeUnknown, provider.ErrNotHeld},
		{"NoneFreed", []int{0, 1, 4}, provider.ErrNotHeld, provider.ErrUnavailable},
	}
	for _, op := range []string{"Release", "Extend"} {
		for _, tc := range cases {
			t.Run(op+"/"+tc.name, func(t *testing.T) {
				key, tok := uniqueKey(t, "k"), uuid.NewString()
				if _, err := r.TryAcquire(ctx, key, tok, longTTL); err != nil {
					t.Fatalf("TryAcquire with 2 of 5 nodes hung: %v", err)
				}
				for _, i := range tc.lose {
					if err := clients[i].Del(ctx, lockKey(key)).Err(); err != nil {
						t.Fatal(err)
					}
				}
				var err error
				if op == "Release" {
					err = r.Release(ctx, key, tok)
				} else {
					_, err = r.Extend(ctx, key, tok, longTTL)
				}
				switch {
				case tc.want == nil && err != nil:
					t.Fatalf("%s = %v, want nil", op, err)
				case tc.want != nil && !errors.Is(err, tc.want):
					t.Fatalf("%s = %v, want %v", op, err, tc.want)
				case tc.notWant != nil && errors.Is(err, tc.notWant):
					t.Fatalf("%s = %v, must not match %v", op, err, tc.notWant)
				}
			})
		}
	}
}

// TestRedlockQuorumReturnsEarly: a call returns once a quorum has
// decided, not when a hung node times out. NodeTimeout is far longer than
// each call's context, so a call that waited for the hung node would fail
// with its context.
func TestRedlockQuorumReturnsEarly(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 2)
	hole := newBlackHole(t)
	clients := []redis.UniversalClient{fastClient(t, nodes[0].Addr()), fastClient(t, hole.addr), fastClient(t, nodes[1].Addr())}
	for _, i := range []int{0, 2} {
		if err := clients[i].HSet(ctx, nodeMarker, "floor", 0, "high", 0, "maxttl", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r := newRedlock(t, clients, &redisprovider.RedlockOptions{NodeTimeout: 5 * time.Minute})
	t.Cleanup(hole.close) // before r.Close, which waits for the calls to the hole
	key := uniqueKey(t, "k")
	call := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := f(cctx); err != nil {
			t.Fatalf("%s with 1 of 3 nodes hung = %v, want success from the quorum", what, err)
		}
	}
	for range 3 {
		tok := uuid.NewString()
		call("TryAcquire", func(ctx context.Context) error { _, err := r.TryAcquire(ctx, key, tok, time.Hour); return err })
		call("Extend", func(ctx context.Context) error { _, err := r.Extend(ctx, key, tok, time.Hour); return err })
		call("State", func(ctx context.Context) error {
			st, err := r.State(ctx, key)
			if err == nil && st.Token != tok {
				err = fmt.Errorf("state %+v", st)
			}
			return err
		})
		call("Release", func(ctx context.Context) error { return r.Release(ctx, key, tok) })
		call("Acquire", func(ctx context.Context) error { _, err := r.Acquire(ctx, key, tok, time.Hour); return err })
		call("Release", func(ctx context.Context) error { return r.Release(ctx, key, tok) })
	}
}
