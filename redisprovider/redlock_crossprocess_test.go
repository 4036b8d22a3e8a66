package redisprovider_test

// Redlock across OS processes while nodes lose their data: 4 worker
// processes (copies of this test binary, started by proctest.Run), 3
// workers each, take one of 8 keys on 5 nodes, over and over, and write
// through a fenced store kept on a sixth redis-server, while the parent
// kills 2 nodes at a time and restarts them empty every few seconds. Each
// hold lasts longer than a restart, so a restarted node that voted at once
// would grant a key that is still held (without the admission check this
// test fails). The store's script refuses a fence that is
// not above the last one written (a regression, or a holder that another
// grant overtook) and a write whose read is no longer current (a second
// holder wrote in between: a double grant); the final count must equal the
// writes that succeeded (no lost write).

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/proctest"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// Environment of a worker process.
const (
	envRLNodes = "LOCKPROOF_REDLOCK_NODES" // comma-separated node addresses
	envRLStore = "LOCKPROOF_REDLOCK_STORE" // the fenced store's address
	envRLKey   = "LOCKPROOF_REDLOCK_KEY"
	envRLLog   = "LOCKPROOF_REDLOCK_LOG" // this run's log directory
	envRLRun   = "LOCKPROOF_REDLOCK_RUN" // how long to run
)

const (
	rlProcesses  = 4
	rlGoroutines = 3 // per process
	rlKeys       = 8 // holds long enough to outlast a node restart, so many keys for enough grants
	rlHold       = 100 * time.Millisecond
	rlRun        = 20 * time.Second
	rlTTL        = 2 * time.Second // admission waits stay short; a lapse under load stays unlikely
	rlBound      = time.Minute
	rlMinGrants  = 600
)

// fencedWrite is the store's script (see its header).
//
//go:embed testdata/fenced_write.lua
var fencedWriteSrc string

var fencedWrite = redis.NewScript(fencedWriteSrc)

func TestRedlockCrossProcessFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 4 processes for 20s while nodes restart empty; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), rlBound)
	defer cancel()
	nodes := redistest.Servers(t, 5)
	store := redistest.Server(t)
	rdb := store.Client(t)
	addrs := make([]string, len(nodes))
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		addrs[i] = n.Addr()
		clients[i] = fastClient(t, n.Addr())
	}
	key := uniqueKey(t, "k")
	dir := t.TempDir()

	done := make(chan struct{})
	faults := make(chan int, 1)
	go func() { // the fault injector: 2 nodes at a time, only once the last 2 were re-admitted
		defer close(faults)
		n := 0
		var last []int
		for {
			select {
			case <-done:
				faults <- n
				return
			case <-time.After(2 * time.Second):
			}
			ready := true
			for _, i := range last {
				if m, err := clients[i].Exists(ctx, nodeMarker).Result(); err != nil || m == 0 {
					ready = false
				}
			}
			if !ready {
				continue
			}
			perm := rand.Perm(len(nodes))
			last = perm[:2]
			restartEmpty(t, nodes[last[0]], nodes[last[1]])
			n++
		}
	}()
	proctest.Run(ctx, t, rlProcesses, "TestRedlockCrossProcessWorker",
		envRLNodes+"="+strings.Join(addrs, ","),
		envRLStore+"="+store.Addr(),
		envRLKey+"="+key,
		envRLLog+"="+dir,
		envRLRun+"="+rlRun.String(),
	)
	close(done)
	restarts := <-faults

	var grants, written, stale, lost, unavailable, late int
	maxFence := make(map[string]uint64)
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(files) != rlProcesses {
		t.Fatalf("%d worker logs, want %d", len(files), rlProcesses)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			switch fields[0] {
			case "grant": // grant <key> <fence> <outcome> [late]
				grants++
				if len(fields) > 4 {
					late++
				}
				fence, _ := strconv.ParseUint(fields[2], 10, 64)
				maxFence[fields[1]] = max(maxFence[fields[1]], fence)
				switch fields[3] {
				case "written":
					written++
				case "stale":
					stale++
				case "lost":
					lost++
				}
			case "unavailable":
				unavailable++
			}
		}
		_ = fh.Close()
	}
	var fences uint64
	for _, f := range maxFence {
		fences += f
	}
	count := 0
	for k := range rlKeys {
		n, err := rdb.HGet(ctx, fmt.Sprintf("%s:%d", key, k), "count").Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("store count: %v", err)
		}
		count += n
	}
	t.Logf("%d processes × %d workers on %d keys, %d node restarts (2 nodes each, empty): %d grants, %d written, %d refused as stale, %d as a double grant, %d ErrUnavailable, %d writes after the lease lapsed; store count %d; highest fences sum to %d: %.2f fence increments per grant",
		rlProcesses, rlGoroutines, rlKeys, restarts, grants, written, stale, lost, unavailable, late, count, fences, float64(fences)/float64(max(grants, 1)))
	if stale != 0 || lost != 0 {
		t.Errorf("%d fence regressions and %d double grants at the fenced store, want 0", stale, lost)
	}
	if count != written {
		t.Errorf("store count %d, want %d (the writes that succeeded): lost writes", count, written)
	}
	if grants < rlMinGrants {
		t.Errorf("%d grants (in %v and on until %d or the bound), want at least %d", grants, rlRun, rlMinGrants, rlMinGrants)
	}
	if restarts < 4 {
		t.Errorf("%d restarts of 2 nodes, want at least 4", restarts)
	}
}

// TestRedlockCrossProcessWorker is one worker process of
// TestRedlockCrossProcessFaults; run directly, it does nothing.
func TestRedlockCrossProcessWorker(t *testing.T) {
	if !proctest.IsWorker(t.Name()) {
		return
	}
	run, err := time.ParseDuration(os.Getenv(envRLRun))
	if err != nil {
		t.Fatal(err)
	}
	key := os.Getenv(envRLKey)
	ctx, cancel := context.WithTimeout(context.Background(), rlBound)
	defer cancel()
	var clients []redis.UniversalClient
	defer waitRedialers(t) // after the clients' Close: go-redis redials of a dead node end a moment later (goleak)
	for _, addr := range strings.Split(os.Getenv(envRLNodes), ",") {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1,
			DialTimeout: 250 * time.Millisecond, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
		defer c.Close()
		clients = append(clients, c)
	}
	store := redis.NewClient(&redis.Options{Addr: os.Getenv(envRLStore)})
	defer store.Close()
	r, err := redisprovider.NewRedlock(clients, &redisprovider.RedlockOptions{
		NodeTimeout: 250 * time.Millisecond,
		Options:     redisprovider.Options{PollInterval: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logf, err := os.Create(filepath.Join(os.Getenv(envRLLog), uuid.NewString()+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	w := bufio.NewWriter(logf)
	defer w.Flush()

	// Run for run, and on until the processes together have logged
	// rlMinGrants grants (a loaded machine grants fewer per second), but
	// never past a bound that leaves the parent time to check.
	end, hardEnd := time.Now().Add(run), time.Now().Add(rlBound-15*time.Second)
	grantsKey := key + ":grants"
	more := func() bool {
		if time.Now().Before(end) {
			return true
		}
		n, err := store.Get(ctx, grantsKey).Int()
		return err == nil && n < rlMinGrants && time.Now().Before(hardEnd)
	}
	var (
		mu sync.Mutex // guards w
		wg sync.WaitGroup
	)
	logLine := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
	for range rlGoroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for more() {
				k := fmt.Sprintf("%s:%d", key, rand.IntN(rlKeys))
				tok := uuid.NewString()
				actx, acancel := context.WithTimeout(ctx, 5*time.Second)
				g, err := r.Acquire(actx, k, tok, rlTTL)
				acancel()
				switch {
				case errors.Is(err, provider.ErrUnavailable):
					logLine("unavailable")
					time.Sleep(20 * time.Millisecond)
					continue
				case errors.Is(err, provider.ErrNotAcquired):
					continue
				case err != nil:
					t.Errorf("Acquire: %v", err)
					return
				}
				outcome, err := write(ctx, store, k, g.Fence)
				if err != nil {
					t.Errorf("store: %v", err)
					return
				}
				late := ""
				if time.Now().After(g.Expires) { // the lease lapsed before the write returned: not the lock's fault
					late = " late"
				}
				logLine("grant %s %d %s%s", k, g.Fence, outcome, late)
				if err := store.Incr(ctx, grantsKey).Err(); err != nil {
					t.Errorf("store: %v", err)
					return
				}
				_ = r.Release(ctx, k, tok) // its class is checked elsewhere; a node may be down
			}
		}()
	}
	wg.Wait()
}

// write reads the store's count and writes count+1 with fence.
func write(ctx context.Context, store *redis.Client, key string, fence uint64) (string, error) {
	n, err := store.HGet(ctx, key, "count").Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", err
	}
	time.Sleep(rlHold) // outlasts a node restart: a second holder would overlap
	res, err := fencedWrite.Run(ctx, store, []string{key}, fence, n).Int64Slice()
	if err != nil {
		return "", err
	}
	switch res[0] {
	case 1:
		return "written", nil
	case -1:
		return "stale", nil
	}
	return "lost", nil
}
