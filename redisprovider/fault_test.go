package redisprovider_test

// Failure tests: a dead or hung Redis, a flushed script cache, a restart,
// leases lost to ForceRelease or to a dead node, Redlock with a minority
// (and then a majority) of nodes down, fences across changing majorities,
// and Cluster keys containing braces.
//
// No test sleeps and then asserts that something "seemed to work": each
// waits for an observable condition (an error, a cancelled context, a key
// in Redis) within a generous bound, so a slow machine only makes them
// slower.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// Bounds of the fault tests. Generous on purpose: they are liveness bounds,
// never latency assertions.
const (
	faultBound = 10 * time.Second // for something expected to happen
	testBound  = 2 * time.Minute  // for a whole test's calls
	longTTL    = time.Minute      // a hold only a release ends during a test
)

// These tests kill nodes on purpose, and go-redis logs every failed dial
// (hundreds of lines per test) through its global logger. quietLogger drops
// those lines and passes on the rest.
type quietLogger struct{}

func (quietLogger) Printf(_ context.Context, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "failed to dial") {
		return
	}
	log.Print("redis: ", msg)
}

func init() { redis.SetLogger(quietLogger{}) }

// uniqueKey returns a key of its own for this test.
func uniqueKey(t testing.TB, name string) string {
	return t.Name() + "/" + name + "/" + uuid.NewString()
}

// bounded returns a context that ends after d or with the test.
func bounded(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fastClient returns a client of addr that gives up at once on a dead node:
// go-redis's defaults (several dial attempts with backoff, three command
// retries) take seconds to fail, which would make every test against a
// dead node slow. It also honours context deadlines (go-redis ignores them
// by default, see TestRedlockHungMinority), so Redlock's NodeTimeout
// applies. It is closed in t.Cleanup.
func fastClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:                  addr,
		DialTimeout:           250 * time.Millisecond,
		ReadTimeout:           3 * time.Second,
		WriteTimeout:          3 * time.Second,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
		DialerRetries:         1,
		DialerRetryTimeout:    time.Millisecond,
	})
	if _, seen := redialWaits.LoadOrStore(t, true); !seen {
		// Registered before this test's first client Close, so it runs
		// after all of them.
		t.Cleanup(func() {
			redialWaits.Delete(t)
			waitRedialers(t)
		})
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// redialWaits holds the tests that have registered waitRedialers.
var redialWaits sync.Map // testing.TB → true

// waitRedialers waits, at most a few seconds, until no go-redis pool is
// still redialling. After PoolSize failed dials a go-redis pool starts a
// goroutine that redials every second and notices Close only after its
// sleep; goleak in TestMain would report it if the binary ended first. It
// is go-redis's goroutine, not ours, so it is waited for, not asserted on
// (another test's open client may have one too).
func waitRedialers(t testing.TB) {
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 1<<20)
	for time.Now().Before(deadline) {
		n := runtime.Stack(buf, true)
		if !bytes.Contains(buf[:n], []byte("(*ConnPool).tryDial")) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("a go-redis redial goroutine is still running after 3s (maybe another test's)")
}

// fastNodes starts n servers and returns them with a fastClient each.
func fastNodes(t testing.TB, n int) ([]*redistest.Node, []redis.UniversalClient) {
	t.Helper()
	nodes := redistest.Servers(t, n)
	clients := make([]redis.UniversalClient, n)
	for i, node := range nodes {
		clients[i] = fastClient(t, node.Addr())
	}
	return nodes, clients
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// blackHole returns the address of a listener that accepts connections and
// never answers: a hung node (a paused process, a dropped network path)
// rather than a dead one. It is closed in t.Cleanup.
func blackHole(t testing.TB) string {
	t.Helper()
	return newBlackHole(t).addr
}

type hole struct {
	addr  string
	l     net.Listener
	wg    sync.WaitGroup // the accept loop
	mu    sync.Mutex
	conns []net.Conn // guarded by mu
	once  sync.Once
}

func newBlackHole(t testing.TB) *hole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hole{addr: l.Addr().String(), l: l}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(h.close)
	return h
}

// close stops listening and drops every connection, so calls blocked on
// them fail at once. It is idempotent.
func (h *hole) close() {
	h.once.Do(func() {
		_ = h.l.Close()
		h.wg.Wait()
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, c := range h.conns {
			_ = c.Close()
		}
	})
}

func newProvider(t testing.TB, c redis.UniversalClient, opts *redisprovider.Options) *redisprovider.Provider {
	t.Helper()
	p, err := redisprovider.New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func newRedlock(t testing.TB, clients []redis.UniversalClient, opts *redisprovider.RedlockOptions) *redisprovider.Redlock {
	t.Helper()
	r, err := redisprovider.NewRedlock(clients, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func newService(t testing.TB, p provider.Provider, opts *locked.Options) *locked.Service {
	t.Helper()
	s, err := locked.New(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// wantErr fails the test unless err matches want.
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s = %v, want an error matching %v", what, err, want)
	}
}

// eventually calls f until it returns nil, failing the test if it still
// fails after bound.
func eventually(t testing.TB, what string, bound time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, bound, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lockKey and fenceKey are the Redis keys of a lock key under the default
// prefix.
func lockKey(key string) string {
	lock, _, _, _ := redisprovider.KeysOf(key)
	return lock
}

func fenceKey(key string) string {
	_, fence, _, _ := redisprovider.KeysOf(key)
	return fence
}

// waiterMarkers returns the keys a blocked waiter sets (see waitForWaiter).
func waiterMarkers(key string) []string {
	_, _, queue, alive := redisprovider.KeysOf(key)
	return []string{queue, alive}
}

// ---------------------------------------------------------------------------
// A dead Redis.

// TestRedisDown: every call on a provider whose Redis is down fails with
// ErrUnavailable, at once, without a panic; Close then leaves nothing
// running (goleak in TestMain).
//
// Contract chosen for Acquire: a store failure ends the wait at once with
// ErrUnavailable, as it does for TryAcquire; it does not retry until its
// context ends (which would report ErrNotAcquired and hide the outage
// behind a timeout). Redlock already tolerates a minority of failed nodes.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"KilledNode", func(t *testing.T) string {
			n := redistest.Server(t)
			n.Kill(t)
			return n.Addr()
		}},
		{"NoListener", func(t *testing.T) string { return freeAddr(t) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := fastClient(t, tc.addr(t))

			t.Run("Provider", func(t *testing.T) {
				ctx := bounded(t, testBound)
				p := newProvider(t, c, nil)
				key, tok := uniqueKey(t, "k"), "tok-"+uuid.NewString()

				_, err := p.TryAcquire(ctx, key, tok, longTTL)
				wantErr(t, "TryAcquire", err, provider.ErrUnavailable)

				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err = p.Acquire(actx, key, tok, longTTL)
				cancel()
				wantErr(t, "Acquire", err, provider.ErrUnavailable)
				if errors.Is(err, provider.ErrNotAcquired) || errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Acquire = %v: it waited for its context; want it to fail at once with ErrUnavailable only", err)
				}

				wantErr(t, "Release", p.Release(ctx, key, tok), provider.ErrUnavailable)
				_, err = p.Extend(ctx, key, tok, longTTL)
				wantErr(t, "Extend", err, provider.ErrUnavailable)
				_, err = p.State(ctx, key)
				wantErr(t, "State", err, provider.ErrUnavailable)
				_, err = p.ForceRelease(ctx, key)
				wantErr(t, "ForceRelease", err, provider.ErrUnavailable)

				if err := p.Close(); err != nil {
					t.Fatalf("Close = %v, want nil", err)
				}
				_, err = p.TryAcquire(ctx, key, tok, longTTL)
				wantErr(t, "TryAcquire after Close", err, provider.ErrClosed)
			})

			t.Run("Service", func(t *testing.T) {
				ctx := bounded(t, testBound)
				p := newProvider(t, c, nil)
				svc := newService(t, p, nil)
				key := uniqueKey(t, "k")

				_, err := svc.Acquire(ctx, key)
				wantErr(t, "Service.Acquire", err, locked.ErrUnavailable)
				var le *locked.Error
				if !errors.As(err, &le) || le.Op != "acquire" || le.Key != key {
					t.Fatalf("Service.Acquire = %#v, want a *locked.Error for acquire %q", err, key)
				}
				if errors.Is(err, locked.ErrNotAcquired) {
					t.Fatalf("Service.Acquire = %v: it waited for its timeout; want ErrUnavailable at once", err)
				}
				_, err = svc.TryAcquire(ctx, key)
				wantErr(t, "Service.TryAcquire", err, locked.ErrUnavailable)
				err = svc.Run(ctx, key, func(context.Context) error {
					t.Error("Run called fn without a lock")
					return nil
				})
				wantErr(t, "Service.Run", err, locked.ErrUnavailable)
				_, err = svc.State(ctx, key)
				wantErr(t, "Service.State", err, locked.ErrUnavailable)
				_, err = svc.IsLocked(ctx, key)
				wantErr(t, "Service.IsLocked", err, locked.ErrUnavailable)
				_, err = svc.ForceRelease(ctx, key)
				wantErr(t, "Service.ForceRelease", err, locked.ErrUnavailable)
				if n := svc.Stats().Open; n != 0 {
					t.Fatalf("Held = %d after failed acquires, want 0", n)
				}
				if err := svc.Close(); err != nil {
					t.Fatalf("Service.Close = %v", err)
				}
				if err := p.Close(); err != nil {
					t.Fatalf("Provider.Close = %v", err)
				}
			})
		})
	}
}

// ---------------------------------------------------------------------------
// Scripts and restarts.

// cachedScripts returns how many scripts the server has cached (INFO
// memory), which does not depend on which scripts the provider uses.
func cachedScripts(t testing.TB, c redis.UniversalClient) int {
	t.Helper()
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		t.Fatalf("INFO memory: %v", err)
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "number_of_cached_scripts:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("INFO memory: %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("INFO memory has no number_of_cached_scripts:\n%s", info)
	return 0
}

// lifecycle runs one hold of key through every call of p and returns its
// fence. Every call must succeed.
func lifecycle(t testing.TB, p provider.Provider, key string) uint64 {
	t.Helper()
	ctx := bounded(t, testBound)
	tok := "tok-" + uuid.NewString()
	g, err := p.TryAcquire(ctx, key, tok, longTTL)
	if err != nil {
		t.Fatalf("TryAcquire: %v", err)
	}
	if st, err := p.State(ctx, key); err != nil || !st.Held || st.Token != tok || st.Fence != g.Fence {
		t.Fatalf("State = %+v, %v; want held by %s with fence %d", st, err, tok, g.Fence)
	}
	if ge, err := p.Extend(ctx, key, tok, longTTL); err != nil || ge.Fence != g.Fence {
		t.Fatalf("Extend = %+v, %v; want fence %d", ge, err, g.Fence)
	}
	if err := p.Release(ctx, key, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if held, err := p.ForceRelease(ctx, key); err != nil || held {
		t.Fatalf("ForceRelease of a free key = %v, %v; want false, nil", held, err)
	}
	if st, err := p.State(ctx, key); err != nil || st.Held {
		t.Fatalf("State after release = %+v, %v; want free", st, err)
	}
	return g.Fence
}

// TestScriptFlush: after SCRIPT FLUSH (as after a restart or a failover to
// a replica that never saw the scripts) every call still works: the
// NOSCRIPT reply makes go-redis send the script itself.
func TestScriptFlush(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	p := newProvider(t, c, nil)
	key := uniqueKey(t, "k")

	f1 := lifecycle(t, p, key)
	if n := cachedScripts(t, c); n == 0 {
		t.Fatalf("no script cached after a hold's lifecycle")
	}

	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	if n := cachedScripts(t, c); n != 0 {
		t.Fatalf("%d scripts cached after SCRIPT FLUSH", n)
	}

	f2 := lifecycle(t, p, key)
	if f2 <= f1 {
		t.Fatalf("fence after SCRIPT FLUSH = %d, want > %d", f2, f1)
	}
	if n := cachedScripts(t, c); n == 0 { // reloaded transparently
		t.Fatalf("no script cached after SCRIPT FLUSH and a lifecycle")
	}
}

// TestRestart: a restart (graceful, or a crash) while calls are running
// fails those calls with ErrUnavailable at worst; afterwards calls work
// again by themselves, with the scripts reloaded, and the wake-up
// subscription is back.
func TestRestart(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		restart func(t *testing.T, n *redistest.Node)
	}{
		{"Graceful", func(t *testing.T, n *redistest.Node) { n.Restart(t) }},
		{"Crash", func(t *testing.T, n *redistest.Node) { n.Kill(t); n.Start(t) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := bounded(t, testBound)
			node := redistest.Server(t)
			c := fastClient(t, node.Addr())
			// Polling once a minute: a waiter that ends promptly below was
			// woken by a published release.
			p := newProvider(t, c, &redisprovider.Options{PollInterval: time.Minute})
			other := newProvider(t, fastClient(t, node.Addr()), nil)
			admin := node.Client(t)

			// A first wait starts the wake-up subscription.
			wantWoken(t, p, other, admin, uniqueKey(t, "before"))
			fenced := uniqueKey(t, "fenced")
			var before uint64
			for range 3 {
				before = lifecycle(t, p, fenced)
			}

			// Hold-and-release cycles run throughout the restart.
			var (
				gen     atomic.Int32 // 1 once the restart is over
				afterOK atomic.Int32 // cycles begun after it that succeeded
				stop    = make(chan struct{})
				done    = make(chan struct{})
				failure error
			)
			go func() {
				defer close(done)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					g := gen.Load()
					key, tok := fmt.Sprintf("%s/cycle/%d", t.Name(), i), fmt.Sprint("tok-", i)
					_, err := p.TryAcquire(ctx, key, tok, longTTL)
					if err == nil {
						err = p.Release(ctx, key, tok)
						// A restart between the two wipes the hold.
						if errors.Is(err, provider.ErrNotHeld) && g == 0 {
							err = nil
						}
					}
					switch {
					case err == nil:
						if g == 1 {
							afterOK.Add(1)
						}
					case errors.Is(err, provider.ErrUnavailable):
						time.Sleep(10 * time.Millisecond) // do not spin while it is down
					default:
						failure = fmt.Errorf("cycle %d (restart phase %d): %w", i, g, err)
						return
					}
				}
			}()

			tc.restart(t, node)
			gen.Store(1)
			eventually(t, "cycles after the restart", faultBound, func() error {
				select {
				case <-done: // the loop failed: reported below
					return nil
				default:
				}
				if n := afterOK.Load(); n < 20 {
					return fmt.Errorf("%d cycles succeeded", n)
				}
				return nil
			})
			close(stop)
			<-done
			if failure != nil {
				t.Fatalf("during the restart: %v; want only ErrUnavailable", failure)
			}

			after := lifecycle(t, p, fenced)
			if n := cachedScripts(t, admin); n == 0 {
				t.Fatalf("no script cached after the restart and a lifecycle")
			}
			// Without persistence the key's fence counter starts again:
			// fences increase for the life of the store (provider.Grant).
			t.Logf("fence of one key before the restart %d, after %d", before, after)

			// The subscription reconnects by itself; once Redis lists it
			// again, a release must wake a waiter without polling.
			eventually(t, "subscription back", faultBound, func() error {
				n, err := admin.PubSubNumSub(ctx, redisprovider.DefaultPrefix+"released").Result()
				if err != nil {
					return err
				}
				if n[redisprovider.DefaultPrefix+"released"] < 1 {
					return errors.New("no subscriber")
				}
				return nil
			})
			wantWoken(t, p, other, admin, uniqueKey(t, "after"))
		})
	}
}

// wantWoken has holder hold key, starts a waiter on p, and checks that the
// holder's release reaches the waiter within faultBound, which needs the
// published wake-up: the hold and p's polling are a minute long. admin is a
// client of the node that stores key.
func wantWoken(t testing.TB, p, holder provider.Provider, admin redis.UniversalClient, key string) {
	t.Helper()
	ctx := bounded(t, testBound)
	if _, err := holder.TryAcquire(ctx, key, "holder", longTTL); err != nil {
		t.Fatalf("holder TryAcquire: %v", err)
	}
	res := make(chan error, 1)
	go func() {
		actx, cancel := context.WithTimeout(ctx, faultBound)
		defer cancel()
		_, err := p.Acquire(actx, key, "waiter", longTTL)
		res <- err
	}()
	waitForWaiter(t, admin, key)
	if err := holder.Release(ctx, key, "holder"); err != nil {
		t.Fatalf("holder Release: %v", err)
	}
	if err := <-res; err != nil {
		t.Fatalf("waiter: %v; want it woken by the release", err)
	}
	if err := p.Release(ctx, key, "waiter"); err != nil {
		t.Fatalf("waiter Release: %v", err)
	}
}

// waitForWaiter waits until a waiter on key has tried once and found it
// held, which the acquire script records in Redis by queueing the waiter.
func waitForWaiter(t testing.TB, admin redis.UniversalClient, key string) {
	t.Helper()
	eventually(t, "waiter blocked", faultBound, func() error {
		for _, marker := range waiterMarkers(key) {
			n, err := admin.Exists(context.Background(), marker).Result()
			if err != nil {
				return err
			}
			if n == 1 {
				return nil
			}
		}
		return fmt.Errorf("none of %q exists", waiterMarkers(key))
	})
}

// ---------------------------------------------------------------------------
// Leases lost while held.

// eventSink returns an OnEvent callback and the channel it feeds.
func eventSink() (func(locked.Event), <-chan locked.Event) {
	ch := make(chan locked.Event, 4096)
	return func(e locked.Event) {
		select {
		case ch <- e:
		default: // a test that needs more events than this is broken
		}
	}, ch
}

// holdRenewing acquires key with ttl and auto-renewal, and waits until the
// lease has been renewed minRenewals times (so renewal demonstrably keeps
// it past its TTL). If the lease lapses first, which a stalled machine can
// cause with a short TTL, it tries again with a new lease, up to 3 times.
func holdRenewing(t testing.TB, svc *locked.Service, events <-chan locked.Event, key string, ttl time.Duration, minRenewals int) *locked.Lease {
	t.Helper()
	ctx := bounded(t, testBound)
	for attempt := 1; attempt <= 3; attempt++ {
		lease, err := svc.Acquire(ctx, key, locked.WithTTL(ttl), locked.WithAutoRenew())
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		deadline := time.NewTimer(faultBound)
		for renewed := 0; renewed < minRenewals && lease.Context().Err() == nil; {
			select {
			case e := <-events:
				if e.Type == locked.Extended && e.Token == lease.Token() {
					renewed++
				}
			case <-lease.Context().Done():
			case <-deadline.C:
				t.Fatalf("lease renewed %d times in %v, want %d", renewed, faultBound, minRenewals)
			}
		}
		deadline.Stop()
		if lease.Context().Err() == nil {
			return lease
		}
		t.Logf("attempt %d: the lease lapsed before the test acted on it (%v); renewal was late on this machine, trying again",
			attempt, context.Cause(lease.Context()))
		_ = lease.Close()
	}
	t.Fatalf("the lease lapsed despite auto-renewal in 3 attempts")
	return nil
}

// awaitEnd waits at most faultBound for the lease's context to end and
// returns its cause, which must match ErrNotHeld.
func awaitEnd(t testing.TB, lease *locked.Lease) error {
	t.Helper()
	select {
	case <-lease.Context().Done():
	case <-time.After(faultBound):
		t.Fatalf("lease context still live %v after its lock was lost", faultBound)
	}
	cause := context.Cause(lease.Context())
	wantErr(t, "context.Cause(lease.Context())", cause, locked.ErrNotHeld)
	return cause
}

func TestLeaseLost(t *testing.T) {
	t.Parallel()

	// Another Service (another process, an operator) force-releases a
	// renewing lease: the renewal's Extend finds it gone and ends it.
	t.Run("ForceRelease", func(t *testing.T) {
		t.Parallel()
		ctx := bounded(t, testBound)
		node := redistest.Server(t)
		onEvent, events := eventSink()
		svc := newService(t, newProvider(t, node.Client(t), nil), &locked.Options{OnEvent: onEvent})
		other := newService(t, newProvider(t, node.Client(t), nil), nil)
		key := uniqueKey(t, "k")

		lease := holdRenewing(t, svc, events, key, 300*time.Millisecond, 4)
		held, err := other.ForceRelease(ctx, key)
		if err != nil || !held {
			t.Fatalf("ForceRelease = %v, %v; want true, nil", held, err)
		}
		cause := awaitEnd(t, lease)
		t.Logf("cause: %v", cause)
		wantErr(t, "Check", lease.Check(ctx), locked.ErrNotHeld)
		wantErr(t, "Close", lease.Close(), locked.ErrNotHeld)
		if n := svc.Stats().Open; n != 0 {
			t.Fatalf("Held = %d, want 0", n)
		}
	})

	// With a long TTL the lease must end when renewal finds it gone, well
	// before its local expiry, not merely when that expiry passes.
	t.Run("ForceReleaseSeenByRenewal", func(t *testing.T) {
		t.Parallel()
		ctx := bounded(t, testBound)
		node := redistest.Server(t)
		onEvent, events := eventSink()
		svc := newService(t, newProvider(t, node.Client(t), nil), &locked.Options{OnEvent: onEvent})
		other := newService(t, newProvider(t, node.Client(t), nil), nil)
		key := uniqueKey(t, "k")

		const ttl = 6 * time.Second // renewed every 2s
		lease := holdRenewing(t, svc, events, key, ttl, 0)
		if held, err := other.ForceRelease(ctx, key); err != nil || !held {
			t.Fatalf("ForceRelease = %v, %v; want true, nil", held, err)
		}
		awaitEnd(t, lease)
		if ended, expires := time.Now(), lease.ExpiresAt(); !ended.Before(expires) {
			t.Fatalf("lease ended at %v, not before its local expiry %v: renewal did not notice the loss",
				ended.Format(time.StampMilli), expires.Format(time.StampMilli))
		}
		wantErr(t, "Close", lease.Close(), locked.ErrNotHeld)
	})

	// The node dies: renewals fail with ErrUnavailable and the local expiry
	// ends the lease.
	t.Run("NodeKilled", func(t *testing.T) {
		t.Parallel()
		node := redistest.Server(t)
		onEvent, events := eventSink()
		p := newProvider(t, fastClient(t, node.Addr()), nil)
		svc := newService(t, p, &locked.Options{OnEvent: onEvent})
		key := uniqueKey(t, "k")

		lease := holdRenewing(t, svc, events, key, 300*time.Millisecond, 2)
		node.Kill(t)
		awaitEnd(t, lease)
		err := lease.Close()
		if !errors.Is(err, locked.ErrUnavailable) && !errors.Is(err, locked.ErrNotHeld) {
			t.Fatalf("Close of the lapsed lease = %v, want ErrUnavailable or ErrNotHeld", err)
		}
		if n := svc.Stats().Open; n != 0 {
			t.Fatalf("Held = %d, want 0", n)
		}
		if err := svc.Close(); err != nil {
			t.Fatal(err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// ---------------------------------------------------------------------------
// Redlock with failed nodes.

// TestRedlockMinorityDown: with 2 of 5 nodes dead, mutual exclusion,
// extension, release and contended acquisition all still work; with 3 dead
// every call fails with ErrUnavailable and leaves nothing held.
func TestRedlockMinorityDown(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes, clients := fastNodes(t, 5)
	r := newRedlock(t, clients, nil)
	key := uniqueKey(t, "k")
	a, b := "A-"+uuid.NewString(), "B-"+uuid.NewString()

	ga, err := r.TryAcquire(ctx, key, a, longTTL)
	if err != nil {
		t.Fatalf("A TryAcquire: %v", err)
	}
	nodes[0].Kill(t)
	nodes[3].Kill(t)

	_, err = r.TryAcquire(ctx, key, b, longTTL)
	wantErr(t, "B TryAcquire of A's key, 2 of 5 nodes dead", err, provider.ErrNotAcquired)
	if errors.Is(err, provider.ErrUnavailable) {
		t.Fatalf("B TryAcquire = %v; 3 of 5 nodes answered, want plain ErrNotAcquired", err)
	}
	if st, err := r.State(ctx, key); err != nil || !st.Held || st.Token != a || st.Fence != ga.Fence {
		t.Fatalf("State = %+v, %v; want held by A with fence %d", st, err, ga.Fence)
	}
	if g, err := r.Extend(ctx, key, a, longTTL); err != nil || g.Fence != ga.Fence {
		t.Fatalf("A Extend = %+v, %v; want fence %d", g, err, ga.Fence)
	}
	if err := r.Release(ctx, key, a); err != nil {
		t.Fatalf("A Release: %v", err)
	}
	gb, err := r.TryAcquire(ctx, key, b, longTTL)
	if err != nil {
		t.Fatalf("B TryAcquire after A's release: %v", err)
	}
	if gb.Fence <= ga.Fence {
		t.Fatalf("B's fence %d, want > A's %d", gb.Fence, ga.Fence)
	}
	if err := r.Release(ctx, key, b); err != nil {
		t.Fatalf("B Release: %v", err)
	}

	// Contention with the two nodes still dead.
	const workers, cycles = 8, 30
	contended := uniqueKey(t, "contended")
	var (
		occupancy atomic.Int32
		mu        sync.Mutex
		lastFence uint64 // guarded by mu
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles {
				tok := fmt.Sprintf("w%d-%d", w, i)
				g, err := r.Acquire(ctx, contended, tok, 30*time.Second)
				if err != nil {
					t.Errorf("worker %d cycle %d: Acquire: %v", w, i, err)
					return
				}
				if n := occupancy.Add(1); n > 1 {
					t.Errorf("worker %d cycle %d: %d holders at once", w, i, n)
				}
				mu.Lock()
				if g.Fence <= lastFence {
					t.Errorf("worker %d cycle %d: fence %d after %d, want strictly increasing", w, i, g.Fence, lastFence)
				}
				lastFence = g.Fence
				mu.Unlock()
				runtime.Gosched()
				occupancy.Add(-1)
				if err := r.Release(ctx, contended, tok); err != nil {
					t.Errorf("worker %d cycle %d: Release: %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// A third node dies: no quorum.
	nodes[1].Kill(t)
	lost := uniqueKey(t, "no-quorum")
	_, err = r.TryAcquire(ctx, lost, a, longTTL)
	wantErr(t, "TryAcquire, 3 of 5 nodes dead", err, provider.ErrUnavailable)
	for _, i := range []int{2, 4} { // the live nodes granted it; the grant is rolled back (in the background)
		eventually(t, fmt.Sprintf("rollback on node %d", i), faultBound, func() error {
			if n, err := clients[i].Exists(ctx, lockKey(lost)).Result(); err != nil || n != 0 {
				return fmt.Errorf("node %d still has the failed acquire's hold (EXISTS = %d, %v)", i, n, err)
			}
			return nil
		})
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = r.Acquire(actx, lost, a, longTTL)
	cancel()
	wantErr(t, "Acquire, 3 of 5 nodes dead", err, provider.ErrUnavailable)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire = %v: it waited for its context; want ErrUnavailable at once", err)
	}
	_, err = r.Extend(ctx, lost, a, longTTL)
	wantErr(t, "Extend, 3 of 5 nodes dead", err, provider.ErrUnavailable)
	wantErr(t, "Release, 3 of 5 nodes dead", r.Release(ctx, lost, a), provider.ErrUnavailable)
	_, err = r.State(ctx, lost)
	wantErr(t, "State, 3 of 5 nodes dead", err, provider.ErrUnavailable)

	// The nodes come back empty: a majority lost its data, which the fault
	// model does not cover (docs/decisions.md). They cannot be re-admitted
	// (only 2 admitted nodes remember the fences), so nothing is granted:
	// ErrUnavailable, never a grant with a fence that may have been issued.
	for _, i := range []int{0, 1, 3} {
		nodes[i].Start(t)
	}
	eventually(t, "State after the restarts", faultBound, func() error {
		st, err := r.State(ctx, lost)
		if err == nil && st.Held {
			return fmt.Errorf("held: %+v", st)
		}
		return err
	})
	for range 3 {
		g, err := r.TryAcquire(ctx, lost, b, longTTL)
		wantErr(t, "TryAcquire after 3 of 5 nodes restarted empty", err, provider.ErrUnavailable)
		if g.Fence != 0 {
			t.Fatalf("TryAcquire after 3 of 5 nodes restarted empty granted fence %d", g.Fence)
		}
	}
}

// getFence returns a node's fence counter for key (0 if it has none).
func getFence(t testing.TB, c redis.UniversalClient, key string) uint64 {
	t.Helper()
	n, err := c.Get(context.Background(), fenceKey(key)).Uint64()
	if err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("GET %s: %v", fenceKey(key), err)
	}
	return n
}

// TestRedlockFenceAcrossMajorities: the fence is the highest of the
// granting nodes', written back to them, so a later majority that lacks the
// node with the highest counter still issues a higher fence.
func TestRedlockFenceAcrossMajorities(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes, clients := fastNodes(t, 3)
	r := newRedlock(t, clients, nil)
	key := uniqueKey(t, "k")

	// A short TTL: a restarted node waits it out (plus drift) before it
	// votes again.
	const ttl = 300 * time.Millisecond
	hold := func(what string) uint64 {
		t.Helper()
		tok := "tok-" + uuid.NewString()
		var g provider.Grant
		eventually(t, what, faultBound, func() (err error) { // a restarted node's client may still be reconnecting
			g, err = r.TryAcquire(ctx, key, tok, ttl)
			return err
		})
		if err := r.Release(ctx, key, tok); err != nil {
			t.Fatalf("%s: Release: %v", what, err)
		}
		return g.Fence
	}

	for _, c := range clients[:2] { // a quorum recorded fence 1000
		if err := c.Set(ctx, fenceKey(key), 1000, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	f1 := hold("all nodes, nodes 0 and 1 ahead")
	if f1 <= 1000 {
		t.Fatalf("fence %d, want > 1000 (the fence a quorum records)", f1)
	}
	recorded := 0 // written back to a quorum before the grant returned
	for _, c := range clients {
		if getFence(t, c, key) >= f1 {
			recorded++
		}
	}
	if recorded < 2 {
		t.Fatalf("%d nodes record fence %d after the grant, want a quorum (written back)", recorded, f1)
	}

	nodes[0].Kill(t)
	f2 := hold("nodes 1 and 2")
	if f2 <= f1 {
		t.Fatalf("fence %d from nodes 1 and 2, want > %d: the fence went backwards", f2, f1)
	}

	nodes[0].Start(t) // without persistence its counter is gone
	eventually(t, "node 0 back", faultBound, func() error { return clients[0].Ping(ctx).Err() })
	f3 := hold("all nodes, node 0 restarted")
	if f3 <= f2 {
		t.Fatalf("fence %d after node 0's restart, want > %d", f3, f2)
	}
	// Node 0 is re-admitted with a floor of the highest fence that the
	// others record.
	eventually(t, "node 0 re-admitted", faultBound, func() error {
		hold("nodes 1 and 2, node 0 being re-admitted") // a call that meets node 0 starts its admission
		floor, err := clients[0].HGet(ctx, redisprovider.DefaultPrefix+"redlock:node", "floor").Uint64()
		if err == nil && floor < f2 {
			t.Fatalf("node 0 re-admitted with floor %d, want >= %d", floor, f2)
		}
		return err
	})

	nodes[1].Kill(t)
	f4 := hold("nodes 0 and 2")
	if f4 <= f3 {
		t.Fatalf("fence %d from nodes 0 and 2, want > %d", f4, f3)
	}
}

// TestRedlockHungMajority: nodes that accept connections but never answer
// (a paused process, a black-holed network) are as unavailable as dead
// ones: without a quorum of answers the result is ErrUnavailable, not
// ErrNotAcquired, which would claim that somebody holds the key.
func TestRedlockHungMajority(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	node := redistest.Server(t)
	clients := []redis.UniversalClient{
		fastClient(t, node.Addr()),
		fastClient(t, blackHole(t)),
		fastClient(t, blackHole(t)),
	}
	r := newRedlock(t, clients, &redisprovider.RedlockOptions{NodeTimeout: 300 * time.Millisecond})
	key := uniqueKey(t, "k")

	_, err := r.TryAcquire(ctx, key, "a", longTTL)
	if !errors.Is(err, provider.ErrUnavailable) {
		t.Errorf("TryAcquire with 2 of 3 nodes hung = %v, want ErrUnavailable (no quorum answered)", err)
	}
	if n, err := clients[0].Exists(ctx, lockKey(key)).Result(); err != nil || n != 0 {
		t.Errorf("the live node kept the failed acquire's hold (EXISTS = %d, %v)", n, err)
	}

	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = r.Acquire(actx, key, "a", longTTL)
	cancel()
	if !errors.Is(err, provider.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire with 2 of 3 nodes hung = %v, want ErrUnavailable at once, not a wait for the context", err)
	}

	_, err = r.State(ctx, key)
	wantErr(t, "State with 2 of 3 nodes hung", err, provider.ErrUnavailable)
	_, err = r.Extend(ctx, key, "a", longTTL)
	wantErr(t, "Extend with 2 of 3 nodes hung", err, provider.ErrUnavailable)
	wantErr(t, "Release with 2 of 3 nodes hung", r.Release(ctx, key, "a"), provider.ErrUnavailable)
}

// TestRedlockHungMinority: one hung node of three must cost at most
// NodeTimeout, so a healthy majority still grants a lock whose TTL is a
// few times NodeTimeout. That needs clients that honour context deadlines:
// with go-redis defaults (ContextTimeoutEnabled false) a hung node holds
// every call for its ReadTimeout (3s), longer than this TTL's validity, so
// NewRedlock refuses such clients.
func TestRedlockHungMinority(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	nodes := redistest.Servers(t, 2)
	hole := blackHole(t)

	plain := redis.NewClient(&redis.Options{Addr: hole})
	t.Cleanup(func() { _ = plain.Close() })
	_, err := redisprovider.NewRedlock([]redis.UniversalClient{nodes[0].Client(t), plain, nodes[1].Client(t)}, nil)
	var ae *provider.ArgError
	if !errors.As(err, &ae) || ae.Arg != "clients[1]" || !errors.Is(err, provider.ErrInvalid) {
		t.Fatalf("NewRedlock with a client that ignores context deadlines = %v; want an ArgError for clients[1]", err)
	}

	hung := fastClient(t, hole)
	clients := []redis.UniversalClient{nodes[0].Client(t), hung, nodes[1].Client(t)}
	// The node hangs after the deployment was admitted (a new deployment
	// is admitted only when every node answers): the live nodes have
	// their markers.
	for _, i := range []int{0, 2} {
		if err := clients[i].HSet(ctx, redisprovider.DefaultPrefix+"redlock:node", "floor", 0, "high", 0, "maxttl", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r := newRedlock(t, clients, nil) // NodeTimeout 500ms
	key := uniqueKey(t, "k")

	const ttl = 2500 * time.Millisecond // validity: TTL − elapsed − drift
	g, err := r.TryAcquire(ctx, key, "a", ttl)
	if err != nil {
		t.Fatalf("TryAcquire with 1 of 3 nodes hung, TTL %v, NodeTimeout %v = %v; want a grant from the healthy majority",
			ttl, redisprovider.DefaultNodeTimeout, err)
	}
	if err := r.Release(ctx, key, "a"); err != nil {
		t.Fatalf("Release: %v (fence %d)", err, g.Fence)
	}
}

// TestAcquireHonoursContextOnHungNode: Acquire returns soon after its
// context ends even if Redis hangs. The client honours context deadlines
// (ContextTimeoutEnabled) and has a long ReadTimeout, as clients that also
// run blocking commands do; the bound is 20 times the context's.
func TestAcquireHonoursContextOnHungNode(t *testing.T) {
	t.Parallel()
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	hung := newBlackHole(t)
	c := redis.NewClient(&redis.Options{
		Addr:                  hung.addr,
		ReadTimeout:           30 * time.Second,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	p := newProvider(t, c, nil)
	t.Cleanup(hung.close) // first: frees a blocked call (and Close, which waits for it)

	const ctxTimeout = 500 * time.Millisecond
	res := make(chan error, 1)
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), ctxTimeout)
		defer cancel()
		_, err := p.Acquire(ctx, uniqueKey(t, "k"), "tok", longTTL)
		res <- err
	}()
	select {
	case err := <-res:
		wantErr(t, "Acquire on a hung node", err, context.DeadlineExceeded)
	case <-time.After(faultBound):
		t.Errorf("Acquire with a %v context on a hung node has not returned after %v", ctxTimeout, faultBound)
	}
}

// busyScript keeps Redis busy for ARGV[1] ms: other clients' commands
// queue meanwhile (below lua-time-limit Redis does not even answer BUSY).
var busyScript = redis.NewScript(`
local function now() local t = redis.call('TIME') return t[1] * 1000 + t[2] / 1000 end
local stop = now() + tonumber(ARGV[1])
while now() < stop do end
return 1`)

// TestAcquireTimeoutLeavesNoHold: the contract says an Acquire whose
// context ends first returns ErrNotAcquired and leaves no hold behind. Here
// the context ends while the acquire script waits in Redis's queue behind a
// busy script; the script still runs afterwards, and must not leave a hold
// for a token the caller was told did not get the lock.
func TestAcquireTimeoutLeavesNoHold(t *testing.T) {
	t.Parallel()
	ctx := bounded(t, testBound)
	node := redistest.Server(t)
	admin := node.Client(t)
	ctxClient := func() *redis.Client { // honours deadlines, so the timeout ends the call
		c := redis.NewClient(&redis.Options{Addr: node.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	p := newProvider(t, ctxClient(), &redisprovider.Options{PollInterval: time.Minute})
	probe := ctxClient()
	key := uniqueKey(t, "k")

	// An Acquire of another key starts the wake-up subscription now, so the
	// one below goes straight to the acquire script.
	warm := uniqueKey(t, "warm")
	if _, err := p.Acquire(ctx, warm, "warm", longTTL); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, warm, "warm"); err != nil {
		t.Fatal(err)
	}

	busy := make(chan error, 1)
	go func() { busy <- busyScript.Run(ctx, admin, nil, 2000).Err() }()
	eventually(t, "Redis busy", faultBound, func() error {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if err := probe.Ping(pctx).Err(); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("PING = %v, not stuck", err)
		}
		return nil
	})

	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := p.Acquire(actx, key, "late", longTTL)
	cancel()
	if err := <-busy; err != nil {
		t.Fatalf("busy script: %v", err)
	}
	if err == nil {
		t.Skip("Acquire got the lock before its context ended: Redis was not busy after all")
	}
	// The request was in Redis's buffer: its outcome is unknown, not a
	// refusal.
	wantErr(t, "Acquire whose context ended in Redis's queue", err, provider.ErrOutcomeUnknown)
	wantErr(t, "Acquire whose context ended in Redis's queue", err, context.DeadlineExceeded)
	if errors.Is(err, provider.ErrNotAcquired) {
		t.Fatalf("Acquire whose request was in flight = %v: want no ErrNotAcquired, the store never refused", err)
	}

	// The late acquire ran in Redis after its caller had given up; the
	// give-up (retried once Redis answers again) must undo it long before
	// the hold's one-minute TTL would.
	eventually(t, "late hold undone", faultBound, func() error {
		st, err := p.State(ctx, key)
		if err != nil {
			return err
		}
		if st.Held && st.Token == "late" {
			return fmt.Errorf("its token still holds the key (fence %d, TTL %v)", st.Fence, st.TTL.Round(time.Second))
		}
		return nil
	})
}

// ---------------------------------------------------------------------------
// Close while waiting.

// TestCloseEndsBlockedAcquire: Close ends waiting Acquire calls with
// ErrClosed (provider.Provider's contract), so a waiter blocked during
// Close must not take the lock when the holder's TTL later runs out.
func TestCloseEndsBlockedAcquire(t *testing.T) {
	t.Parallel()
	t.Run("Provider", func(t *testing.T) {
		t.Parallel()
		node := redistest.Server(t)
		admin := node.Client(t)
		p := newProvider(t, node.Client(t), &redisprovider.Options{PollInterval: 100 * time.Millisecond})
		holder := newProvider(t, admin, nil)
		closeDuringWait(t, p, holder, admin)
	})
	t.Run("Redlock", func(t *testing.T) {
		t.Parallel()
		nodes := redistest.Servers(t, 3)
		mine, theirs := make([]redis.UniversalClient, 3), make([]redis.UniversalClient, 3)
		for i, n := range nodes {
			mine[i], theirs[i] = n.Client(t), n.Client(t)
		}
		opts := &redisprovider.RedlockOptions{Options: redisprovider.Options{PollInterval: 100 * time.Millisecond}}
		closeDuringWait(t, newRedlock(t, mine, opts), newRedlock(t, theirs, nil), theirs[0])
	})
}

func closeDuringWait(t *testing.T, p, holder provider.Provider, admin redis.UniversalClient) {
	t.Helper()
	ctx := bounded(t, testBound)
	key := uniqueKey(t, "k")
	if _, err := holder.TryAcquire(ctx, key, "holder", time.Second); err != nil { // lapses during the wait
		t.Fatalf("holder TryAcquire: %v", err)
	}
	type result struct {
		g   provider.Grant
		err error
	}
	res := make(chan result, 1)
	go func() {
		actx, cancel := context.WithTimeout(ctx, 3*faultBound)
		defer cancel()
		g, err := p.Acquire(actx, key, "waiter", longTTL)
		res <- result{g, err}
	}()
	waitForWaiter(t, admin, key)
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r := <-res
	if r.err == nil {
		t.Fatalf("Acquire blocked during Close took the lock (fence %d) once the holder's TTL ran out; want ErrClosed", r.g.Fence)
	}
	wantErr(t, "Acquire blocked during Close", r.err, provider.ErrClosed)
}

// ---------------------------------------------------------------------------
// Cluster.

// TestClusterBraceKeys: a key's lock hash, fence counter and waiting flag
// share one hash slot (no CROSSSLOT) whatever braces the key contains.
func TestClusterBraceKeys(t *testing.T) {
	t.Parallel()
	cluster := redistest.Cluster(t, 3)
	c := cluster.Client(t)
	p := newProvider(t, c, &redisprovider.Options{PollInterval: time.Minute})
	other := newProvider(t, c, nil)
	for _, tc := range []struct{ name, key string }{
		{"HashTag", "user:{42}"},
		{"OpenBrace", "user:{42"},
		{"CloseBrace", "user:42}"},
		{"EmptyHashTag", "user:{}"},
		{"Reversed", "a}b{c"},
		{"LeadingOpenBrace", "{user:42}"},
		{"LeadingCloseBrace", "}user:42"}, // "<prefix>{}user:42}": an empty hash tag
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key + "/" + uuid.NewString()
			lifecycle(t, p, key)
			wantWoken(t, p, other, c, key)
		})
	}
}
