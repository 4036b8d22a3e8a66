package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
)

// TestTraceHandoff explains lockproof's handoff numbers: it runs the
// contended scenario with a client per worker, records when each worker
// sends an acquire attempt and a release, and logs
//
//   - how soon after a release the releaser's own next attempt leaves,
//     next to the first attempt of a worker that was waiting (woken by the
//     published release), and
//   - the timeline of the longest wait: its own attempts, against the
//     releases and grants to others meanwhile.
//
// It only logs; run it with BENCH_TRACE=1 go test -run TraceHandoff -v.
// Attempts and releases are told apart by the number of keys of the
// EVALSHA (acquire: 4, release: 5), as redisprovider's scripts are now.
func TestTraceHandoff(t *testing.T) {
	if os.Getenv("BENCH_TRACE") == "" {
		t.Skip("a diagnostic: set BENCH_TRACE=1 to run it")
	}
	requireRedis(t)
	ctx := context.Background()
	srv, err := startRedis(ctx, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()

	const (
		W, R = 8, 50
		H    = 2 * time.Millisecond
	)
	tr := &trace{start: time.Now()}
	svcs := make([]*locked.Service, W)
	for w := range W {
		c := redis.NewClient(&redis.Options{Addr: srv.addr, ContextTimeoutEnabled: true})
		c.AddHook(traceHook{tr, w})
		defer c.Close()
		p, err := redisprovider.New(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if svcs[w], err = locked.New(p, &locked.Options{TTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		waits []span
		begin = make(chan struct{})
	)
	for w := range W {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			for range R {
				from := tr.now()
				l, err := svcs[w].Acquire(ctx, "trace", locked.WithTimeout(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				to := tr.now()
				tr.add(w, "got")
				mu.Lock()
				waits = append(waits, span{w, from, to})
				mu.Unlock()
				time.Sleep(H)
				if err := l.Release(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	tr.start = time.Now()
	close(begin)
	wg.Wait()

	// Head start: after each release, the releaser's next attempt vs the
	// first attempt by anyone else.
	evs := tr.sorted()
	var own, other []time.Duration
	for i, e := range evs {
		if e.kind != "rel" {
			continue
		}
		var o, x time.Duration = -1, -1
		for _, f := range evs[i+1:] {
			if f.kind != "try" {
				continue
			}
			if f.w == e.w && o < 0 {
				o = f.at - e.at
			}
			if f.w != e.w && x < 0 {
				x = f.at - e.at
			}
			if o >= 0 && x >= 0 {
				break
			}
		}
		if o >= 0 && x >= 0 {
			own, other = append(own, o), append(other, x)
		}
	}
	slices.Sort(own)
	slices.Sort(other)
	if len(own) > 0 {
		t.Logf("after a release, the releaser's next attempt leaves after p50 %v, a waiting worker's first attempt after p50 %v (%d releases)",
			quantile(own, 0.5), quantile(other, 0.5), len(own))
	}

	slices.SortFunc(waits, func(a, b span) int { return int((b.to - b.from) - (a.to - a.from)) })
	for _, s := range waits[:min(2, len(waits))] {
		var tries, rels int
		var line []string
		for _, e := range evs {
			if e.at < s.from || e.at > s.to {
				continue
			}
			switch {
			case e.kind == "try" && e.w == s.w:
				tries++
				line = append(line, fmt.Sprintf("try@%.1f", ms(e.at-s.from)))
			case e.kind == "rel":
				rels++
				line = append(line, fmt.Sprintf("w%d-release@%.1f", e.w, ms(e.at-s.from)))
			}
		}
		verdict := "woken by every release, it lost every race"
		if tries <= rels {
			verdict = fmt.Sprintf("it slept through %d releases (missed wake-ups)", rels-tries+1)
		}
		t.Logf("worker %d waited %v: %d attempts, %d releases meanwhile: %s", s.w, s.to-s.from, tries, rels, verdict)
		t.Logf("  ms into the wait: %s", strings.Join(line[:min(len(line), 40)], " "))
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

type span struct {
	w        int
	from, to time.Duration
}

type event struct {
	at   time.Duration
	w    int
	kind string // "try", "rel", "got"
}

type trace struct {
	start time.Time
	mu    sync.Mutex
	evs   []event // guarded by mu
}

func (tr *trace) now() time.Duration { return time.Since(tr.start) }

func (tr *trace) add(w int, kind string) {
	at := tr.now()
	tr.mu.Lock()
	tr.evs = append(tr.evs, event{at, w, kind})
	tr.mu.Unlock()
}

func (tr *trace) sorted() []event {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	evs := slices.Clone(tr.evs)
	slices.SortFunc(evs, func(a, b event) int { return int(a.at - b.at) })
	return evs
}

// traceHook records worker w's acquire attempts and releases.
type traceHook struct {
	tr *trace
	w  int
}

func (traceHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h traceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if a := cmd.Args(); len(a) > 2 && fmt.Sprint(a[0]) == "evalsha" {
			switch fmt.Sprint(a[2]) {
			case "4":
				h.tr.add(h.w, "try")
			case "5":
				h.tr.add(h.w, "rel")
			}
		}
		return next(ctx, cmd)
	}
}

func (traceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
