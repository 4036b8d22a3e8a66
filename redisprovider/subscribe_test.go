package redisprovider_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// A waiter whose own deadline is too short to subscribe must not make the
// provider give up on wake-ups: the next waiter, with time to spare, is
// still woken by the release. Fallback polling is an hour here, so only a
// wake-up can end the second wait before the test's deadline.
func TestHurriedWaiterKeepsWakeUps(t *testing.T) {
	c := redistest.Server(t).Client(t)
	p := newProvider(t, c, &redisprovider.Options{PollInterval: time.Hour})
	ctx := t.Context()
	if _, err := p.TryAcquire(ctx, "k", "holder", time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 5 { // each is cut short while it subscribes
		hurried, cancel := context.WithTimeout(ctx, time.Microsecond)
		_, err := p.Acquire(hurried, "k", "hurried", time.Minute)
		cancel()
		if !errors.Is(err, provider.ErrNotAcquired) && !errors.Is(err, provider.ErrOutcomeUnknown) {
			t.Fatalf("hurried Acquire = %v; want a refusal or an unknown outcome", err)
		}
	}

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second) // far below the hour of polling
	defer cancel()
	got := make(chan error, 1)
	go func() {
		_, err := p.Acquire(wctx, "k", "patient", time.Minute)
		got <- err
	}()
	eventually(t, "the patient waiter queues", 20*time.Second, func() error {
		q, err := c.LRange(ctx, p.DataKey("k", "queue"), 0, -1).Result()
		if err != nil {
			return err
		}
		if !slices.Contains(q, "patient") {
			return fmt.Errorf("queue %v", q)
		}
		return nil
	})
	if err := p.Release(ctx, "k", "holder"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the patient waiter was not woken by the release: %v", err)
	}
}
