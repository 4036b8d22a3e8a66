package redisprovider_test

// No lost update across OS processes (DESIGN invariant 3): several copies
// of this test binary, each with its own client and Provider, increment one
// Redis counter by read-modify-write under the lock. The increment is done
// in Go (GET, then SET), not by INCR, so only the lock keeps it correct.
//
// The workers are copies of this test binary started by proctest.Run.

import (
	"context"
	"errors"
	"fmt"
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
)

// Environment of a worker process.
const (
	envAddr   = "LOCKPROOF_CROSSPROC_ADDR"   // the Redis server
	envKey    = "LOCKPROOF_CROSSPROC_KEY"    // the lock key; the counter is key+":counter"
	envMode   = "LOCKPROOF_CROSSPROC_MODE"   // "provider" or "service"
	envCycles = "LOCKPROOF_CROSSPROC_CYCLES" // increments to make
)

const (
	crossProcesses = 4
	crossCycles    = 500
	crossBound     = 3 * time.Minute // the whole test, all modes
	crossTTL       = 10 * time.Second
	crossWait      = time.Minute // one Acquire's wait
)

func TestCrossProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes doing 500 locked increments each; skipped in -short mode")
	}
	node := redistest.Server(t)
	rdb := node.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), crossBound)
	defer cancel()

	for _, mode := range []string{"provider", "service"} {
		t.Run(mode, func(t *testing.T) {
			key := uniqueKey(t, "k")
			proctest.Run(ctx, t, crossProcesses, "TestCrossProcessWorker",
				envAddr+"="+node.Addr(),
				envKey+"="+key,
				envMode+"="+mode,
				envCycles+"="+strconv.Itoa(crossCycles),
			)
			got, err := rdb.Get(ctx, key+":counter").Int()
			if err != nil {
				t.Fatalf("GET counter: %v", err)
			}
			if want := crossProcesses * crossCycles; got != want {
				t.Fatalf("counter = %d, want %d: %d updates were lost", got, want, want-got)
			}
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
	key, mode := os.Getenv(envKey), os.Getenv(envMode)
	counter := key + ":counter"
	ctx, cancel := context.WithTimeout(context.Background(), crossBound)
	defer cancel()

	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr), ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// increment reads, adds one and writes back. The fence counts grants
	// of key from 1, and each grant increments the counter once, so the
	// hold with fence f must read f-1: anything else is a lost or doubled
	// update (or a lapsed hold) seen at once, not only in the final count.
	increment := func(ctx context.Context, fence uint64) error {
		n, err := rdb.Get(ctx, counter).Uint64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("GET: %w", err)
		}
		if n != fence-1 {
			return fmt.Errorf("hold with fence %d read counter %d, want %d", fence, n, fence-1)
		}
		if err := rdb.Set(ctx, counter, n+1, 0).Err(); err != nil {
			return fmt.Errorf("SET: %w", err)
		}
		return nil
	}

	var lastFence uint64
	switch mode {
	case "provider":
		for i := range cycles {
			tok := "tok-" + uuid.NewString()
			actx, cancel := context.WithTimeout(ctx, crossWait)
			g, err := p.Acquire(actx, key, tok, crossTTL)
			cancel()
			if err != nil {
				t.Fatalf("cycle %d: Acquire: %v", i, err)
			}
			if g.Fence <= lastFence {
				t.Fatalf("cycle %d: fence %d after %d, want increasing", i, g.Fence, lastFence)
			}
			lastFence = g.Fence
			if err := increment(ctx, g.Fence); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			if err := p.Release(ctx, key, tok); err != nil {
				t.Fatalf("cycle %d: Release: %v (the hold lapsed?)", i, err)
			}
		}
	case "service":
		svc, err := locked.New(p, &locked.Options{TTL: crossTTL, Timeout: crossWait})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close()
		for i := range cycles {
			err := svc.Run(ctx, key, func(ctx context.Context) error {
				st, err := svc.State(ctx, key)
				if err != nil {
					return err
				}
				if st.Status != locked.HeldByMe || st.Fence <= lastFence {
					return fmt.Errorf("State = %+v inside Run, want held by me with a fence above %d", st, lastFence)
				}
				lastFence = st.Fence
				return increment(ctx, st.Fence)
			})
			if err != nil {
				t.Fatalf("cycle %d: Run: %v", i, err)
			}
		}
		if n := svc.Stats().Open; n != 0 {
			t.Fatalf("Held = %d after %d Runs, want 0", n, cycles)
		}
	default:
		t.Fatalf("%s = %q", envMode, mode)
	}
}
