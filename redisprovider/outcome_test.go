package redisprovider_test

// Outcome tests: every call under every fault of internal/faultproxy
// between go-redis and a real redis-server, checking that the class of the
// answer (success, refusal, ErrUnavailable, ErrOutcomeUnknown) is true, by
// reading the store afterwards with a client that bypasses the proxy.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/faultproxy"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// faultCtx is the deadline of a call that a fault makes wait for it.
const faultCtx = 300 * time.Millisecond

// proxied is a redis-server behind a fault proxy, a retrying client
// through the proxy and an admin client that bypasses it.
type proxied struct {
	node  *redistest.Node
	proxy *faultproxy.Proxy
	c     *redis.Client // through the proxy; re-sends after a lost reply
	admin redis.UniversalClient
}

func newProxied(t *testing.T) *proxied {
	t.Helper()
	node := redistest.Server(t)
	px, c := redistest.Proxied(t, node, func(o *redis.Options) { o.DialTimeout = time.Second })
	return &proxied{node: node, proxy: px, c: c, admin: node.Client(t)}
}

// state reads key's hold with p's scripts over the admin client.
func adminState(t testing.TB, admin redis.UniversalClient, key string) provider.State {
	t.Helper()
	p, err := redisprovider.New(admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, err := p.State(context.Background(), key)
	if err != nil {
		t.Fatalf("State over the admin client: %v", err)
	}
	return st
}

// call is one provider call under test: prepare sets the store up (with
// the admin provider), do makes the call, applied reads whether its effect
// is in the store.
type call struct {
	name    string
	prepare func(t *testing.T, admin *redisprovider.Provider, key, tok string)
	do      func(ctx context.Context, p *redisprovider.Provider, key, tok string) error
	applied func(t *testing.T, st provider.State, tok string) bool
}

var calls = []call{
	{
		name:    "TryAcquire",
		prepare: func(*testing.T, *redisprovider.Provider, string, string) {},
		do: func(ctx context.Context, p *redisprovider.Provider, key, tok string) error {
			_, err := p.TryAcquire(ctx, key, tok, longTTL)
			return err
		},
		applied: func(_ *testing.T, st provider.State, tok string) bool { return st.Held && st.Token == tok },
	},
	{
		name:    "Release",
		prepare: hold,
		do: func(ctx context.Context, p *redisprovider.Provider, key, tok string) error {
			return p.Release(ctx, key, tok)
		},
		applied: func(_ *testing.T, st provider.State, _ string) bool { return !st.Held },
	},
	{
		name:    "ForceRelease",
		prepare: hold,
		do: func(ctx context.Context, p *redisprovider.Provider, key, _ string) error {
			held, err := p.ForceRelease(ctx, key)
			if err == nil && !held {
				return errors.New("ForceRelease of a held key reported false")
			}
			return err
		},
		applied: func(_ *testing.T, st provider.State, _ string) bool { return !st.Held },
	},
	{
		name:    "Extend",
		prepare: hold,
		do: func(ctx context.Context, p *redisprovider.Provider, key, tok string) error {
			_, err := p.Extend(ctx, key, tok, 10*longTTL)
			return err
		},
		applied: func(_ *testing.T, st provider.State, _ string) bool { return st.TTL > longTTL },
	},
	{
		name:    "State",
		prepare: hold,
		do: func(ctx context.Context, p *redisprovider.Provider, key, tok string) error {
			st, err := p.State(ctx, key)
			if err == nil && (!st.Held || st.Token != tok) {
				return fmt.Errorf("State = %+v, want held by %s", st, tok)
			}
			return err
		},
		applied: func(*testing.T, provider.State, string) bool { return false }, // reads only
	},
}

func hold(t *testing.T, admin *redisprovider.Provider, key, tok string) {
	t.Helper()
	if _, err := admin.TryAcquire(context.Background(), key, tok, longTTL); err != nil {
		t.Fatalf("prepare: TryAcquire: %v", err)
	}
}

// outcome is what a fault must produce.
type outcome int

const (
	wantSuccess outcome = iota // the call succeeds, and its effect is in the store
	wantUnknown                // ErrOutcomeUnknown with ctx.Err()
)

type fault struct {
	name string
	rule func(key string) []faultproxy.Rule
	want outcome
	// afterwards is whether the effect is in the store once the fault is
	// over: 1 applied, 0 not applied, -1 either. TryAcquire's give-up
	// undoes a lost acquire, so its effect is never left behind.
	afterwards int
}

var faults = []fault{
	{"ReplyLostThenResent", func(key string) []faultproxy.Rule {
		return []faultproxy.Rule{{Dir: faultproxy.Downstream, Fault: faultproxy.Reset, Match: []byte(key), Times: 1}}
	}, wantSuccess, 1},
	{"ReplyDropped", func(key string) []faultproxy.Rule {
		return []faultproxy.Rule{{Dir: faultproxy.Downstream, Fault: faultproxy.Drop, Match: []byte(key), Times: 1}}
	}, wantUnknown, 1},
	{"RequestDropped", func(key string) []faultproxy.Rule {
		return []faultproxy.Rule{{Dir: faultproxy.Upstream, Fault: faultproxy.Drop, Match: []byte(key), Times: 1}}
	}, wantUnknown, 0},
	{"RequestDelayedPastDeadline", func(key string) []faultproxy.Rule {
		return []faultproxy.Rule{{Dir: faultproxy.Upstream, Fault: faultproxy.Delay, Delay: 3 * faultCtx, Match: []byte(key), Times: 1}}
	}, wantUnknown, 1},
	{"BlackHole", func(string) []faultproxy.Rule {
		return []faultproxy.Rule{{Dir: faultproxy.Upstream, Fault: faultproxy.Drop}, {Dir: faultproxy.Downstream, Fault: faultproxy.Drop}}
	}, wantUnknown, -1},
}

// TestOutcomes is the table of every call × every fault. For each it
// checks the class of the answer, that the fault fired, that the effect is
// in the store exactly when the class says it may be, and (for TryAcquire)
// that the background give-up undid a lost acquire. It logs how far past
// its deadline each failed call returned.
func TestOutcomes(t *testing.T) {
	t.Parallel()
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			px := newProxied(t)
			p := newProvider(t, px.c, &redisprovider.Options{PollInterval: 100 * time.Millisecond})
			admin := newProvider(t, px.admin, nil)
			lifecycle(t, p, uniqueKey(t, "warm")) // scripts cached: a fault hits an execution, not NOSCRIPT
			for _, c := range calls {
				t.Run(c.name, func(t *testing.T) {
					key, tok := uniqueKey(t, "k"), "tok-"+uuid.NewString()
					c.prepare(t, admin, key, tok)
					// A pooled connection, so the call's request leaves at
					// once rather than after a dial on a busy machine.
					if err := px.c.Ping(bounded(t, faultBound)).Err(); err != nil {
						t.Fatal(err)
					}
					runs := redistest.ScriptCalls(t, px.admin)
					fired := px.proxy.Fired()
					for _, r := range f.rule(key) {
						px.proxy.Set(r)
					}
					ctx, cancel := context.WithTimeout(context.Background(), faultBound)
					if f.want == wantUnknown {
						cancel()
						ctx, cancel = context.WithTimeout(context.Background(), faultCtx)
					}
					start := time.Now()
					err := c.do(ctx, p, key, tok)
					elapsed := time.Since(start)
					cancel()
					px.proxy.Clear()
					if px.proxy.Fired() == fired {
						t.Fatalf("the fault did not fire (err %v)", err)
					}
					switch f.want {
					case wantSuccess:
						if err != nil {
							t.Fatalf("%s after a lost reply that go-redis re-sent = %v, want success (the request is idempotent)", c.name, err)
						}
						if n := redistest.ScriptCalls(t, px.admin) - runs; n != 2 {
							t.Fatalf("the script ran %d times, want 2 (the first run and the re-sent one)", n)
						}
					case wantUnknown:
						wantErr(t, c.name, err, provider.ErrOutcomeUnknown)
						wantErr(t, c.name, err, context.DeadlineExceeded)
						if errors.Is(err, provider.ErrNotAcquired) || errors.Is(err, provider.ErrNotHeld) {
							t.Fatalf("%s = %v: a definite answer for a request whose outcome is unknown", c.name, err)
						}
						// A sanity bound, not a latency assertion: the old
						// code added a synchronous 1s clean-up step.
						if over := elapsed - faultCtx; over > 2*time.Second {
							t.Fatalf("%s returned %v after its %v deadline", c.name, over, faultCtx)
						}
						t.Logf("returned %v after the deadline", (elapsed - faultCtx).Round(100*time.Microsecond))
					}
					if c.name == "State" {
						return
					}
					want := f.afterwards
					if c.name == "TryAcquire" && f.want == wantUnknown {
						want = 0 // undone by the give-up
					}
					eventually(t, "store agrees with the answer", faultBound, func() error {
						got := c.applied(t, adminState(t, px.admin, key), tok)
						switch {
						case want == 1 && !got:
							return errors.New("the effect is not in the store")
						case want == 0 && got:
							return errors.New("the effect is in the store")
						}
						return nil
					})
				})
			}
		})
	}
}

// TestUnreachable: a wrong port or a dead host fails every call at once
// with ErrUnavailable, never ErrOutcomeUnknown or ErrNotAcquired, with the
// dial error in the chain (item 3 of issue 8).
func TestUnreachable(t *testing.T) {
	t.Parallel()
	c := fastClient(t, freeAddr(t))
	p := newProvider(t, c, nil)
	key, tok := uniqueKey(t, "k"), "tok"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	check := func(name string, err error) {
		t.Helper()
		wantErr(t, name, err, provider.ErrUnavailable)
		if errors.Is(err, provider.ErrOutcomeUnknown) || errors.Is(err, provider.ErrNotAcquired) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s = %v: want ErrUnavailable only (nothing was sent)", name, err)
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Fatalf("%s = %v: want the dial error in the chain", name, err)
		}
	}
	_, err := p.Acquire(ctx, key, tok, longTTL)
	check("Acquire", err)
	_, err = p.TryAcquire(ctx, key, tok, longTTL)
	check("TryAcquire", err)
	check("Release", p.Release(ctx, key, tok))
	_, err = p.Extend(ctx, key, tok, longTTL)
	check("Extend", err)
	_, err = p.State(ctx, key)
	check("State", err)
	_, err = p.ForceRelease(ctx, key)
	check("ForceRelease", err)
}

// TestUnreachableDefaultDialer: with go-redis's default dial retries,
// which outlast the deadline, go-redis drops the dial error and returns
// the context's, and cannot say whether an earlier attempt was written.
// The answer must still say "store" (ErrUnavailable, here as
// ErrOutcomeUnknown) with the deadline, never contention.
func TestUnreachableDefaultDialer(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: freeAddr(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { waitRedialers(t) }) // after Close: go-redis's redialer notices it late
	t.Cleanup(func() { _ = c.Close() })
	p := newProvider(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), faultCtx)
	defer cancel()
	_, err := p.Acquire(ctx, uniqueKey(t, "k"), "tok", longTTL)
	wantErr(t, "Acquire", err, provider.ErrUnavailable)
	wantErr(t, "Acquire", err, context.DeadlineExceeded)
	if errors.Is(err, provider.ErrNotAcquired) {
		t.Fatalf("Acquire on an unreachable Redis = %v: contention claimed for a store failure", err)
	}
}

// TestAcquireHungRedisCleansUp: an Acquire on a black-holed Redis returns
// at its deadline with ErrOutcomeUnknown and ctx.Err(); the give-up of its
// lost try runs in the background and, once Redis answers again, leaves no
// hold (items 2 and 4).
func TestAcquireHungRedisCleansUp(t *testing.T) {
	t.Parallel()
	px := newProxied(t)
	p := newProvider(t, px.c, &redisprovider.Options{PollInterval: 100 * time.Millisecond})
	lifecycle(t, p, uniqueKey(t, "warm"))
	key := uniqueKey(t, "k")
	// A first Acquire subscribes for wake-ups while Redis answers.
	warm := uniqueKey(t, "warm-acquire")
	if _, err := p.Acquire(bounded(t, faultBound), warm, "warm", longTTL); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(bounded(t, faultBound), warm, "warm"); err != nil {
		t.Fatal(err)
	}
	// The acquire request reaches Redis (and takes the key); every reply
	// is lost, and so are the give-ups (the only EVALs) until Clear.
	if err := px.c.Ping(bounded(t, faultBound)).Err(); err != nil { // a pooled connection
		t.Fatal(err)
	}
	px.proxy.Set(faultproxy.Rule{Dir: faultproxy.Upstream, Fault: faultproxy.Drop, Match: []byte("$4\r\neval\r\n")})
	px.proxy.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Drop})
	ctx, cancel := context.WithTimeout(context.Background(), faultCtx)
	defer cancel()
	start := time.Now()
	_, err := p.Acquire(ctx, key, "lost", longTTL)
	elapsed := time.Since(start)
	wantErr(t, "Acquire on a hung Redis", err, provider.ErrOutcomeUnknown)
	wantErr(t, "Acquire on a hung Redis", err, context.DeadlineExceeded)
	if over := elapsed - faultCtx; over > 2*time.Second { // sanity bound, see TestOutcomes
		t.Fatalf("Acquire returned %v after its deadline", over)
	}
	t.Logf("Acquire on a hung Redis returned %v after its %v deadline", (elapsed - faultCtx).Round(100*time.Microsecond), faultCtx)
	if st := adminState(t, px.admin, key); !st.Held || st.Token != "lost" {
		t.Fatalf("State while hung = %+v: the lost try did not reach Redis, the test proves nothing", st)
	}
	px.proxy.Clear()
	eventually(t, "the background give-up freed the lost hold", faultBound, func() error {
		if st := adminState(t, px.admin, key); st.Held {
			return fmt.Errorf("still held: %+v", st)
		}
		return nil
	})
}

// TestFencesExact: fences are exact at 10^14 (where Lua's number
// formatting wrote "1e+14") and beyond 2^53 (where doubles repeat), on
// TryAcquire, State, Extend and the lock value (item 11).
func TestFencesExact(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	p := newProvider(t, c, nil)
	ctx := bounded(t, testBound)
	for _, start := range []uint64{1e14 - 1, 1<<53 - 2, 9007199254740993, math.MaxInt64 - 3} {
		t.Run(strconv.FormatUint(start, 10), func(t *testing.T) {
			key := uniqueKey(t, "k")
			if err := c.Set(ctx, fenceKey(key), start, 0).Err(); err != nil {
				t.Fatal(err)
			}
			for i := uint64(1); i <= 3; i++ {
				tok := fmt.Sprint("tok-", i)
				g, err := p.TryAcquire(ctx, key, tok, longTTL)
				if err != nil {
					t.Fatalf("TryAcquire %d: %v", i, err)
				}
				if want := start + i; g.Fence != want {
					t.Fatalf("fence %d, want %d", g.Fence, want)
				}
				if st, err := p.State(ctx, key); err != nil || st.Fence != g.Fence || st.Token != tok {
					t.Fatalf("State = %+v, %v; want fence %d", st, err, g.Fence)
				}
				if ge, err := p.Extend(ctx, key, tok, longTTL); err != nil || ge.Fence != g.Fence {
					t.Fatalf("Extend = %+v, %v; want fence %d", ge, err, g.Fence)
				}
				v, err := c.Get(ctx, lockKey(key)).Result()
				if err != nil || !strings.HasPrefix(v, strconv.FormatUint(g.Fence, 10)+" ") {
					t.Fatalf("lock value %q, %v; want it to start with the fence %d", v, err, g.Fence)
				}
				if err := p.Release(ctx, key, tok); err != nil {
					t.Fatalf("Release: %v", err)
				}
			}
		})
	}
}

// foreignValue is a value at a lock key that lockproof did not write: set
// writes it, get reads it back to check it was left as it is.
type foreignValue struct {
	name string
	set  func(key string) error
	get  func(key string) (string, error)
}

// foreignValues are the foreign values the single-node and the Redlock
// tests put at a lock key: a hand-set string, an old or other library's
// format, a fence with a leading zero, another type.
func foreignValues(ctx context.Context, c redis.UniversalClient) []foreignValue {
	str := func(name, v string) foreignValue {
		return foreignValue{name,
			func(k string) error { return c.Set(ctx, k, v, 0).Err() },
			func(k string) (string, error) { return c.Get(ctx, k).Result() }}
	}
	return []foreignValue{
		str("String", "ABCD"),
		str("OldFormat", "7 tok"),
		str("RedsyncValue", "Zm9vYmFy"),
		str("LeadingZero", "07 rl tok"),
		{"Hash", func(k string) error { return c.HSet(ctx, k, "f", "v").Err() }, func(k string) (string, error) { return c.HGet(ctx, k, "f").Result() }},
	}
}

// TestForeignValues: a lock key holding a value lockproof did not write
// (a hand-set string, an old or other library's format, another type)
// gives definite answers and is left as it is (item 10).
func TestForeignValues(t *testing.T) {
	t.Parallel()
	c := redistest.Server(t).Client(t)
	p := newProvider(t, c, nil)
	ctx := bounded(t, testBound)
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
			wantErr(t, "Release", p.Release(ctx, key, "tok"), provider.ErrNotHeld)
			_, err = p.Extend(ctx, key, "tok", longTTL)
			wantErr(t, "Extend", err, provider.ErrNotHeld)
			_, err = p.State(ctx, key)
			wantErr(t, "State", err, provider.ErrNotHeld)
			_, err = p.TryAcquire(ctx, key, "tok", longTTL)
			wantErr(t, "TryAcquire", err, provider.ErrNotAcquired)
			if held, err := p.ForceRelease(ctx, key); err != nil || held {
				t.Fatalf("ForceRelease = %v, %v; want false, nil (not a lockproof hold)", held, err)
			}
			for _, e := range []error{err} {
				if errors.Is(e, provider.ErrUnavailable) {
					t.Fatalf("an answer was ErrUnavailable: %v", e)
				}
			}
			after, err := tc.get(lock)
			if err != nil || after != before {
				t.Fatalf("value after the calls = %q, %v; want %q untouched", after, err, before)
			}
		})
	}
}

// TestNewRefusesClients: a client without ContextTimeoutEnabled and a
// typed-nil client are refused with an ArgError naming what to set
// (item 7).
func TestNewRefusesClients(t *testing.T) {
	t.Parallel()
	plain := redis.NewClient(&redis.Options{Addr: freeAddr(t)})
	t.Cleanup(func() { _ = plain.Close() })
	plainCluster := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{freeAddr(t)}})
	t.Cleanup(func() { _ = plainCluster.Close() })
	for _, tc := range []struct {
		name   string
		c      redis.UniversalClient
		reason string
	}{
		{"WithoutContextTimeout", plain, "ContextTimeoutEnabled"},
		{"ClusterWithoutContextTimeout", plainCluster, "ContextTimeoutEnabled"},
		{"TypedNil", (*redis.Client)(nil), "nil"},
		{"Nil", nil, "nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := redisprovider.New(tc.c, nil)
			var ae *provider.ArgError
			if !errors.As(err, &ae) || ae.Arg != "client" || !strings.Contains(ae.Reason, tc.reason) || !errors.Is(err, provider.ErrInvalid) {
				if p != nil {
					_ = p.Close()
				}
				t.Fatalf("New = %v; want an ArgError for client that mentions %q", err, tc.reason)
			}
		})
	}
}
