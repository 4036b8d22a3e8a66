package memprovider

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	providertest.Run(t, func(t *testing.T) provider.Provider {
		p := New()
		t.Cleanup(func() { p.Close() })
		return p
	})
}

// queued reports how many waiters queue on key.
func (p *Provider) queued(key string) int {
	s := p.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.locks[key].queue)
}

// waitQueued blocks until n waiters queue on key. Each waiter enqueues before
// it blocks, so this observes the queue, not the passage of time.
func waitQueued(t *testing.T, p *Provider, key string, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return p.queued(key) == n }, 10*time.Second, time.Millisecond)
}

func TestWaitersServedFIFO(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	const key, n = "fifo", 20
	_, err := p.TryAcquire(ctx, key, "holder", time.Minute)
	require.NoError(t, err)

	order := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprint("w", i)
			_, err := p.Acquire(ctx, key, token, time.Minute)
			if !assert.NoError(t, err) {
				return
			}
			order <- i
			assert.NoError(t, p.Release(ctx, key, token))
		}()
		waitQueued(t, p, key, i+1) // enqueue strictly in order i
	}
	// A newcomer must not barge in front of the queue.
	require.NoError(t, p.Release(ctx, key, "holder"))
	wg.Wait()
	close(order)
	want := 0
	for got := range order {
		assert.Equal(t, want, got, "waiters must be served in arrival order")
		want++
	}
	assert.Equal(t, n, want)
}

func TestNoBargingPastQueue(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	_, err := p.TryAcquire(ctx, "k", "holder", time.Minute)
	require.NoError(t, err)
	got := make(chan provider.Grant, 1)
	go func() {
		g, err := p.Acquire(ctx, "k", "waiter", time.Minute)
		assert.NoError(t, err)
		got <- g
	}()
	waitQueued(t, p, "k", 1)
	require.NoError(t, p.Release(ctx, "k", "holder"))
	// The release handed the key to the waiter: a newcomer finds it held.
	_, err = p.TryAcquire(ctx, "k", "newcomer", time.Minute)
	assert.ErrorIs(t, err, provider.ErrNotAcquired)
	g := <-got
	tok, ok := p.Holder("k")
	assert.True(t, ok)
	assert.Equal(t, "waiter", tok)
	assert.NotZero(t, g.Fence)
}

func TestLapsedHolderPassesToWaiter(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	g1, err := p.TryAcquire(ctx, "k", "a", 20*time.Millisecond)
	require.NoError(t, err)
	// Nobody releases: only the waiter's expiry timer can hand it over.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	g2, err := p.Acquire(wctx, "k", "b", time.Minute)
	require.NoError(t, err)
	assert.Greater(t, g2.Fence, g1.Fence)
	assert.ErrorIs(t, p.Release(ctx, "k", "a"), provider.ErrNotHeld)
}

func TestLapsedEntriesReclaimed(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	const n = 20_000
	for i := range n {
		_, err := p.TryAcquire(ctx, fmt.Sprint("old", i), "t", time.Nanosecond)
		require.NoError(t, err)
	}
	// Every hold above has lapsed (1 ns). Locking as many new keys, never
	// released either, must reuse the room: the maps may not hold both sets.
	for i := range n {
		_, err := p.TryAcquire(ctx, fmt.Sprint("new", i), "t", time.Hour)
		require.NoError(t, err)
	}
	assert.Equal(t, n, p.Len())
	stored := 0
	for i := range p.shards {
		stored += len(p.shards[i].locks)
	}
	// Each shard sweeps when its map doubles, so at most twice the live
	// entries (plus the minimum per shard) remain.
	assert.LessOrEqual(t, stored, 2*n+shardCount*minSweepAt)
	assert.Less(t, stored, 2*n, "lapsed entries must be reclaimed, not just bounded")
}

func TestTestHelpers(t *testing.T) {
	p := New()
	defer p.Close()
	ctx := context.Background()
	assert.False(t, p.IsLocked("a"))
	_, err := p.TryAcquire(ctx, "a", "ta", time.Minute)
	require.NoError(t, err)
	_, err = p.TryAcquire(ctx, "b", "tb", time.Minute)
	require.NoError(t, err)
	assert.True(t, p.IsLocked("a"))
	tok, ok := p.Holder("b")
	assert.True(t, ok)
	assert.Equal(t, "tb", tok)
	assert.Equal(t, 2, p.Len())
	p.Clear()
	assert.Equal(t, 0, p.Len())
	assert.False(t, p.IsLocked("a"))
	_, ok = p.Holder("b")
	assert.False(t, ok)
}

func TestCloseFailsWaiters(t *testing.T) {
	p := New()
	ctx := context.Background()
	_, err := p.TryAcquire(ctx, "k", "holder", time.Minute)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Acquire(ctx, "k", "waiter", time.Minute)
		errc <- err
	}()
	waitQueued(t, p, "k", 1)
	require.NoError(t, p.Close())
	assert.ErrorIs(t, <-errc, provider.ErrClosed)
}

// BenchmarkUncontended compares an uncontended TryAcquire+Release with a
// sync.Mutex Lock+Unlock in the same run; the ratio is the number to watch.
func BenchmarkUncontended(b *testing.B) {
	b.Run("syncMutex", func(b *testing.B) {
		var mu sync.Mutex
		for b.Loop() {
			mu.Lock()
			mu.Unlock() //nolint:staticcheck // the empty section is the point
		}
	})
	b.Run("memprovider", func(b *testing.B) {
		p := New()
		defer p.Close()
		ctx := context.Background()
		for b.Loop() {
			if _, err := p.TryAcquire(ctx, "bench", "token", time.Minute); err != nil {
				b.Fatal(err)
			}
			if err := p.Release(ctx, "bench", "token"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
