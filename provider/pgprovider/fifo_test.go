package pgprovider_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/pgprovider"
)

// waitRows blocks until key has n rows in the waiters table: a waiter
// writes its row before it waits, so this observes the queue, not time.
func waitRows(t *testing.T, pool *pgxpool.Pool, key string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	last := -1
	for {
		var got int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM "lockproof_locks_waiters" WHERE key = $1`, key).Scan(&got); err != nil {
			t.Fatalf("waiting for %d waiter rows (last count %d): %v", n, last, err)
		}
		if got == n {
			return
		}
		last = got
		time.Sleep(2 * time.Millisecond) // re-read the table
	}
}

// TestWaitersServedFIFO: eight waiters, each on a Provider of its own (as
// in eight processes) with polling effectively off, queue one after the
// other; they are served in that order, each woken by the release before
// it, and a newcomer that asks right after the first release is refused
// (it may not barge in front of the queue).
func TestWaitersServedFIFO(t *testing.T) {
	pool := newPool(t, pgtest.Shared(t).DSN())
	holder := newProvider(t, pool, nil)
	ctx := t.Context()
	const n = 8
	key := "fifo:" + uuid.NewString()
	if _, err := holder.TryAcquire(ctx, key, "holder", time.Minute); err != nil {
		t.Fatal(err)
	}
	order := make(chan int, n)
	errs := make(chan error, n)
	for i := range n {
		p := newProvider(t, pool, &pgprovider.Options{PollInterval: time.Hour})
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			tok := fmt.Sprint("w", i)
			if _, err := p.Acquire(wctx, key, tok, time.Minute); err != nil {
				t.Logf("waiter %d: %v", i, err)
				errs <- fmt.Errorf("waiter %d: %w", i, err)
				return
			}
			order <- i
			errs <- p.Release(ctx, key, tok)
		}()
		waitRows(t, pool, key, i+1) // queued strictly in order i
	}
	if err := holder.Release(ctx, key, "holder"); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.TryAcquire(ctx, key, "newcomer", time.Minute); !errors.Is(err, provider.ErrNotAcquired) {
		t.Fatalf("newcomer's TryAcquire right after the release = %v, want ErrNotAcquired (the queue goes first)", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(order)
	want := 0
	for got := range order {
		if got != want {
			t.Fatalf("waiter %d served in turn %d; want arrival order", got, want)
		}
		want++
	}
	waitRows(t, pool, key, 0) // each grant removed its waiter's row
}

// TestLapsedHeadDropped: a waiter whose process died (a row nobody renews)
// reserves a free key only until its deadline: before it, a newcomer is
// refused; after it, a waiter that does not poll (an hour) is granted the
// key, having retried at the dead head's deadline.
func TestLapsedHeadDropped(t *testing.T) {
	pool := newPool(t, pgtest.Shared(t).DSN())
	p := newProvider(t, pool, &pgprovider.Options{PollInterval: time.Hour})
	ctx := t.Context()
	key := "lapsed:" + uuid.NewString()
	if _, err := p.TryAcquire(ctx, key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	// What a waiter's registration leaves behind: its row, and the key's
	// wait_until raised to its deadline.
	if _, err := pool.Exec(ctx, `WITH w AS (INSERT INTO "lockproof_locks_waiters" (key, token, until) VALUES ($1, 'ghost', clock_timestamp() + interval '1 hour'))
		UPDATE "lockproof_locks" SET wait_until = clock_timestamp() + interval '1 hour' WHERE key = $1`, key); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, key, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.TryAcquire(ctx, key, "b", time.Minute); !errors.Is(err, provider.ErrNotAcquired) {
		t.Fatalf("TryAcquire of a free key reserved for a live head = %v, want ErrNotAcquired", err)
	}
	if _, err := pool.Exec(ctx, `UPDATE "lockproof_locks_waiters" SET until = clock_timestamp() + interval '300 milliseconds' WHERE key = $1 AND token = 'ghost'`, key); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := p.Acquire(wctx, key, "b", time.Minute); err != nil {
		t.Fatalf("Acquire behind a head that stopped renewing: %v", err)
	}
	s, err := p.State(ctx, key)
	if err != nil || !s.Held || s.Token != "b" {
		t.Fatalf("State = %+v, %v; want held by b", s, err)
	}
}

// TestCreateSchemaUpgradesWaiters: tables of the first version (no queue
// order, no wait_until) gain the new columns, and waiting works on them.
func TestCreateSchemaUpgradesWaiters(t *testing.T) {
	pool := newPool(t, pgtest.Shared(t).DSN())
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `CREATE TABLE "upgrade_locks" (key TEXT PRIMARY KEY, token TEXT NOT NULL, fence BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);
		CREATE TABLE "upgrade_locks_waiters" (key TEXT, token TEXT, until TIMESTAMPTZ, PRIMARY KEY (key, token))`); err != nil {
		t.Fatal(err)
	}
	p := newProvider(t, pool, &pgprovider.Options{Table: "upgrade_locks", PollInterval: time.Hour})
	if _, err := p.TryAcquire(ctx, "k", "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		_, err := p.Acquire(wctx, "k", "b", time.Minute)
		res <- err
	}()
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(seq) FROM "upgrade_locks_waiters" WHERE key = 'k'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		time.Sleep(2 * time.Millisecond) // re-read the table
	}
	if err := p.Release(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Fatalf("waiter on an upgraded waiters table: %v", err)
	}
}
