package pgprovider_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/pgprovider"
)

// proxy forwards TCP connections to a server until Drop closes them all.
type proxy struct {
	l      net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex // guards conns
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &proxy{l: l, target: target}
	px.wg.Add(1)
	go func() {
		defer px.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			px.mu.Lock()
			px.conns = append(px.conns, c, s)
			px.mu.Unlock()
			px.wg.Add(2)
			go func() { defer px.wg.Done(); io.Copy(s, c); s.Close() }()
			go func() { defer px.wg.Done(); io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		px.Drop()
		px.wg.Wait()
	})
	return px
}

func (px *proxy) DSN() string {
	return "postgres://postgres@" + px.l.Addr().String() + "/postgres?sslmode=disable"
}

// Drop resets every forwarded connection, as a network failure would.
func (px *proxy) Drop() {
	px.mu.Lock()
	defer px.mu.Unlock()
	for _, c := range px.conns {
		c.Close()
	}
	px.conns = nil
}

// TestDroppedConnection: a connection that drops while Release, Extend or
// ForceRelease runs is ErrOutcomeUnknown (the statement then completes on
// the server), and a dropped acquire is undone: a definite ErrNotAcquired
// whose hold is gone, never a false answer.
func TestDroppedConnection(t *testing.T) {
	srv := pgtest.Shared(t)
	direct := newPool(t, srv.DSN())
	pd := newProvider(t, direct, nil)
	px := newProxy(t, srv.Addr())
	viaProxy := newPool(t, px.DSN())
	pp := newProvider(t, viaProxy, &pgprovider.Options{PollInterval: 100 * time.Millisecond})

	calls := []struct {
		name    string
		call    func(ctx context.Context, key, token string) error
		applied func(s provider.State, token string) bool
	}{
		{"Release", func(ctx context.Context, key, token string) error { return pp.Release(ctx, key, token) },
			func(s provider.State, token string) bool { return !s.Held }},
		{"Extend", func(ctx context.Context, key, token string) error {
			_, err := pp.Extend(ctx, key, token, time.Hour)
			return err
		}, func(s provider.State, token string) bool { return s.TTL > time.Minute }},
		{"ForceRelease", func(ctx context.Context, key, token string) error {
			_, err := pp.ForceRelease(ctx, key)
			return err
		}, func(s provider.State, token string) bool { return !s.Held }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			key, token := "fault:"+uuid.NewString(), uuid.NewString()
			if _, err := pd.TryAcquire(ctx, key, token, time.Minute); err != nil {
				t.Fatal(err)
			}
			// Block the call on the row, so that it is in flight when the
			// connection drops.
			tx, err := direct.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(context.Background())
			if _, err := tx.Exec(ctx, `SELECT 1 FROM "lockproof_locks" WHERE key = $1 FOR UPDATE`, key); err != nil {
				t.Fatal(err)
			}
			blocker := backendPID(t, tx)
			res := make(chan error, 1)
			go func() { res <- c.call(ctx, key, token) }()
			for {
				var n int
				if err := direct.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, blocker).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n > 0 {
					break
				}
				select {
				case err := <-res:
					t.Fatalf("%s returned %v before it blocked on the row", c.name, err)
				case <-time.After(5 * time.Millisecond): // re-read pg_stat_activity
				}
			}
			px.Drop()
			err = <-res
			if !errors.Is(err, provider.ErrOutcomeUnknown) {
				t.Fatalf("%s with its connection dropped mid-call = %v, want ErrOutcomeUnknown", c.name, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			// The statement was applied after all (or not): both are legal
			// after an unknown outcome; log which.
			s, err := pd.State(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: applied on the server after the drop: %v", c.name, c.applied(s, token))
		})
	}

	t.Run("TryAcquire", func(t *testing.T) {
		ctx := t.Context()
		key, holder, token := "fault:"+uuid.NewString(), uuid.NewString(), uuid.NewString()
		if _, err := pd.TryAcquire(ctx, key, holder, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Make the hold lapse while its row is locked, so the blocked
		// acquire will take it once the lock goes.
		tx, err := direct.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(context.Background())
		if _, err := tx.Exec(ctx, `UPDATE "lockproof_locks" SET expires_at = clock_timestamp() WHERE key = $1`, key); err != nil {
			t.Fatal(err)
		}
		blocker := backendPID(t, tx)
		res := make(chan error, 1)
		go func() { _, err := pp.TryAcquire(ctx, key, token, time.Minute); res <- err }()
		for {
			var n int
			if err := direct.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, blocker).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			time.Sleep(5 * time.Millisecond) // re-read pg_stat_activity
		}
		px.Drop()
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		err = <-res
		s, serr := pd.State(ctx, key)
		if serr != nil {
			t.Fatal(serr)
		}
		// The give-up ended the server process of the try and freed its
		// token's hold: a definite refusal, and true.
		if !errors.Is(err, provider.ErrNotAcquired) || errors.Is(err, provider.ErrOutcomeUnknown) {
			t.Fatalf("TryAcquire with its connection dropped = %v, want a definite ErrNotAcquired after the undo", err)
		}
		if s.Held && s.Token == token {
			t.Fatalf("TryAcquire = %v, yet %s holds the key: a false definite answer", err, token)
		}
	})
}

// backendPID returns the server process of tx, whose row lock blocks the
// call under test.
func backendPID(t *testing.T, tx pgx.Tx) int32 {
	t.Helper()
	var pid int32
	if err := tx.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestUnreachable: a database that cannot be reached is ErrUnavailable for
// every call, not contention.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	pool := newPool(t, "postgres://postgres@"+addr+"/postgres?sslmode=disable&connect_timeout=2")
	p, err := pgprovider.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := t.Context()
	_, err = p.Acquire(ctx, "k", "t", time.Minute)
	wantUnavailable(t, "Acquire", err)
	_, err = p.TryAcquire(ctx, "k", "t", time.Minute)
	wantUnavailable(t, "TryAcquire", err)
	wantUnavailable(t, "Release", p.Release(ctx, "k", "t"))
	_, err = p.Extend(ctx, "k", "t", time.Minute)
	wantUnavailable(t, "Extend", err)
	_, err = p.State(ctx, "k")
	wantUnavailable(t, "State", err)
	_, err = p.ForceRelease(ctx, "k")
	wantUnavailable(t, "ForceRelease", err)
}

func wantUnavailable(t *testing.T, call string, err error) {
	t.Helper()
	if !errors.Is(err, provider.ErrUnavailable) || errors.Is(err, provider.ErrOutcomeUnknown) || errors.Is(err, provider.ErrNotAcquired) {
		t.Fatalf("%s on an unreachable database = %v, want ErrUnavailable (not outcome unknown, not contention)", call, err)
	}
}
