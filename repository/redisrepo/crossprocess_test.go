package redisrepo_test

// No lost update across OS processes (DESIGN invariant 3): several copies
// of this test binary, each with its own client, Provider, Service and
// Repository, run locked.Load → N++ → Save → Close on one entity. Only the
// lock and the script's check keep the count exact.
//
// The workers are copies of this test binary started by proctest.Run.

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/proctest"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

// Environment of a worker process.
const (
	envAddr   = "LOCKPROOF_REDISREPO_ADDR"   // the Redis server
	envID     = "LOCKPROOF_REDISREPO_ID"     // the entity's ID
	envCycles = "LOCKPROOF_REDISREPO_CYCLES" // increments to make
)

const (
	crossProcesses = 4
	crossCycles    = 300
	crossBound     = 2 * time.Minute // the whole test
	crossTTL       = 10 * time.Second
	crossWait      = time.Minute // one Load's wait
	crossNamespace = "xproc"
)

func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes doing 300 locked Load, N++, Save each; skipped in -short mode")
	}
	node := redistest.Server(t)
	s := newStack(t, node.Client(t), crossNamespace)
	ctx, cancel := context.WithTimeout(t.Context(), crossBound)
	defer cancel()
	id := insert(t, s, 0).Key

	proctest.Run(ctx, t, crossProcesses, "TestCrossProcessWorker",
		envAddr+"="+node.Addr(),
		envID+"="+id,
		envCycles+"="+strconv.Itoa(crossCycles),
	)
	wantN(t, s, id, crossProcesses*crossCycles, "after every worker's cycles")
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

	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr), ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	svc, err := locked.New(p, &locked.Options{TTL: crossTTL, Timeout: crossWait, Namespace: crossNamespace,
		Owner: "worker-" + uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	repo, err := redisrepo.New[*entity](svc, nil)
	if err != nil {
		t.Fatal(err)
	}

	var lastN int64
	for i := range cycles {
		l, err := locked.Load(ctx, svc, repo, id)
		if err != nil {
			t.Fatalf("cycle %d: locked.Load: %v", i, err)
		}
		// N never goes below what this process last saved.
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
