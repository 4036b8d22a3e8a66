package pgprovider_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/provider/pgprovider"
)

// TestWokenByNotify: with polling effectively off (an hour) and a holder's
// TTL of a minute, a waiter in another Provider (another process's view)
// gets the key after a release only through LISTEN/NOTIFY; the 20 s bound
// is a liveness bound far below the minute the fallback would take.
func TestWokenByNotify(t *testing.T) {
	pool := newPool(t, pgtest.Shared(t).DSN())
	holder := newProvider(t, pool, &pgprovider.Options{PollInterval: time.Hour})
	waiter := newProvider(t, pool, &pgprovider.Options{PollInterval: time.Hour})
	key, a, b := "wake:"+uuid.NewString(), uuid.NewString(), uuid.NewString()
	ctx := t.Context()
	if _, err := holder.TryAcquire(ctx, key, a, time.Minute); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := waiter.Acquire(wctx, key, b, time.Minute)
		res <- err
	}()
	// Release once the waiter has asked for a wake-up (its row exists).
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM "lockproof_locks_waiters" WHERE key = $1`, key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond) // re-read the waiters table
	}
	if err := holder.Release(ctx, key, a); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("waiter after a release, polling off: %v", err)
	}
	s, err := holder.State(ctx, key)
	if err != nil || !s.Held || s.Token != b {
		t.Fatalf("State = %+v, %v; want held by the waiter", s, err)
	}
	// The grant removed the waiter's row in the same statement.
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM "lockproof_locks_waiters" WHERE key = $1`, key).Scan(&n); err != nil || n != 0 {
		t.Fatalf("waiter rows after the grant and Close = %d, %v; want 0", n, err)
	}
}
