package redisprovider_test

// Kill/restart tests (issue 8): a redis-server killed with SIGKILL and
// started again on the same port and data directory, with AOF
// (appendfsync always) and without persistence. The provider and its
// client are the same before and after: go-redis reconnects by itself.
// Nothing here waits for time to pass: each step waits for an event (the
// proxy saw the request, the process was reaped, the server answers PING).

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/internal/faultproxy"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/provider"
)

// TestRestartAOFKeepsHoldsAndFences: with AOF always, a hold survives a
// crash (its holder extends and releases it, others are refused), and
// fences continue above the last one; the same provider and client work
// again without being recreated.
func TestRestartAOFKeepsHoldsAndFences(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t, redistest.AOFAlways)
	c := node.Client(t) // go-redis defaults, with ContextTimeoutEnabled
	p := newProvider(t, c, nil)
	ctx := bounded(t, testBound)
	held, fenced := uniqueKey(t, "held"), uniqueKey(t, "fenced")
	g, err := p.TryAcquire(ctx, held, "holder", longTTL)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 3 {
		last = lifecycle(t, p, fenced)
	}

	node.Crash(t)

	if n := c.DBSize(ctx).Val(); n == 0 {
		t.Fatal("the store is empty after a crash with AOF always")
	}
	st, err := p.State(ctx, held)
	if err != nil || !st.Held || st.Token != "holder" || st.Fence != g.Fence || st.TTL <= 0 {
		t.Fatalf("State after the crash = %+v, %v; want held by holder with fence %d", st, err, g.Fence)
	}
	_, err = p.TryAcquire(ctx, held, "other", longTTL)
	wantErr(t, "TryAcquire of the surviving hold by another token", err, provider.ErrNotAcquired)
	if ge, err := p.Extend(ctx, held, "holder", longTTL); err != nil || ge.Fence != g.Fence {
		t.Fatalf("Extend of the surviving hold = %+v, %v; want fence %d", ge, err, g.Fence)
	}
	if err := p.Release(ctx, held, "holder"); err != nil {
		t.Fatalf("Release of the surviving hold: %v", err)
	}
	if f := lifecycle(t, p, fenced); f <= last {
		t.Fatalf("fence after the crash = %d, want above %d (the counter survived)", f, last)
	}
	g2, err := p.TryAcquire(ctx, held, "next", longTTL)
	if err != nil || g2.Fence <= g.Fence {
		t.Fatalf("TryAcquire after the release = %+v, %v; want a fence above %d", g2, err, g.Fence)
	}
}

// TestRestartWithoutPersistence: a server without persistence comes back
// empty. Every answer about the lost hold is still true (its holder's
// Release and Extend report ErrNotHeld, State reports it free, anyone may
// take it), and fences start again at 1 (decision 16): a store that kept
// a record of a higher fence refuses the new holders, see
// repository/redisrepo's TestRestartWithoutPersistence.
func TestRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t) // --save "" --appendonly no
	c := node.Client(t)
	p := newProvider(t, c, nil)
	ctx := bounded(t, testBound)
	held, fenced := uniqueKey(t, "held"), uniqueKey(t, "fenced")
	if _, err := p.TryAcquire(ctx, held, "holder", longTTL); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for range 3 {
		last = lifecycle(t, p, fenced)
	}
	if last != 3 {
		t.Fatalf("fence of the third hold = %d, want 3", last)
	}

	node.Crash(t)

	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after a restart without persistence = %d, %v; want 0", n, err)
	}
	if st, err := p.State(ctx, held); err != nil || st.Held {
		t.Fatalf("State of the lost hold = %+v, %v; want free", st, err)
	}
	wantErr(t, "Release by the holder of the lost hold", p.Release(ctx, held, "holder"), provider.ErrNotHeld)
	_, err := p.Extend(ctx, held, "holder", longTTL)
	wantErr(t, "Extend by the holder of the lost hold", err, provider.ErrNotHeld)
	if g, err := p.TryAcquire(ctx, held, "new", longTTL); err != nil || g.Fence != 1 {
		t.Fatalf("TryAcquire of the lost hold's key = %+v, %v; want granted with fence 1 (the counter is gone)", g, err)
	}
	if f := lifecycle(t, p, fenced); f != 1 {
		t.Fatalf("fence after the restart = %d, want 1: without persistence the counter starts again", f)
	}
}

// TestRestartAOFReleaseInFlight: a Release whose request is in flight
// when Redis is killed (it ran and its reply was lost, or it never reached
// Redis) answers truthfully, as the store shows once Redis is back: never
// success for a release that did not apply, never ErrUnavailable alone
// (nothing changed) for one that did, never a definite refusal.
func TestRestartAOFReleaseInFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		dir     faultproxy.Direction // which chunk the proxy drops before the kill
		applied bool                 // whether the release ran before the kill
	}{
		{"RanReplyLost", faultproxy.Downstream, true},
		{"RequestLost", faultproxy.Upstream, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			node := redistest.Server(t, redistest.AOFAlways)
			px, c := redistest.Proxied(t, node) // re-sends after the kill too
			p := newProvider(t, c, nil)
			admin := node.Client(t)
			lifecycle(t, p, uniqueKey(t, "warm")) // scripts cached: the request is the script's execution
			key, tok := uniqueKey(t, "k"), "tok-"+uuid.NewString()
			if _, err := p.TryAcquire(bounded(t, faultBound), key, tok, longTTL); err != nil {
				t.Fatal(err)
			}
			err := inFlightAtKill(t, node, px, tc.dir, key, func(ctx context.Context) error {
				return p.Release(ctx, key, tok)
			})
			node.Start(t)
			st := adminState(t, admin, key)
			freed := !st.Held
			if freed != tc.applied {
				t.Fatalf("after the restart the key is freed=%v, want %v: the fault did not do what the test needs (err %v)", freed, tc.applied, err)
			}
			truthful(t, "Release in flight at the kill", err, freed, provider.ErrNotHeld)
			t.Logf("Release in flight at the kill = %v; freed %v", err, freed)
			// The same provider works on: its holder's next Release is a
			// definite answer again.
			if tc.applied {
				wantErr(t, "Release after the restart", p.Release(bounded(t, faultBound), key, tok), provider.ErrNotHeld)
			} else if err := p.Release(bounded(t, faultBound), key, tok); err != nil {
				t.Fatalf("Release after the restart of the surviving hold: %v", err)
			}
		})
	}
}

// inFlightAtKill runs call with a long deadline, waits until the proxy
// drops the chunk in direction dir of the request naming key (Downstream:
// the request ran and its reply is lost; Upstream: the request never
// reaches Redis), kills node, and returns call's error. The node stays
// down.
func inFlightAtKill(t *testing.T, node *redistest.Node, px *faultproxy.Proxy, dir faultproxy.Direction, key string, call func(ctx context.Context) error) error {
	t.Helper()
	fired := make(chan struct{}, 1)
	px.Set(faultproxy.Rule{Dir: dir, Fault: faultproxy.Drop, Match: []byte(key), Times: 1,
		OnFire: func() { fired <- struct{}{} }})
	ctx, cancel := context.WithTimeout(context.Background(), faultBound) // the kill ends the call, not the deadline
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(ctx) }()
	select {
	case <-fired:
	case err := <-done:
		t.Fatalf("the call returned %v before the fault fired", err)
	}
	node.Kill(t)
	return <-done // bounded by ctx
}

// truthful fails t if err is a false answer for a call whose effect is
// (applied) or is not in the store: success must have applied,
// ErrUnavailable without ErrOutcomeUnknown must not have, and a definite
// refusal (one of refusals) is false either way, since the call was
// entitled to its effect.
func truthful(t *testing.T, what string, err error, applied bool, refusals ...error) {
	t.Helper()
	for _, r := range refusals {
		if errors.Is(err, r) {
			t.Fatalf("%s = %v: a definite refusal, but the call was entitled to apply (applied: %v)", what, err, applied)
		}
	}
	switch {
	case err == nil && !applied:
		t.Fatalf("%s reported success, but its effect is not in the store", what)
	case errors.Is(err, provider.ErrOutcomeUnknown):
	case errors.Is(err, provider.ErrUnavailable) && applied:
		t.Fatalf("%s = %v: ErrUnavailable says nothing changed, but its effect is in the store", what, err)
	case err != nil && !errors.Is(err, provider.ErrUnavailable):
		t.Fatalf("%s = %v: not one of the three classes", what, err)
	}
}
