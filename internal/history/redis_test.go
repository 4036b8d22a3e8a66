package history_test

// The history check against the real thing: several OS processes run
// locked.Load → N+1 → Save → Release on one entity through redisprovider
// and redisrepo against one real redis-server, which the parent pauses
// (SIGSTOP) and resumes (SIGCONT) a few times during the run. Each worker
// logs every operation with its outcome class; the parent merges the logs,
// adds its final read, and checks the history with porcupine and the
// counter (package documentation of history).
//
// A pause shorter than the lease TTL leaves requests in the server's
// receive buffer that it runs on resume, after the client gave up: their
// answer must be "unknown", never "unavailable" or a refusal. A pause
// longer than the TTL lets every lease lapse at once.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/history"
	"github.com/lockproof/lockproof/internal/proctest"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

// Environment of a worker process.
const (
	envAddr  = "LOCKPROOF_HISTORY_ADDR"  // the Redis server
	envID    = "LOCKPROOF_HISTORY_ID"    // the entity's ID
	envDir   = "LOCKPROOF_HISTORY_DIR"   // where each worker writes <pid>.jsonl
	envUntil = "LOCKPROOF_HISTORY_UNTIL" // Unix nanoseconds: start no cycle after this
)

const (
	histWorkers   = 4
	histRun       = 8 * time.Second // how long the workers start cycles
	histMaxCycles = 3000            // per worker, to bound the history
	histTTL       = time.Second     // of every lease
	histLoadBound = time.Second     // one Load (lock wait and read)
	histCallBound = 300 * time.Millisecond
	// histWork is the work of a cycle between its load and its save, so
	// that a pause is likely to catch the holder about to save.
	histWork      = 2 * time.Millisecond
	histNamespace = "hist"
	histBound     = 30 * time.Second // the whole test
	// applyMargin covers the rounding of the TTL to milliseconds and the
	// clock reads around the store's own: a save may still apply until its
	// lease's store expiry, which is at most the load's return + TTL.
	applyMargin = 50 * time.Millisecond
)

// faults is the schedule of pauses, from the start of the run: six
// longer than a call's bound and shorter than the TTL (a save caught by one
// times out at the client and then runs on resume, its lease still
// valid), and two longer than the TTL (every lease lapses). Which operation a pause catches in
// flight is chance (a save, more often than not, because of histWork);
// eight pauses make it likely that several saves are caught, and the test
// reports how many were.
var faults = []struct{ at, pause time.Duration }{
	{600 * time.Millisecond, 500 * time.Millisecond},
	{1400 * time.Millisecond, 500 * time.Millisecond},
	{2200 * time.Millisecond, 1200 * time.Millisecond},
	{3700 * time.Millisecond, 500 * time.Millisecond},
	{4500 * time.Millisecond, 500 * time.Millisecond},
	{5300 * time.Millisecond, 1200 * time.Millisecond},
	{6800 * time.Millisecond, 500 * time.Millisecond},
	{7400 * time.Millisecond, 500 * time.Millisecond},
}

// hcounter is the entity of the workload.
type hcounter struct {
	Key string
	N   int64
}

func (*hcounter) Kind() string { return "hcounter" }
func (c *hcounter) ID() string { return c.Key }

// TestRedisHistory runs the workload with faults and checks its history.
//
// It runs wherever the Redis tests run (skipped with -short). On the Redis
// provider and repository before the outcome classes of issue 8 it found
// the violations that issue describes: saves that timed out were reported
// unavailable although Redis applied them on resume.
func TestRedisHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 4 processes and pauses redis-server; skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(t.Context(), histBound)
	defer cancel()
	node := redistest.Server(t)
	rdb := node.Client(t)
	pid := serverPID(t, rdb)
	// Registered after Server, so it runs before the server is stopped.
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })

	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	svc, err := locked.New(p, &locked.Options{Namespace: histNamespace})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	repo, err := redisrepo.New[*hcounter](svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	if err := repo.Insert(ctx, &hcounter{Key: id}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	start := time.Now()
	until := start.Add(histRun)
	stop := make(chan struct{})
	var (
		wg     sync.WaitGroup
		paused time.Duration // total, written by the injector before wg.Done
		done   int           // pauses injected
	)
	wg.Add(1)
	go func() { // the fault injector; stopped by stop, waited for below
		defer wg.Done()
		for _, f := range faults {
			timer := time.NewTimer(time.Until(start.Add(f.at)))
			select {
			case <-stop:
				timer.Stop()
				return
			case <-timer.C:
			}
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Errorf("SIGSTOP redis-server: %v", err)
				return
			}
			pauseStart := time.Now()
			timer = time.NewTimer(f.pause)
			select {
			case <-stop:
			case <-timer.C:
			}
			timer.Stop()
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT redis-server: %v", err)
				return
			}
			paused += time.Since(pauseStart)
			done++
		}
	}()
	proctest.Run(ctx, t, histWorkers, "TestRedisHistoryWorker",
		envAddr+"="+node.Addr(),
		envID+"="+id,
		envDir+"="+dir,
		envUntil+"="+strconv.FormatInt(until.UnixNano(), 10),
	)
	close(stop)
	wg.Wait()

	call := history.Now()
	final, err := repo.Find(ctx, id)
	ret := history.Now()
	if err != nil {
		t.Fatalf("final Find: %v", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil || len(paths) != histWorkers {
		t.Fatalf("worker logs: %v, %v; want %d files", paths, err, histWorkers)
	}
	entries, err := history.ReadFiles(paths...)
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries, history.Entry{Op: history.Read, Output: final.N, Outcome: history.OK, Call: call, Return: ret})

	ran := time.Since(start)
	r := history.Check(entries, 0, 15*time.Second)
	t.Logf("workers ran %v; the check took %v", ran.Round(time.Millisecond), (time.Since(start) - ran).Round(time.Millisecond))
	t.Logf("faults: %d pauses of redis-server (SIGSTOP/SIGCONT), %v paused in all", done, paused.Round(time.Millisecond))
	t.Logf("history: %s", r)
	caught := 0 // saves that a pause caught in flight
	for _, e := range entries {
		if e.Op == history.Save && e.Outcome != history.OK {
			caught++
		}
	}
	t.Logf("saves caught by a pause (outcome not ok): %d; unknown outcomes: %d; problems found: %d (porcupine: %s)",
		caught, r.Uncertain, len(r.Problems), r.Checked)
	if !r.OK() {
		if out := os.Getenv("LOCKPROOF_HISTORY_HTML"); out != "" {
			if err := r.Visualize(out); err != nil {
				t.Logf("visualize: %v", err)
			} else {
				t.Logf("porcupine's view of the history: %s", out)
			}
		}
		const show = 15
		for i, p := range r.Problems {
			if i == show {
				t.Errorf("... and %d more problems", len(r.Problems)-show)
				break
			}
			t.Errorf("%s", p)
		}
	}
}

// TestRedisHistoryWorker is the body of one worker process of
// TestRedisHistory; run directly, it does nothing.
func TestRedisHistoryWorker(t *testing.T) {
	if !proctest.IsWorker(t.Name()) {
		return // not a worker
	}
	untilNS, err := strconv.ParseInt(os.Getenv(envUntil), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", envUntil, err)
	}
	until := time.Unix(0, untilNS)
	id := os.Getenv(envID)
	me := os.Getpid()

	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv(envAddr), ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	svc, err := locked.New(p, &locked.Options{TTL: histTTL, Timeout: histLoadBound, Namespace: histNamespace,
		Owner: fmt.Sprint("worker-", me)})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	repo, err := redisrepo.New[*hcounter](svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(os.Getenv(envDir), strconv.Itoa(me)+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := history.NewLog(f, me)
	add := func(e history.Entry, err error) {
		e.Outcome = history.Classify(err)
		if err != nil {
			e.Err = err.Error()
		}
		if lerr := log.Add(e); lerr != nil {
			t.Fatal(lerr)
		}
	}

	for cycle := 0; cycle < histMaxCycles && time.Now().Before(until); cycle++ {
		ctx, cancel := context.WithTimeout(context.Background(), histLoadBound)
		call := history.Now()
		l, err := locked.Load(ctx, svc, repo, id)
		ret := history.Now()
		cancel()
		e := history.Entry{Cycle: cycle, Op: history.Load, Call: call, Return: ret}
		if err != nil {
			add(e, err)
			continue
		}
		e.Output, e.Fence = l.Entity().N, l.Fence()
		add(e, nil)
		applyBy := ret + int64(histTTL+applyMargin)

		l.Entity().N++
		time.Sleep(histWork)
		ctx, cancel = context.WithTimeout(context.Background(), histCallBound)
		call = history.Now()
		err = repo.Save(ctx, l)
		ret = history.Now()
		cancel()
		add(history.Entry{Cycle: cycle, Op: history.Save, Input: l.Entity().N, Fence: l.Fence(),
			Call: call, Return: ret, ApplyBy: applyBy}, err)

		ctx, cancel = context.WithTimeout(context.Background(), histCallBound)
		call = history.Now()
		err = l.Lease().Release(ctx)
		ret = history.Now()
		cancel()
		add(history.Entry{Cycle: cycle, Op: history.Release, Fence: l.Fence(), Call: call, Return: ret}, err)
	}
}

// serverPID asks the server for its process ID.
func serverPID(t *testing.T, rdb *redis.Client) int {
	t.Helper()
	info, err := rdb.Info(t.Context(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("INFO server: process_id %q: %v", v, err)
			}
			return pid
		}
	}
	t.Fatalf("INFO server has no process_id:\n%s", info)
	return 0
}
