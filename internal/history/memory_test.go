package history_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/internal/history"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/repository"
)

// TestMemoryHistory runs the workload in one process, on memprovider and
// repository.Memory, with holders that pause past their TTL (their saves
// must be refused), and checks the history: the in-process stack must pass,
// which also shows the checker accepts real histories full of refusals.
func TestMemoryHistory(t *testing.T) {
	const (
		workers = 6
		cycles  = 150 // per worker
		ttl     = 5 * time.Millisecond
		every   = 7               // every 7th cycle of a worker pauses past its TTL
		pause   = 2 * ttl         // the pause
		bound   = 5 * time.Second // one Load's wait
	)
	ctx := t.Context()
	p := memprovider.New()
	defer p.Close()
	svc, err := locked.New(p, &locked.Options{TTL: ttl, Timeout: bound})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	repo := repository.NewMemory[*hcounter](repository.WithLockStore(svc.Store()))
	id := uuid.NewString()
	if err := repo.Insert(ctx, &hcounter{Key: id}); err != nil {
		t.Fatal(err)
	}

	var buf bytes.Buffer
	var mu sync.Mutex // guards buf for the Logs of all workers
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			log := history.NewLog(lockedWriter{&mu, &buf}, w+1)
			add := func(e history.Entry, err error) {
				e.Outcome = history.Classify(err)
				if err != nil {
					e.Err = err.Error()
				}
				if lerr := log.Add(e); lerr != nil {
					t.Error(lerr)
				}
			}
			for c := range cycles {
				call := history.Now()
				l, err := locked.Load(ctx, svc, repo, id)
				e := history.Entry{Cycle: c, Op: history.Load, Call: call, Return: history.Now()}
				if err != nil {
					add(e, err)
					continue
				}
				e.Output, e.Fence = l.Entity().N, l.Fence()
				add(e, nil)
				l.Entity().N++
				if c%every == every-1 {
					time.Sleep(pause) // the holder pauses; its lease lapses
				}
				call = history.Now()
				err = repo.Save(ctx, l)
				add(history.Entry{Cycle: c, Op: history.Save, Input: l.Entity().N, Fence: l.Fence(), Call: call, Return: history.Now()}, err)
				call = history.Now()
				err = l.Lease().Release(context.Background())
				add(history.Entry{Cycle: c, Op: history.Release, Call: call, Return: history.Now()}, err)
			}
		}()
	}
	wg.Wait()

	call := history.Now()
	final, err := repo.Find(ctx, id)
	ret := history.Now()
	if err != nil {
		t.Fatal(err)
	}
	entries, err := history.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	entries = append(entries, history.Entry{Op: history.Read, Output: final.N, Outcome: history.OK, Call: call, Return: ret})
	checkStart := time.Now()
	r := history.Check(entries, 0, 20*time.Second)
	t.Logf("history (checked in %v): %s", time.Since(checkStart).Round(time.Millisecond), r)
	for _, p := range r.Problems {
		t.Error(p)
	}
	if got := r.Outcomes[history.Save][history.Refused]; got < workers*(cycles/every) {
		t.Errorf("%d saves refused, want at least %d (every %dth cycle pauses past its TTL)", got, workers*(cycles/every), every)
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
