package providertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lockproof/lockproof/provider"
)

// testLocalClock checks what a provider.LocalClock promises; other
// providers skip it.
func (s suite) testLocalClock(t *testing.T) {
	p := s.provider(t)
	lc, ok := p.(provider.LocalClock)
	if !ok {
		t.Skip("not a provider.LocalClock")
	}
	ctx := context.Background()
	within := func(t *testing.T, at, before, after time.Time, what string) {
		t.Helper()
		if at.Before(before) || at.After(after) {
			t.Fatalf("%s: reading %v is outside the call [%v, %v]", what, at, before, after)
		}
	}

	t.Run("ExactGrants", func(t *testing.T) {
		key, tok := newKey(t, "k"), newToken("a")
		before := time.Now()
		g, err := p.TryAcquire(ctx, key, tok, longTTL)
		after := time.Now()
		if err != nil {
			t.Fatalf("TryAcquire: %v", err)
		}
		within(t, g.Expires.Add(-longTTL), before, after, "TryAcquire's Expires − TTL")
		before = time.Now()
		g, err = p.Extend(ctx, key, tok, 2*longTTL)
		after = time.Now()
		if err != nil {
			t.Fatalf("Extend: %v", err)
		}
		within(t, g.Expires.Add(-2*longTTL), before, after, "Extend's Expires − TTL")
	})

	t.Run("ReleaseAt", func(t *testing.T) {
		key, tok := newKey(t, "k"), newToken("a")
		if _, err := p.TryAcquire(ctx, key, tok, longTTL); err != nil {
			t.Fatalf("TryAcquire: %v", err)
		}
		before := time.Now()
		at, err := lc.ReleaseAt(ctx, key, newToken("other"))
		after := time.Now()
		if !errors.Is(err, provider.ErrNotHeld) {
			t.Fatalf("ReleaseAt by another token = %v, want ErrNotHeld", err)
		}
		within(t, at, before, after, "refused ReleaseAt")
		if st, err := p.State(ctx, key); err != nil || st.Token != tok {
			t.Fatalf("after a refused ReleaseAt: State = %+v, %v; want still held by %q", st, err, tok)
		}
		for _, c := range []struct{ key, token string }{{"", tok}, {key, ""}} {
			at, err := lc.ReleaseAt(ctx, c.key, c.token)
			if !errors.Is(err, provider.ErrInvalid) || !at.IsZero() {
				t.Fatalf("ReleaseAt(%q, %q) = %v, %v; want the zero Time and ErrInvalid", c.key, c.token, at, err)
			}
		}
		before = time.Now()
		at, err = lc.ReleaseAt(ctx, key, tok)
		after = time.Now()
		if err != nil {
			t.Fatalf("ReleaseAt by the holder: %v", err)
		}
		within(t, at, before, after, "ReleaseAt")
		if st, err := p.State(ctx, key); err != nil || st.Held {
			t.Fatalf("after ReleaseAt: State = %+v, %v; want free", st, err)
		}
	})

	// A hold ends at its Expires, not later: a release that frees it read
	// the clock before Expires, one that finds it lapsed at or after. TTLs
	// of microseconds put the release on both sides of the deadline.
	t.Run("ReleaseDecidesAtExpires", func(t *testing.T) {
		key := newKey(t, "k")
		for i := range 400 {
			tok := newToken("a")
			ttl := time.Duration(1+i%40) * time.Microsecond
			g, err := p.TryAcquire(ctx, key, tok, ttl)
			if err != nil {
				t.Fatalf("TryAcquire %d: %v", i, err)
			}
			at, err := lc.ReleaseAt(ctx, key, tok)
			switch {
			case err == nil && !at.Before(g.Expires):
				t.Fatalf("release %d freed the hold at %v, not before its Expires %v", i, at, g.Expires)
			case err != nil && !errors.Is(err, provider.ErrNotHeld):
				t.Fatalf("release %d: %v", i, err)
			case err != nil && at.Before(g.Expires):
				t.Fatalf("release %d found the hold lapsed at %v, before its Expires %v", i, at, g.Expires)
			}
		}
	})
}
