package redisprovider_test

// Why a call that ends while go-redis redials stays ErrOutcomeUnknown
// (docs/decisions.md, entry 44; the package doc's "What an error means").

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/faultproxy"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
)

// dialRecorder is a redis.Hook that records the dial errors of a client,
// as a classification by "this client's last dial failed" would.
type dialRecorder struct {
	mu     sync.Mutex
	failed []time.Time // guarded by mu
}

func (d *dialRecorder) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			d.mu.Lock()
			d.failed = append(d.failed, time.Now())
			d.mu.Unlock()
		}
		return conn, err
	}
}

func (d *dialRecorder) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (d *dialRecorder) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// failedSince reports whether a dial failed at or after t.
func (d *dialRecorder) failedSince(t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.failed {
		if !f.Before(t) {
			return true
		}
	}
	return false
}

// TestUnreachableAfterLostReply is the counterexample that keeps a call
// cut short during go-redis's redial loop ErrOutcomeUnknown: a Release
// runs in Redis and frees the key, its reply is lost with the connection,
// go-redis re-sends (default MaxRetries), its dials fail (the path to
// Redis is gone) until ctx ends, and go-redis returns ctx's bare error,
// exactly as for a call that never reached Redis (TestUnreachableDefaultDialer).
// The client's dials failed during the call, so "the last dial failed,
// so nothing was sent" (a DialHook or a wrapped Options.Dialer) would
// report ErrUnavailable, nothing changed, for a release that applied.
func TestUnreachableAfterLostReply(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
	}{
		{"CutShortWhileRedialling", faultCtx},
		{"RedialsExhausted", faultBound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lostReplyThenUnreachable(t, tc.timeout)
		})
	}
}

func lostReplyThenUnreachable(t *testing.T, timeout time.Duration) {
	node := redistest.Server(t)
	admin := node.Client(t)
	px, err := faultproxy.New(node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	// go-redis's defaults for retries and dials (MaxRetries 3, DialerRetries
	// 5 with 100ms between them), ContextTimeoutEnabled as New requires.
	c := redis.NewClient(&redis.Options{Addr: px.Addr(), ContextTimeoutEnabled: true})
	rec := &dialRecorder{}
	c.AddHook(rec)
	t.Cleanup(func() { waitRedialers(t) }) // after Close: go-redis's redialer notices it late
	t.Cleanup(func() { _ = c.Close() })
	p := newProvider(t, c, nil)
	lifecycle(t, p, uniqueKey(t, "warm")) // scripts cached: the request is the script's execution
	key, tok := uniqueKey(t, "k"), "tok-"+uuid.NewString()
	if _, err := p.TryAcquire(bounded(t, faultBound), key, tok, longTTL); err != nil {
		t.Fatal(err)
	}

	// The release runs; before its reply comes back, the proxy goes away
	// (every connection closed, nothing listening): go-redis reads EOF and
	// redials an address that refuses.
	ran := make(chan struct{}, 1)
	px.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Drop, Match: []byte(key), Times: 1,
		OnFire: func() { ran <- struct{}{} }})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.Release(ctx, key, tok) }()
	select {
	case <-ran:
	case err := <-done:
		t.Fatalf("Release returned %v before it ran", err)
	}
	_ = px.Close()
	err = <-done

	if st := adminState(t, admin, key); st.Held {
		t.Fatalf("the key is still held (%+v): the release did not run, the test proves nothing", st)
	}
	if !rec.failedSince(start) {
		t.Fatalf("no dial failed during the call (err %v): the test proves nothing", err)
	}
	wantErr(t, "Release that applied, then lost its reply and redialled in vain", err, provider.ErrOutcomeUnknown)
	t.Logf("Release = %v; it applied, and a dial failed during it", err)
}

// TestUnreachableNoResend: with a client that never re-sends (MaxRetries
// -1) and go-redis's default dialer, whose retries outlast the deadline,
// a call on a closed port or an unresolvable host name reports
// ErrUnavailable with the deadline (go-redis returns ctx's bare error
// while it still dials; nothing was written), never ErrOutcomeUnknown or
// ErrNotAcquired.
func TestUnreachableNoResend(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, addr string }{
		{"ClosedPort", freeAddr(t)},
		{"DNSTypo", "no-such-host.invalid:6379"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := redis.NewClient(&redis.Options{Addr: tc.addr, ContextTimeoutEnabled: true, MaxRetries: -1})
			t.Cleanup(func() { waitRedialers(t) })
			t.Cleanup(func() { _ = c.Close() })
			p := newProvider(t, c, nil)
			key := uniqueKey(t, "k")
			for _, call := range []struct {
				name string
				do   func(ctx context.Context) error
			}{
				{"Acquire", func(ctx context.Context) error { _, err := p.Acquire(ctx, key, "tok", longTTL); return err }},
				{"TryAcquire", func(ctx context.Context) error { _, err := p.TryAcquire(ctx, key, "tok", longTTL); return err }},
				{"Release", func(ctx context.Context) error { return p.Release(ctx, key, "tok") }},
				{"State", func(ctx context.Context) error { _, err := p.State(ctx, key); return err }},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), faultCtx)
				err := call.do(ctx)
				cancel()
				wantErr(t, call.name, err, provider.ErrUnavailable)
				wantErr(t, call.name, err, context.DeadlineExceeded)
				if errors.Is(err, provider.ErrOutcomeUnknown) || errors.Is(err, provider.ErrNotAcquired) {
					t.Fatalf("%s on an unreachable Redis = %v: want ErrUnavailable only (nothing was sent)", call.name, err)
				}
			}
		})
	}
}

// TestNoResendInFlightStaysUnknown: the other side of TestUnreachableNoResend.
// A request of a client that never re-sends that ran in Redis and whose
// reply never came is cut short by its deadline on the socket: an unknown
// outcome, never ErrUnavailable alone. It would fail if go-redis returned
// ctx's bare error after writing a request.
func TestNoResendInFlightStaysUnknown(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t)
	admin := node.Client(t)
	px, err := faultproxy.New(node.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	c := redis.NewClient(&redis.Options{Addr: px.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	p := newProvider(t, c, nil)
	lifecycle(t, p, uniqueKey(t, "warm")) // scripts cached, a pooled connection
	key, tok := uniqueKey(t, "k"), "tok-"+uuid.NewString()
	if _, err := p.TryAcquire(bounded(t, faultBound), key, tok, longTTL); err != nil {
		t.Fatal(err)
	}
	px.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Drop, Match: []byte(key), Times: 1})
	ctx, cancel := context.WithTimeout(context.Background(), faultCtx)
	defer cancel()
	err = p.Release(ctx, key, tok)
	wantErr(t, "Release whose reply was lost", err, provider.ErrOutcomeUnknown)
	wantErr(t, "Release whose reply was lost", err, context.DeadlineExceeded)
	if st := adminState(t, admin, key); st.Held {
		t.Fatalf("the key is still held (%+v): the release did not run, the test proves nothing", st)
	}
}
