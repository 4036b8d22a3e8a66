package main

// The PostgreSQL section: pgprovider acquire+release next to the raw
// INSERT … ON CONFLICT + DELETE pair (the floor), and the sqlrepo entity
// cycle (locked.Load → N++ → Save → Close, locks in the same database,
// exact fencing) next to the same work in raw statements. It starts its own
// PostgreSQL (internal/pgtest) and runs only when asked:
//
//	cd bench && go test -run TestPostgresRatios -v -args -pgbench
//
// cirello.io/pglock, the table-based peer the issue names, is not
// reachable through this machine's module proxy (403), so it is not
// measured here.

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider/pgprovider"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

var pgBench = flag.Bool("pgbench", false, "run the PostgreSQL section (TestPostgresRatios)")

type pgCounter struct {
	Key string
	N   int64
}

func (*pgCounter) Kind() string { return "pgcounter" }
func (c *pgCounter) ID() string { return c.Key }

var pgSeq atomic.Int64

func TestPostgresRatios(t *testing.T) {
	if !*pgBench {
		t.Skip("the PostgreSQL benchmark section runs with -args -pgbench")
	}
	srv := pgtest.New(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	p, err := pgprovider.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.CreateSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE floor_locks (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", srv.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	repo, err := sqlrepo.New[*pgCounter](db, &sqlrepo.Options{Hold: p})
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE raw_counter (id TEXT PRIMARY KEY, data BYTEA, fence BIGINT NOT NULL DEFAULT 0)`); err != nil {
		t.Fatal(err)
	}
	if err := repo.Insert(ctx, &pgCounter{Key: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO raw_counter VALUES ('c', '{"Key":"c","N":0}', 0)`); err != nil {
		t.Fatal(err)
	}

	bench := func(name string, f func(b *testing.B)) float64 {
		var best float64
		for range 3 { // best of three, on a shared machine
			r := testing.Benchmark(f)
			if ns := float64(r.NsPerOp()); best == 0 || ns < best {
				best = ns
			}
		}
		t.Logf("%-28s %8.0f ns/op", name, best)
		return best
	}
	lock := bench("pgprovider acquire+release", func(b *testing.B) {
		for b.Loop() {
			key := "k" + strconv.FormatInt(pgSeq.Add(1)%64, 10)
			if _, err := p.TryAcquire(ctx, key, "tok", 30e9); err != nil {
				b.Fatal(err)
			}
			if err := p.Release(ctx, key, "tok"); err != nil {
				b.Fatal(err)
			}
		}
	})
	floor := bench("raw INSERT ON CONFLICT+DELETE", func(b *testing.B) {
		for b.Loop() {
			key := "k" + strconv.FormatInt(pgSeq.Add(1)%64, 10)
			tag, err := pool.Exec(ctx, `INSERT INTO floor_locks VALUES ($1, $2, clock_timestamp() + interval '30 seconds')
				ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
				WHERE floor_locks.expires_at <= clock_timestamp()`, key, "tok")
			if err != nil || tag.RowsAffected() != 1 {
				b.Fatal(err, tag)
			}
			if _, err := pool.Exec(ctx, `DELETE FROM floor_locks WHERE key = $1 AND token = $2`, key, "tok"); err != nil {
				b.Fatal(err)
			}
		}
	})
	cycle := bench("sqlrepo entity cycle", func(b *testing.B) {
		for b.Loop() {
			l, err := locked.Load(ctx, svc, repo, "c")
			if err != nil {
				b.Fatal(err)
			}
			l.Entity().N++
			if err := repo.Save(ctx, l); err != nil {
				b.Fatal(err)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	raw := bench("raw statements cycle", func(b *testing.B) {
		for b.Loop() {
			key := "pgcounter:c"
			if _, err := pool.Exec(ctx, `INSERT INTO floor_locks VALUES ($1, $2, clock_timestamp() + interval '30 seconds')
				ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
				WHERE floor_locks.expires_at <= clock_timestamp()`, key, "tok"); err != nil {
				b.Fatal(err)
			}
			var data []byte
			if err := pool.QueryRow(ctx, `UPDATE raw_counter SET fence = fence + 1 WHERE id = 'c' RETURNING data`).Scan(&data); err != nil {
				b.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `UPDATE raw_counter SET data = $1 WHERE id = 'c'`, data); err != nil {
				b.Fatal(err)
			}
			if _, err := pool.Exec(ctx, `DELETE FROM floor_locks WHERE key = $1 AND token = $2`, key, "tok"); err != nil {
				b.Fatal(err)
			}
		}
	})
	fmt.Printf("RATIO pg_uncontended_vs_floor=%.2f\n", lock/floor)
	fmt.Printf("RATIO pg_entity_cycle_vs_raw=%.2f\n", cycle/raw)
}
