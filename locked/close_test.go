package locked_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
)

// Close ends the acquires waiting on a key it is about to free, and waits
// for them: when it returns, no waiter has been handed the key behind its
// back, so closing the provider next (as documented) leaves nothing held.
func TestCloseEndsWaitersBeforeReleasing(t *testing.T) {
	for round := range 50 {
		p := memprovider.New()
		svc, err := locked.New(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		key := uniqueKey(t, "k")
		held, err := svc.Acquire(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		const waiters = 4
		var wg sync.WaitGroup
		errs := make(chan error, waiters)
		queued := make(chan struct{}, waiters)
		for range waiters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				queued <- struct{}{}
				l, err := svc.Acquire(context.Background(), key)
				if err == nil {
					l.Close()
				}
				errs <- err
			}()
		}
		for range waiters {
			<-queued
		}
		if err := svc.Close(); err != nil {
			t.Fatal(err)
		}
		if p.IsLocked(key) {
			t.Fatalf("round %d: %s still held when Service.Close returned", round, key)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil && !errors.Is(err, locked.ErrClosed) {
				t.Fatalf("round %d: a waiter ended with %v; want nil or ErrClosed", round, err)
			}
		}
		p.Close()
	}
}

// A lease that lapses is counted in Stats before its Context ends, so a
// caller woken by Done reads the count that includes it.
func TestLostCountedBeforeDone(t *testing.T) {
	p := memprovider.New()
	t.Cleanup(func() { p.Close() })
	svc, err := locked.New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	key := uniqueKey(t, "k")
	for i := range 200 {
		l, err := svc.TryAcquire(t.Context(), key, locked.WithTTL(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		<-l.Context().Done()
		if got := svc.Stats().Lost; got != uint64(i+1) {
			t.Fatalf("lapse %d: Stats().Lost = %d once the Context had ended", i+1, got)
		}
		l.Close()
	}
}
