package sqlrepo_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/pgprovider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// TestRestart: PostgreSQL (holding the entities, and the locks with
// pgprovider; with Redis locks only the entities) is stopped and started
// again while a worker runs lock → load → N++ → save cycles. Every failed cycle reports ErrUnavailable (outcome unknown
// included) or ErrNotHeld (its hold was lost with the server), nothing
// panics, the worker recovers once the server is back, and the stored N
// is explained by the cycles: applied ≤ N ≤ applied + unknown.
func TestRestart(t *testing.T) {
	node := redistest.Server(t)
	for _, locks := range []string{"pgprovider", "redis"} {
		t.Run(locks, func(t *testing.T) { restart(t, locks, node) })
	}
}

func restart(t *testing.T, locks string, node *redistest.Node) {
	srv := pgtest.New(t)
	db, err := sql.Open("pgx", srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pool, err := pgxpool.New(t.Context(), srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var (
		lp   provider.Provider
		opts sqlrepo.Options
	)
	if locks == "redis" {
		if lp, err = redisprovider.New(node.Client(t), &redisprovider.Options{PollInterval: 100 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	} else {
		pp, err := pgprovider.New(pool, &pgprovider.Options{PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := pp.CreateSchema(t.Context()); err != nil {
			t.Fatal(err)
		}
		lp, opts.Hold = pp, pp
	}
	svc := newService(t, lp, &locked.Options{TTL: 5 * time.Second, Timeout: 2 * time.Second})
	r := newRepo(t, db, &opts)
	id := insert(t, r, 0).Key

	type stats struct{ applied, unknown, failed, afterRestart int }
	restarted := make(chan struct{})
	stop := make(chan struct{})
	done := make(chan stats, 1)
	var firstErr error
	go func() {
		var s stats
		back := false
		for {
			select {
			case <-stop:
				done <- s
				return
			case <-restarted:
				back, restarted = true, nil
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			err := cycle(ctx, svc, r, id)
			cancel()
			switch {
			case err == nil:
				s.applied++
				if back {
					s.afterRestart++
				}
			case errors.Is(err, locked.ErrOutcomeUnknown):
				s.unknown++
			case errors.Is(err, locked.ErrUnavailable), errors.Is(err, locked.ErrNotHeld), errors.Is(err, locked.ErrNotAcquired):
				s.failed++
			default:
				if firstErr == nil {
					firstErr = err
				}
				s.failed++
			}
		}
	}()

	waitCycles := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var got int64
			if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM "rtest" WHERE id = $1`, id).Scan(&got); err == nil {
				e, err := r.Find(t.Context(), id)
				if err == nil && e.N >= int64(n) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the worker did not reach N=%d within 30s", n)
			}
			time.Sleep(20 * time.Millisecond) // re-read N
		}
	}
	waitCycles(10)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	// While it is down, calls fail with clear errors.
	_, err = r.Find(t.Context(), id)
	if !errors.Is(err, locked.ErrUnavailable) {
		t.Fatalf("Find with PostgreSQL down = %v, want ErrUnavailable", err)
	}
	_, err = locked.Load(t.Context(), svc, r, id, locked.WithTimeout(time.Second))
	if !errors.Is(err, locked.ErrUnavailable) {
		t.Fatalf("locked.Load with PostgreSQL down = %v, want ErrUnavailable", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Pooled connections from before the restart fail once each (a clear
	// ErrUnavailable), then the pool reconnects.
	var before *entity
	for i := 0; ; i++ {
		before, err = r.Find(t.Context(), id)
		if err == nil {
			break
		}
		if !errors.Is(err, locked.ErrUnavailable) || i == 100 {
			t.Fatalf("Find after the restart (try %d) = %v, want ErrUnavailable until it recovers", i, err)
		}
	}
	close(restarted)
	waitCycles(int(before.N) + 10)
	close(stop)
	s := <-done
	if firstErr != nil {
		t.Fatalf("a cycle failed with an unclassified error: %v", firstErr)
	}
	e, err := r.Find(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("applied %d, unknown %d, failed %d, applied after the restart %d; N = %d", s.applied, s.unknown, s.failed, s.afterRestart, e.N)
	if e.N < int64(s.applied) || e.N > int64(s.applied+s.unknown) {
		t.Fatalf("N = %d, want between applied %d and applied+unknown %d", e.N, s.applied, s.applied+s.unknown)
	}
	if s.afterRestart == 0 {
		t.Fatal("no cycle succeeded after the restart")
	}
}

// cycle runs one locked.Load → N++ → Save → Close.
func cycle(ctx context.Context, svc *locked.Service, r *sqlrepo.Repository[*entity], id string) error {
	l, err := locked.Load(ctx, svc, r, id)
	if err != nil {
		return err
	}
	defer l.Close()
	l.Entity().N++
	return r.Save(ctx, l)
}
