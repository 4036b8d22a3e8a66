package memprovider_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
)

// job is a lockable entity for the tests of this file.
type job struct{ Name string }

func (*job) Kind() string { return "job" }
func (j *job) ID() string { return j.Name }

// TestCheckLocalEndsWithTheStoreHold checks the invariant "when B holds the
// key, A's lapsed proof fails CheckLocal": the local deadline of a proof
// must end no later than the store's own expiry (issue 8, item 6).
//
// A takes a key with a 1 ms TTL; B spins on TryAcquire, so B is granted the
// first instant the store lets A's hold go, typically before the timer that
// cancels A's Context has run. Right after B's grant, A.CheckLocal must
// fail. Nothing here depends on how long anything takes: each iteration
// checks the invariant at the one moment it is most likely to break, and a
// correct implementation satisfies it on every iteration however the
// goroutines are scheduled.
func TestCheckLocalEndsWithTheStoreHold(t *testing.T) {
	p := memprovider.New()
	defer p.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := t.Context()

	const iterations = 300
	violations := 0
	for i := range iterations {
		name := fmt.Sprint("handover-", i)
		a, err := locked.TryAcquire(ctx, svc, &job{Name: name}, locked.WithTTL(time.Millisecond))
		if err != nil {
			t.Fatalf("iteration %d: A's TryAcquire = %v", i, err)
		}
		var b *locked.Locked[*job]
		for spins := 0; ; spins++ {
			b, err = locked.TryAcquire(ctx, svc, &job{Name: name}, locked.WithTTL(time.Minute))
			if err == nil {
				break
			}
			if !errors.Is(err, locked.ErrNotAcquired) || spins > 10_000_000 {
				t.Fatalf("iteration %d: B's TryAcquire after %d tries = %v", i, spins, err)
			}
		}
		if err := a.CheckLocal(); err == nil {
			violations++
		} else if !errors.Is(err, locked.ErrNotHeld) {
			t.Fatalf("iteration %d: A's CheckLocal after B's grant = %v, want an error matching ErrNotHeld", i, err)
		}
		if err := b.CheckLocal(); err != nil {
			t.Fatalf("iteration %d: B's CheckLocal = %v, want nil", i, err)
		}
		_ = a.Close() // lapsed: ErrNotHeld
		if err := b.Close(); err != nil {
			t.Fatalf("iteration %d: B's Close = %v", i, err)
		}
	}
	if violations > 0 {
		t.Fatalf("in %d of %d hand-overs at expiry, A's lapsed proof passed CheckLocal while B held the key", violations, iterations)
	}
}
