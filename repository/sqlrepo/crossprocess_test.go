package sqlrepo_test

// No lost update across OS processes: several copies of this test binary,
// each with its own pools, provider, Service and Repository, run
// locked.Load → N++ → Save → Close on one entity in PostgreSQL, with the
// locks in Redis (the fence and the claim on load decide) or in the same
// PostgreSQL (the Save statement checks the lock row too).

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/internal/proctest"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/pgprovider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// Environment of a worker process.
const (
	envDSN    = "LOCKPROOF_SQLREPO_DSN"    // the PostgreSQL server
	envRedis  = "LOCKPROOF_SQLREPO_REDIS"  // the Redis server, or "" for pgprovider locks
	envID     = "LOCKPROOF_SQLREPO_ID"     // the entity's ID
	envCycles = "LOCKPROOF_SQLREPO_CYCLES" // increments to make
)

const (
	crossProcesses = 4
	crossCycles    = 500
	crossBound     = 3 * time.Minute // the whole test
	crossTTL       = 10 * time.Second
	crossWait      = time.Minute // one Load's wait
)

func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes doing 500 locked Load, N++, Save each, twice; skipped in -short mode")
	}
	dsn := pgtest.Shared(t).DSN()
	node := redistest.Server(t)
	for _, locks := range []string{"redis", "pgprovider"} {
		t.Run(locks, func(t *testing.T) {
			db := openPG(t)
			r := newRepo(t, db, nil)
			if locks == "pgprovider" {
				pgLocks(t).Close() // creates the schema
			}
			id := insert(t, r, 0).Key
			redisAddr := ""
			if locks == "redis" {
				redisAddr = node.Addr()
			}
			ctx, cancel := context.WithTimeout(t.Context(), crossBound)
			defer cancel()
			proctest.Run(ctx, t, crossProcesses, "TestCrossProcessWorker",
				envDSN+"="+dsn, envRedis+"="+redisAddr, envID+"="+id,
				envCycles+"="+strconv.Itoa(crossCycles))
			wantN(t, r, id, crossProcesses*crossCycles, "after every worker's cycles")
		})
	}
}

// TestCrossProcessWorker is the body of one worker process of
// TestCrossProcess; run directly, it does nothing.
func TestCrossProcessWorker(t *testing.T) {
	if !proctest.IsWorker(t.Name()) {
		return // not a worker
	}
	cycles, err := strconv.Atoi(os.Getenv(envCycles))
	if err != nil {
		t.Fatalf("%s: %v", envCycles, err)
	}
	id := os.Getenv(envID)
	ctx, cancel := context.WithTimeout(context.Background(), crossBound)
	defer cancel()

	db, err := sql.Open("pgx", os.Getenv(envDSN))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var (
		p    provider.Provider
		opts sqlrepo.Options
	)
	if addr := os.Getenv(envRedis); addr != "" {
		rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		defer rdb.Close()
		if p, err = redisprovider.New(rdb, nil); err != nil {
			t.Fatal(err)
		}
	} else {
		pool, err := pgxpool.New(ctx, os.Getenv(envDSN))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		pp, err := pgprovider.New(pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, opts.Hold = pp, pp
	}
	defer p.Close()
	svc, err := locked.New(p, &locked.Options{TTL: crossTTL, Timeout: crossWait, Owner: "worker-" + uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	repo, err := sqlrepo.New[*entity](db, &opts)
	if err != nil {
		t.Fatal(err)
	}

	var lastN int64
	for i := range cycles {
		l, err := locked.Load(ctx, svc, repo, id)
		if err != nil {
			t.Fatalf("cycle %d: locked.Load: %v", i, err)
		}
		if n := l.Entity().N; n < lastN {
			t.Errorf("cycle %d: loaded N=%d after this process saved %d", i, n, lastN)
		}
		l.Entity().N++
		lastN = l.Entity().N
		err = repo.Save(ctx, l)
		if cerr := l.Close(); err == nil && cerr != nil {
			t.Fatalf("cycle %d: Close: %v (the hold lapsed?)", i, cerr)
		}
		if err != nil {
			t.Fatalf("cycle %d: Save: %v", i, err)
		}
	}
}
