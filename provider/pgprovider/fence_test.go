package pgprovider_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/provider"
)

// TestFenceDrawnUnderRowLock: an acquire that waits on the key's row while
// another grant of the key commits gets a fence above that grant's, because
// its fence is drawn after the wait, under the row's lock. (Drawing it in
// the INSERT's VALUES, before the wait, gave it the lower fence.)
func TestFenceDrawnUnderRowLock(t *testing.T) {
	pool := newPool(t, pgtest.Shared(t).DSN())
	p := newProvider(t, pool, nil)
	ctx := t.Context()
	key, a, x := "fence:"+uuid.NewString(), uuid.NewString(), uuid.NewString()
	if _, err := p.TryAcquire(ctx, key, a, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(ctx, key, a); err != nil {
		t.Fatal(err)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT 1 FROM "lockproof_locks" WHERE key = $1 FOR UPDATE`, key); err != nil {
		t.Fatal(err)
	}
	blocker := backendPID(t, tx)
	type result struct {
		g   provider.Grant
		err error
	}
	res := make(chan result, 1)
	go func() {
		g, err := p.TryAcquire(ctx, key, x, time.Minute)
		res <- result{g, err}
	}()
	for {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, blocker).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond) // re-read pg_stat_activity
	}
	// Meanwhile another grant of the key, already lapsed, commits.
	var other int64
	if err := tx.QueryRow(ctx, `UPDATE "lockproof_locks" SET token = 'y', fence = nextval('"lockproof_locks_fence"'),
		expires_at = clock_timestamp() - interval '1 second' WHERE key = $1 RETURNING fence`, key).Scan(&other); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatalf("TryAcquire after the row lock went: %v", r.err)
	}
	if r.g.Fence <= uint64(other) {
		t.Fatalf("fence %d of the acquire that waited is not above %d, granted before it", r.g.Fence, other)
	}
}
