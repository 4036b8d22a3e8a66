package redisprovider_test

// Direct handoff on a single node: the release script grants the key to
// the head waiter and publishes the grant on that waiter's provider
// channel, so the waiter takes the lock without another request. These
// tests use poll intervals of an hour where a poll would hide a missing
// handoff: a waiter that is not handed the key (or woken) then waits past
// the test's bound, and the test fails instead of passing slowly.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/faultproxy"
	"github.com/lockproof/lockproof/internal/proctest"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

const never = time.Hour // a poll interval or TTL that a passing test never reaches

// queueOf returns key's waiter queue.
func queueOf(t testing.TB, c redis.UniversalClient, key string) []string {
	t.Helper()
	_, _, queue, _ := redisprovider.KeysOf(key)
	q, err := c.LRange(context.Background(), queue, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// waitQueued waits until token is in key's waiter queue.
func waitQueued(t testing.TB, c redis.UniversalClient, key, token string) {
	t.Helper()
	eventually(t, token+" queues", faultBound, func() error {
		if q := queueOf(t, c, key); !slices.Contains(q, token) {
			return fmt.Errorf("queue %v", q)
		}
		return nil
	})
}

// acquireResult is what an Acquire in a goroutine returned.
type acquireResult struct {
	g   provider.Grant
	err error
}

// acquireAsync starts p.Acquire(ctx, key, token, ttl) and returns its
// result channel and the time just before the call.
func acquireAsync(ctx context.Context, p provider.Provider, key, token string, ttl time.Duration) (<-chan acquireResult, time.Time) {
	ch := make(chan acquireResult, 1)
	start := time.Now()
	go func() {
		g, err := p.Acquire(ctx, key, token, ttl)
		ch <- acquireResult{g, err}
	}()
	return ch, start
}

// wantHeld fails unless key is held by token with fence.
func wantHeld(t testing.TB, p provider.Provider, key, token string, fence uint64) {
	t.Helper()
	st, err := p.State(context.Background(), key)
	if err != nil || !st.Held || st.Token != token || st.Fence != fence {
		t.Fatalf("State = %+v, %v; want held by %s with fence %d", st, err, token, fence)
	}
}

// warmScripts loads the acquire and release scripts into Redis, so that a
// count of script calls sees no NOSCRIPT retry.
func warmScripts(t testing.TB, ctx context.Context, p provider.Provider) {
	t.Helper()
	warm := uniqueKey(t, "warm")
	if _, err := p.TryAcquire(ctx, warm, "h", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, warm, "h"); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffWithoutTry: the head waiter gets the key from the release
// alone: between the release and the waiter's return Redis runs one script
// (the release), and the grant's fence and Expires are the handed hold's.
func TestHandoffWithoutTry(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	ctx := bounded(t, testBound)
	p := newProvider(t, c, &redisprovider.Options{PollInterval: never})
	if redisprovider.GrantChannel(p) == "" {
		t.Fatal("a Provider on a *redis.Client has no handoff channel")
	}
	key, ttl := uniqueKey(t, "k"), 30*time.Second
	warmScripts(t, ctx, p)

	held, err := p.TryAcquire(ctx, key, "h", ttl)
	if err != nil {
		t.Fatal(err)
	}
	res, callStart := acquireAsync(ctx, p, key, "w", ttl)
	waitQueued(t, c, key, "w")
	before := redistest.ScriptCalls(t, c)
	if err := p.Release(ctx, key, "h"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	r := <-res
	if r.err != nil {
		t.Fatalf("waiter Acquire: %v", r.err)
	}
	if n := redistest.ScriptCalls(t, c) - before; n != 1 {
		t.Fatalf("%d scripts ran from the release to the waiter's grant; want 1 (the release): the waiter asked again", n)
	}
	if r.g.Fence != held.Fence+1 {
		t.Fatalf("handed fence = %d, want %d", r.g.Fence, held.Fence+1)
	}
	// The hold was written by the release, after the waiter's try was sent
	// and before the release returned.
	if r.g.Expires.Before(callStart.Add(ttl)) || r.g.Expires.After(released.Add(ttl)) {
		t.Fatalf("Expires = call start %+v; want within [call start + TTL, release + TTL] = [%v, %v]",
			r.g.Expires.Sub(callStart), ttl, released.Sub(callStart)+ttl)
	}
	wantHeld(t, p, key, "w", r.g.Fence)
	lock, _, _, _ := redisprovider.KeysOf(key)
	if pttl, err := c.PTTL(ctx, lock).Result(); err != nil || pttl <= 0 || pttl > ttl {
		t.Fatalf("handed hold PTTL = %v, %v; want the waiter's TTL %v", pttl, err, ttl)
	}
	if q := queueOf(t, c, key); len(q) != 0 {
		t.Fatalf("queue after the handoff = %v, want empty", q)
	}
	if err := p.Release(ctx, key, "w"); err != nil {
		t.Fatalf("the handed hold is not the waiter's: %v", err)
	}
}

// TestHandoffOrder: waiters queued one after another, on four Providers,
// are handed the key in their queue order, each by the previous holder's
// release, with consecutive fences and no try after their first.
func TestHandoffOrder(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	ctx := bounded(t, testBound)
	const providers, waiters = 4, 12
	ps := make([]*redisprovider.Provider, providers)
	for i := range ps {
		ps[i] = newProvider(t, node.Client(t), &redisprovider.Options{PollInterval: never})
	}
	key, ttl := uniqueKey(t, "k"), time.Minute
	warmScripts(t, ctx, ps[0])
	held, err := ps[0].TryAcquire(ctx, key, "h", ttl)
	if err != nil {
		t.Fatal(err)
	}
	type turn struct {
		who   int
		fence uint64
	}
	var (
		mu    sync.Mutex
		turns []turn
		wg    sync.WaitGroup
		errs  = make(chan error, waiters)
	)
	for i := range waiters {
		p := ps[i%providers]
		token := "w" + strconv.Itoa(i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := p.Acquire(ctx, key, token, ttl)
			if err != nil {
				errs <- fmt.Errorf("%s: Acquire: %w", token, err)
				return
			}
			mu.Lock()
			turns = append(turns, turn{i, g.Fence})
			mu.Unlock()
			if err := p.Release(ctx, key, token); err != nil {
				errs <- fmt.Errorf("%s: Release: %w", token, err)
			}
		}()
		waitQueued(t, c, key, token) // in this order
	}
	before := redistest.ScriptCalls(t, c)
	if err := ps[0].Release(ctx, key, "h"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sort.Slice(turns, func(i, j int) bool { return turns[i].fence < turns[j].fence })
	for i, tu := range turns {
		if tu.who != i || tu.fence != held.Fence+uint64(i)+1 {
			t.Fatalf("turns by fence = %v; want waiter i with fence %d+i+1, in queue order", turns, held.Fence)
		}
	}
	if n, want := redistest.ScriptCalls(t, c)-before, waiters+1; n != want {
		t.Fatalf("%d scripts ran after the waiters queued; want %d releases only", n, want)
	}
}

// TestHandoffFIFOUnderLoad: many goroutines on several Providers take turns
// on one key; each holder notes the head of the queue just before its
// release, and the next holder must be that head.
func TestHandoffFIFOUnderLoad(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	ctx := bounded(t, testBound)
	const providers, workers, cycles = 4, 16, 8
	ps := make([]*redisprovider.Provider, providers)
	for i := range ps {
		// Polls every 10 s at most: the waiters' places last 30 s.
		ps[i] = newProvider(t, node.Client(t), &redisprovider.Options{PollInterval: 10 * time.Second})
	}
	key := uniqueKey(t, "k")
	_, _, queue, _ := redisprovider.KeysOf(key)
	var (
		mu   sync.Mutex
		log  []fifoTurn
		wg   sync.WaitGroup
		errs = make(chan error, workers)
	)
	for w := range workers {
		p := ps[w%providers]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles {
				token := fmt.Sprintf("w%d-%d", w, i)
				g, err := p.Acquire(ctx, key, token, time.Minute)
				if err != nil {
					errs <- fmt.Errorf("%s: Acquire: %w", token, err)
					return
				}
				q, err := c.LRange(ctx, queue, 0, 0).Result()
				if err != nil {
					errs <- err
					return
				}
				head := ""
				if len(q) > 0 {
					head = q[0]
				}
				mu.Lock()
				log = append(log, fifoTurn{fence: g.Fence, self: token, head: head})
				mu.Unlock()
				if err := p.Release(ctx, key, token); err != nil {
					errs <- fmt.Errorf("%s: Release: %w", token, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkFIFO(t, log, workers*cycles)
}

// fifoTurn is one hold: its fence, its token, and the head of the queue
// that its holder saw just before releasing ("" for none).
type fifoTurn struct {
	fence      uint64
	self, head string
}

// checkFIFO fails unless there are n turns with increasing fences, each
// after a turn that saw a head taken by that head.
func checkFIFO(t testing.TB, log []fifoTurn, n int) {
	t.Helper()
	if len(log) != n {
		t.Fatalf("%d turns logged, want %d", len(log), n)
	}
	sort.Slice(log, func(i, j int) bool { return log[i].fence < log[j].fence })
	handed := 0
	for i := 1; i < len(log); i++ {
		prev, cur := log[i-1], log[i]
		if cur.fence == prev.fence {
			t.Fatalf("two holds with fence %d: %v and %v", cur.fence, prev, cur)
		}
		if prev.head != "" {
			handed++
			if cur.self != prev.head {
				t.Fatalf("after %s released with %s at the head of the queue, %s took the key (fence %d)",
					prev.self, prev.head, cur.self, cur.fence)
			}
		}
	}
	if handed == 0 {
		t.Fatalf("no turn saw a waiter: the test did not contend")
	}
}

// TestHandoffSkipsDeadHead: a queued waiter that Redis can no longer reach
// (its connections cut, as when its process dies: its subscription is gone,
// and its place in the queue stays until its deadline, hours away here) is
// not handed the key: the live waiter behind it is, at once; and when only
// the unreachable one is left, a release drops it, so that a new caller
// takes the key at once.
func TestHandoffSkipsDeadHead(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	ctx := bounded(t, testBound)
	key := uniqueKey(t, "k")
	holder := newProvider(t, node.Client(t), &redisprovider.Options{PollInterval: never})
	px, pc := redistest.Proxied(t, node)
	dead := newProvider(t, pc, &redisprovider.Options{PollInterval: never})
	live := newProvider(t, node.Client(t), &redisprovider.Options{PollInterval: never})

	held, err := holder.TryAcquire(ctx, key, "h", never)
	if err != nil {
		t.Fatal(err)
	}
	acquireAsync(ctx, dead, key, "dead", never) // ends when the test does
	waitQueued(t, c, key, "dead")
	liveRes, _ := acquireAsync(ctx, live, key, "live", never)
	waitQueued(t, c, key, "live")
	if err := px.Close(); err != nil { // its connections close, and new ones are refused
		t.Fatal(err)
	}
	channel := redisprovider.GrantChannel(dead)
	eventually(t, "Redis drops the cut subscription", faultBound, func() error {
		n, err := c.PubSubNumSub(ctx, channel).Result()
		if err != nil {
			return err
		}
		if n[channel] != 0 {
			return fmt.Errorf("%d subscribers", n[channel])
		}
		return nil
	})
	if q := queueOf(t, c, key); !slices.Equal(q, []string{"dead", "live"}) {
		t.Fatalf("queue = %v; want the cut waiter still at its head", q)
	}

	if err := holder.Release(ctx, key, "h"); err != nil {
		t.Fatal(err)
	}
	r := <-liveRes
	if r.err != nil {
		t.Fatalf("live waiter: %v", r.err)
	}
	if r.g.Fence <= held.Fence {
		t.Fatalf("live waiter's fence %d, not above %d", r.g.Fence, held.Fence)
	}
	if q := queueOf(t, c, key); !slices.Equal(q, []string{"dead"}) {
		t.Fatalf("queue = %v; want the skipped waiter to keep its place", q)
	}
	if err := live.Release(ctx, key, "live"); err != nil {
		t.Fatal(err)
	}
	if q := queueOf(t, c, key); len(q) != 0 {
		t.Fatalf("queue = %v after a release that nobody could take; want the unreachable waiter gone", q)
	}
	g, err := holder.TryAcquire(ctx, key, "new", never)
	if err != nil {
		t.Fatalf("a new caller after the unreachable waiter: %v", err)
	}
	if g.Fence <= r.g.Fence {
		t.Fatalf("new caller's fence %d, not above %d", g.Fence, r.g.Fence)
	}
}

// lostHandoff queues token on key through a fault proxy, as the only
// waiter, behind a hold of "h", and releases that hold with the proxy
// dropping the next thing Redis sends the waiter's client: the handoff
// message. It returns the waiter's result channel, the time the release
// returned, and the proxied Provider.
func lostHandoff(t *testing.T, node *redistest.Node, ctx context.Context, key, token string, ttl time.Duration) (<-chan acquireResult, time.Time, *redisprovider.Provider) {
	t.Helper()
	c := node.Client(t)
	holder := newProvider(t, c, &redisprovider.Options{PollInterval: never})
	px, pc := redistest.Proxied(t, node)
	p := newProvider(t, pc, &redisprovider.Options{PollInterval: never})
	if _, err := holder.TryAcquire(ctx, key, "h", ttl); err != nil {
		t.Fatal(err)
	}
	res, _ := acquireAsync(ctx, p, key, token, ttl)
	waitQueued(t, c, key, token)
	// The waiter sends nothing now (it polls hourly), so the next chunk
	// from Redis on its connections is the handoff.
	px.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Drop, Times: 1})
	if err := holder.Release(ctx, key, "h"); err != nil {
		t.Fatal(err)
	}
	released := time.Now()
	eventually(t, "the proxy drops the handoff", faultBound, func() error {
		if px.Fired() != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	st, err := holder.State(ctx, key)
	if err != nil || st.Token != token {
		t.Fatalf("State after the handoff = %+v, %v; want held by %s", st, err, token)
	}
	return res, released, p
}

// wake publishes the wake-up for key's head token on the default channel,
// as a release does when it hands nothing over.
func wake(t testing.TB, c redis.UniversalClient, key, token string) {
	t.Helper()
	msg := strconv.Itoa(len(token)) + ":" + token + key
	if err := c.Publish(context.Background(), redisprovider.DefaultPrefix+"released", msg).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestHandoffMessageLost: a handoff whose message never arrives is found
// by the waiter's next try, which returns the handed hold with an Expires
// counted from the hold's remaining TTL, not from the try.
func TestHandoffMessageLost(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	ctx := bounded(t, testBound)
	key, ttl := uniqueKey(t, "k"), 30*time.Second
	res, released, p := lostHandoff(t, node, ctx, key, "w", ttl)
	st, err := p.State(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	wake(t, c, key, "w") // stands for the waiter's next poll
	r := <-res
	if r.err != nil {
		t.Fatalf("waiter after a lost handoff: %v", r.err)
	}
	if r.g.Fence != st.Fence {
		t.Fatalf("fence = %d, want the handed hold's %d", r.g.Fence, st.Fence)
	}
	// The hold lapses at most TTL after the release; a grant counted from
	// the later try would claim more.
	if r.g.Expires.After(released.Add(ttl)) {
		t.Fatalf("Expires is %v after release + TTL: later than the hold's expiry", r.g.Expires.Sub(released.Add(ttl)))
	}
	if err := p.Release(ctx, key, "w"); err != nil {
		t.Fatalf("the grant is not the handed hold: %v", err)
	}
}

// TestHandoffGiveUpFrees: a waiter whose Acquire ends after the key was
// handed to it (its message lost) gives the hold back, and the next waiter
// is woken and takes the key, long before the hold's TTL.
func TestHandoffGiveUpFrees(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	ctx := bounded(t, testBound)
	key := uniqueKey(t, "k")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := newProvider(t, node.Client(t), &redisprovider.Options{PollInterval: never})

	// "w" queues first, then "x" behind it; the handoff to w is lost.
	holder := newProvider(t, c, &redisprovider.Options{PollInterval: never})
	px, pc := redistest.Proxied(t, node)
	p := newProvider(t, pc, &redisprovider.Options{PollInterval: never})
	if _, err := holder.TryAcquire(ctx, key, "h", never); err != nil {
		t.Fatal(err)
	}
	wRes, _ := acquireAsync(wctx, p, key, "w", never)
	waitQueued(t, c, key, "w")
	xRes, _ := acquireAsync(ctx, next, key, "x", never)
	waitQueued(t, c, key, "x")
	px.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Drop, Times: 1})
	if err := holder.Release(ctx, key, "h"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the proxy drops the handoff", faultBound, func() error {
		if px.Fired() != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	if st, err := holder.State(ctx, key); err != nil || st.Token != "w" {
		t.Fatalf("State after the handoff = %+v, %v; want held by w", st, err)
	}

	cancel() // w gives up while it holds the key unknowingly
	r := <-wRes
	wantErr(t, "w's Acquire", r.err, provider.ErrNotAcquired)
	wantErr(t, "w's Acquire", r.err, context.Canceled)
	x := <-xRes
	if x.err != nil {
		t.Fatalf("next waiter after the give-up: %v", x.err)
	}
	wantHeld(t, holder, key, "x", x.g.Fence)
}

// TestHandoffClusterFallsBack: on Cluster a script's PUBLISH reaches only
// its node's subscribers, so the provider takes no handoff there; waiters
// are woken and take the key by a try.
func TestHandoffClusterFallsBack(t *testing.T) {
	t.Parallel()
	cl := redistest.Cluster(t, 3)
	ctx := bounded(t, testBound)
	// Woken, or at worst polling: this test is about what Cluster does
	// not do (TestServiceSuiteCluster covers its wake-ups).
	p := newProvider(t, cl.Client(t), &redisprovider.Options{PollInterval: 10 * time.Second})
	if ch := redisprovider.GrantChannel(p); ch != "" {
		t.Fatalf("a Cluster provider takes handoffs on %q", ch)
	}
	key := uniqueKey(t, "k")
	if _, err := p.TryAcquire(ctx, key, "h", never); err != nil {
		t.Fatal(err)
	}
	res, _ := acquireAsync(ctx, p, key, "w", never)
	waitQueued(t, cl.Client(t), key, "w")
	if err := p.Release(ctx, key, "h"); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil {
		t.Fatalf("Cluster waiter: %v", r.err)
	}
	wantHeld(t, p, key, "w", 2)
}

// Environment of a worker process of TestHandoffCrossProcess (beside the
// envAddr and envKey of crossprocess_test.go).
const envTurns = "LOCKPROOF_HANDOFF_TURNS"

// TestHandoffCrossProcess: worker processes, each with its own client and
// Provider, take turns on one key. Each holder increments a counter (read,
// then write: only the lock keeps it right) and logs its fence, its token
// and the head of the queue just before its release; the next holder must
// be that head. The handoff saves tries: without it every contended turn
// costs two acquire scripts, the refused one and the one after the wake-up.
func TestHandoffCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes; skipped in -short mode")
	}
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), crossBound)
	defer cancel()
	const procs, turns = 4, 100
	key := uniqueKey(t, "k")
	warmScripts(t, ctx, newProvider(t, c, nil))
	before := redistest.ScriptCalls(t, c)
	proctest.Run(ctx, t, procs, "TestHandoffCrossProcessWorker",
		envAddr+"="+node.Addr(), envKey+"="+key, envTurns+"="+strconv.Itoa(turns))
	scripts := redistest.ScriptCalls(t, c) - before

	n, err := c.Get(ctx, key+":counter").Int()
	if err != nil || n != procs*turns {
		t.Fatalf("counter = %d, %v; want %d", n, err, procs*turns)
	}
	lines, err := c.LRange(ctx, key+":log", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	log := make([]fifoTurn, 0, len(lines))
	for _, l := range lines {
		f := strings.SplitN(l, " ", 3)
		fence, err := strconv.ParseUint(f[0], 10, 64)
		if len(f) != 3 || err != nil {
			t.Fatalf("log line %q", l)
		}
		log = append(log, fifoTurn{fence: fence, self: f[1], head: f[2]})
	}
	checkFIFO(t, log, procs*turns)
	// Each turn is one release; the acquires are one try per turn plus
	// one per wake-up that a handoff would have made unnecessary.
	if tries := scripts - procs*turns; tries >= procs*turns*3/2 {
		t.Fatalf("%d acquire scripts for %d turns: the waiters were woken to try, not handed the key", tries, procs*turns)
	}
	t.Logf("%d turns, %d acquire scripts", procs*turns, scripts-procs*turns)
}

// TestHandoffCrossProcessWorker is the body of one worker process of
// TestHandoffCrossProcess; run directly, it does nothing.
func TestHandoffCrossProcessWorker(t *testing.T) {
	if !proctest.IsWorker(t.Name()) {
		return // not a worker
	}
	turns, err := strconv.Atoi(os.Getenv(envTurns))
	if err != nil {
		t.Fatalf("%s: %v", envTurns, err)
	}
	key := os.Getenv(envKey)
	ctx, cancel := context.WithTimeout(context.Background(), crossBound)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr), ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, &redisprovider.Options{PollInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, _, queue, _ := redisprovider.KeysOf(key)
	self := strconv.Itoa(os.Getpid())
	for i := range turns {
		token := self + "-" + strconv.Itoa(i)
		g, err := p.Acquire(ctx, key, token, crossTTL)
		if err != nil {
			t.Fatalf("turn %d: Acquire: %v", i, err)
		}
		n, err := rdb.Get(ctx, key+":counter").Uint64()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		if err := rdb.Set(ctx, key+":counter", n+1, 0).Err(); err != nil {
			t.Fatal(err)
		}
		q, err := rdb.LRange(ctx, queue, 0, 0).Result()
		if err != nil {
			t.Fatal(err)
		}
		head := ""
		if len(q) > 0 {
			head = q[0]
		}
		if err := rdb.RPush(ctx, key+":log", fmt.Sprintf("%d %s %s", g.Fence, token, head)).Err(); err != nil {
			t.Fatal(err)
		}
		if err := p.Release(ctx, key, token); err != nil {
			t.Fatalf("turn %d: Release: %v", i, err)
		}
	}
}

// TestParseHandoff: a handoff message is taken apart exactly (tokens and
// keys may contain spaces and colons), and every malformed one is refused,
// so the dispatcher ignores it and the waiter's next try asks Redis.
func TestParseHandoff(t *testing.T) {
	key, token, nonce, fence, elapsed, seq, ok := redisprovider.ParseHandoff("12 3 4 n0nce 5:a b:ck e:y")
	if !ok || key != "k e:y" || token != "a b:c" || nonce != "n0nce" || fence != 12 || elapsed != 3 || seq != 4 {
		t.Fatalf("ParseHandoff = %q %q %q %d %d %d %v", key, token, nonce, fence, elapsed, seq, ok)
	}
	for _, msg := range []string{
		"",
		"12 3 4 1:ak",                     // a field missing
		"0 3 4 n 1:ak",                    // fence 0
		"x 3 4 n 1:ak",                    // fence not a number
		"-1 3 4 n 1:ak",                   // negative fence
		"12 -3 4 n 1:ak",                  // negative elapsed
		"12 3.5 4 n 1:ak",                 // elapsed not an integer
		"12 3 x n 1:ak",                   // seq not a number
		"12 3 4  1:ak",                    // empty nonce
		"12 3 4 n 9:ak",                   // token longer than the rest
		"12 3 4 n ak",                     // no length
		"12 3 4 n -1:ak",                  // negative length
		"99999999999999999999 3 4 n 1:ak", // fence above 2^64
	} {
		if _, _, _, _, _, _, ok := redisprovider.ParseHandoff(msg); ok {
			t.Errorf("ParseHandoff(%q) accepted", msg)
		}
	}
}

// recordingTB is a testing.TB whose Errorf and Fatalf only record, for a
// proctest.Run whose worker the test kills on purpose.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

// TestHandoffSkipsKilledProcess: a waiter in another process that is
// killed (SIGKILL) while it is the head of the queue is not handed the key:
// its sockets close with it, so the handoff's PUBLISH reaches nobody, and
// the live waiter behind it gets the key at once, although the killed
// waiter's place would last for hours and its hold for an hour.
func TestHandoffSkipsKilledProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process; skipped in -short mode")
	}
	t.Parallel()
	node := redistest.Server(t)
	c := node.Client(t)
	ctx := bounded(t, testBound)
	key := uniqueKey(t, "k")
	holder := newProvider(t, c, &redisprovider.Options{PollInterval: never})
	live := newProvider(t, node.Client(t), &redisprovider.Options{PollInterval: never})
	if _, err := holder.TryAcquire(ctx, key, "h", never); err != nil {
		t.Fatal(err)
	}

	kctx, kill := context.WithCancel(ctx)
	defer kill()
	rec := &recordingTB{TB: t}
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		proctest.Run(kctx, rec, 1, "TestHandoffKilledWorker", envAddr+"="+node.Addr(), envKey+"="+key)
	}()
	waitQueued(t, c, key, "dead")
	liveRes, _ := acquireAsync(ctx, live, key, "live", never)
	waitQueued(t, c, key, "live")
	kill() // SIGKILL, by exec.CommandContext
	<-ran
	if len(rec.msgs) == 0 {
		t.Fatal("the worker was not killed: it ended by itself")
	}
	eventually(t, "Redis drops the killed process's subscription", faultBound, func() error {
		chans, err := c.PubSubChannels(ctx, redisprovider.DefaultPrefix+"released:*").Result()
		if err != nil {
			return err
		}
		if len(chans) != 1 || chans[0] != redisprovider.GrantChannel(live) {
			return fmt.Errorf("grant channels %v", chans)
		}
		return nil
	})
	if q := queueOf(t, c, key); !slices.Equal(q, []string{"dead", "live"}) {
		t.Fatalf("queue = %v; want the killed waiter still at its head", q)
	}
	if err := holder.Release(ctx, key, "h"); err != nil {
		t.Fatal(err)
	}
	r := <-liveRes
	if r.err != nil {
		t.Fatalf("live waiter: %v", r.err)
	}
	wantHeld(t, holder, key, "live", r.g.Fence)
}

// TestHandoffKilledWorker is the body of the process that
// TestHandoffSkipsKilledProcess kills: it waits on the key until then.
// Run directly, it does nothing.
func TestHandoffKilledWorker(t *testing.T) {
	if !proctest.IsWorker(t.Name()) {
		return // not a worker
	}
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr), ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, &redisprovider.Options{PollInterval: never})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err = p.Acquire(context.Background(), os.Getenv(envKey), "dead", never)
	t.Fatalf("Acquire returned before the kill: %v", err)
}
