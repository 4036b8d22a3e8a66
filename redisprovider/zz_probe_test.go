package redisprovider_test

import (
	"context"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/redisprovider"
)

func TestZZProbe(t *testing.T) {
	if os.Getenv("PROBE") == "" {
		t.Skip()
	}
	node := redistest.Server(t)
	c := node.Client(t)
	p := newProvider(t, c, nil)
	ctx := context.Background()
	const W, R = 8, 50
	var relStart atomic.Int64
	var mu sync.Mutex
	var gaps, rels []time.Duration
	epoch := time.Now()
	var wg sync.WaitGroup
	for w := range W {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range R {
				tok := "w" + string(rune('a'+w)) + string(rune('a'+i%26))
				_, err := p.Acquire(ctx, "k", tok, 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				now := time.Since(epoch)
				if rs := relStart.Load(); rs > 0 {
					mu.Lock()
					gaps = append(gaps, now-time.Duration(rs))
					mu.Unlock()
				}
				time.Sleep(2 * time.Millisecond)
				r0 := time.Since(epoch)
				relStart.Store(int64(r0))
				if err := p.Release(ctx, "k", tok); err != nil {
					t.Error(err)
				}
				mu.Lock()
				rels = append(rels, time.Since(epoch)-r0)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var pings []time.Duration
	for range 200 {
		t0 := time.Now()
		c.Ping(ctx)
		pings = append(pings, time.Since(t0))
	}
	slices.Sort(gaps)
	slices.Sort(rels)
	slices.Sort(pings)
	q := func(s []time.Duration, f float64) time.Duration { return s[int(f*float64(len(s)-1))] }
	t.Logf("gap release-start -> next grant: p50 %v p90 %v", q(gaps, .5), q(gaps, .9))
	t.Logf("release call: p50 %v p90 %v", q(rels, .5), q(rels, .9))
	t.Logf("ping idle: p50 %v p90 %v", q(pings, .5), q(pings, .9))
	_ = redisprovider.DefaultPrefix
}
