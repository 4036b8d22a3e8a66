package redisrepo_test

// Kill/restart tests (issue 8): the redis-server of the locks and records
// killed with SIGKILL and started again on the same port and data
// directory, with AOF (appendfsync always) and without persistence. The
// stack (client, provider, Service, repository) is the same before and
// after: go-redis reconnects by itself. No step waits for time to pass:
// each waits for an event (the proxy saw the request, the process was
// reaped, the server answers PING).

import (
	"context"
	"errors"
	"testing"

	"github.com/lockproof/lockproof/internal/faultproxy"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
)

// saveN sets N and saves it under l, failing t on an error.
func saveN(t *testing.T, s stack, l *locked.Locked[*entity], n int64) {
	t.Helper()
	l.Entity().N = n
	if err := s.repo.Save(t.Context(), l); err != nil {
		t.Fatalf("Save N=%d: %v", n, err)
	}
}

// TestRestartAOFKeepsRecords: with AOF always, records, holds and fences
// survive a crash: the proof taken before it still saves, and the next
// holder's fence is above it.
func TestRestartAOFKeepsRecords(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t, redistest.AOFAlways)
	s := newStack(t, node.Client(t), "") // go-redis defaults, with ContextTimeoutEnabled
	e := insert(t, s, 1)
	l := load(t, s.svc, s.repo, e.Key)
	saveN(t, s, l, 2)

	node.Crash(t)

	wantN(t, s, e.Key, 2, "after the crash")
	saveN(t, s, l, 3) // the hold survived: the proof still writes
	wantN(t, s, e.Key, 3, "after a Save by the proof from before the crash")
	if err := l.Close(); err != nil {
		t.Fatalf("releasing the proof from before the crash: %v", err)
	}
	l2 := load(t, s.svc, s.repo, e.Key)
	if l2.Fence() <= l.Fence() {
		t.Fatalf("fence after the crash = %d, want above %d", l2.Fence(), l.Fence())
	}
	saveN(t, s, l2, 4)
	wantIs(t, "Save by the released proof", s.repo.Save(t.Context(), l), locked.ErrNotHeld)
	wantN(t, s, e.Key, 4, "after the new holder's Save")
}

// TestRestartAOFWriteInFlight: a Save or Delete whose request is in
// flight when Redis is killed (it ran and its reply was lost, or it never
// reached Redis) answers truthfully, as the record shows once Redis is
// back: never success for a write that did not apply, never
// ErrUnavailable alone (nothing changed) for one that did, never a
// definite refusal.
func TestRestartAOFWriteInFlight(t *testing.T) {
	t.Parallel()
	for _, op := range []string{"Save", "Delete"} {
		for _, tc := range []struct {
			name    string
			dir     faultproxy.Direction // which chunk the proxy drops before the kill
			applied bool                 // whether the write ran before the kill
		}{
			{"RanReplyLost", faultproxy.Downstream, true},
			{"RequestLost", faultproxy.Upstream, false},
		} {
			t.Run(op+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				node := redistest.Server(t, redistest.AOFAlways)
				px, c := redistest.Proxied(t, node) // re-sends after the kill too
				s := newStack(t, c, "")
				admin := newStack(t, node.Client(t), "") // bypasses the proxy
				e := insert(t, s, 1)
				l := load(t, s.svc, s.repo, e.Key)
				saveN(t, s, l, 2) // scripts cached: the request is the script's execution
				l.Entity().N = 3
				err := inFlightAtKill(t, node, px, tc.dir, e.Key, func(ctx context.Context) error {
					if op == "Delete" {
						return s.repo.Delete(ctx, l)
					}
					return s.repo.Save(ctx, l)
				})
				node.Start(t)
				got, ferr := admin.repo.Find(t.Context(), e.Key)
				var applied bool
				switch op {
				case "Save":
					if ferr != nil || got.N != 2 && got.N != 3 {
						t.Fatalf("record after the restart = %+v, %v; want N 2 (not applied) or 3 (applied)", got, ferr)
					}
					applied = got.N == 3
				case "Delete":
					if ferr != nil && !errors.Is(ferr, repository.ErrNotFound) || ferr == nil && got.N != 2 {
						t.Fatalf("record after the restart = %+v, %v; want N 2 (not applied) or none (applied)", got, ferr)
					}
					applied = ferr != nil
				}
				if applied != tc.applied {
					t.Fatalf("after the restart the %s applied=%v, want %v: the fault did not do what the test needs (err %v)", op, applied, tc.applied, err)
				}
				truthful(t, op+" in flight at the kill", err, applied)
				t.Logf("%s in flight at the kill = %v; applied %v", op, err, applied)
				// The same stack works on, and the proof's hold survived.
				l.Entity().N = 4
				switch {
				case op == "Delete" && applied:
					wantIs(t, "Delete after the restart", s.repo.Delete(t.Context(), l), repository.ErrNotFound)
				default:
					saveN(t, s, l, 4)
					wantN(t, admin, e.Key, 4, "after a Save following the restart")
				}
			})
		}
	}
}

// TestRestartWithoutPersistence: a server without persistence comes back
// empty, and every answer is still true: the record is gone (Find:
// ErrNotFound), the proof's hold is gone (Save: ErrNotHeld, nothing
// written), and fences start again at 1 (decision 16). A record that kept
// a higher fence (here restored from a backup taken before the crash, as
// it would survive in a store that persists while the lock counters do
// not) refuses every new holder with ErrStale: safe, but stuck, until the
// fence counter is restored with it.
func TestRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	node := redistest.Server(t) // --save "" --appendonly no
	admin := node.Client(t)
	s := newStack(t, node.Client(t), "")
	ctx := t.Context()
	e := insert(t, s, 0)
	var fence uint64
	for i := range int64(3) { // the record ends with fence 3
		l := load(t, s.svc, s.repo, e.Key)
		saveN(t, s, l, i+1)
		fence = l.Fence()
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if fence != 3 {
		t.Fatalf("fence of the third holder = %d, want 3", fence)
	}
	recordKey, err := s.repo.EntityKey(e.Key)
	if err != nil {
		t.Fatal(err)
	}
	fenceKey := s.p.FenceCounter("rtest:" + e.Key)
	if n := admin.Exists(ctx, recordKey, fenceKey).Val(); n != 2 {
		t.Fatalf("EXISTS %s %s = %d, want 2 (the layout changed?)", recordKey, fenceKey, n)
	}
	backup, err := admin.Dump(ctx, recordKey).Result() // an operator's backup of the record
	if err != nil {
		t.Fatal(err)
	}
	counter, err := admin.Dump(ctx, fenceKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	l := load(t, s.svc, s.repo, e.Key) // held across the crash

	node.Crash(t)

	if n, err := admin.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE after a restart without persistence = %d, %v; want 0", n, err)
	}
	_, err = s.repo.Find(ctx, e.Key)
	wantIs(t, "Find after the restart", err, repository.ErrNotFound)
	l.Entity().N = 10
	err = s.repo.Save(ctx, l)
	wantIs(t, "Save by the proof whose hold was lost", err, locked.ErrNotHeld)
	if errors.Is(err, locked.ErrUnavailable) {
		t.Fatalf("Save by the lost proof = %v: want a definite refusal", err)
	}
	if n := admin.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("DBSIZE after the refused Save = %d, want 0 (nothing written)", n)
	}

	// The record comes back with its fence 3; the counter does not.
	if err := admin.Restore(ctx, recordKey, 0, backup).Err(); err != nil {
		t.Fatal(err)
	}
	l2 := load(t, s.svc, s.repo, e.Key)
	if l2.Fence() != 1 {
		t.Fatalf("fence after the restart = %d, want 1: without persistence the counter starts again", l2.Fence())
	}
	l2.Entity().N = 20
	wantIs(t, "Save by a new holder under a record of a higher fence", s.repo.Save(ctx, l2), repository.ErrStale, locked.ErrNotHeld)
	wantIs(t, "Delete by a new holder under a record of a higher fence", s.repo.Delete(ctx, l2), repository.ErrStale)
	wantN(t, s, e.Key, 3, "after the refused writes")
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}

	// Restoring the counter with the record unsticks it.
	if err := admin.RestoreReplace(ctx, fenceKey, 0, counter).Err(); err != nil {
		t.Fatal(err)
	}
	l3 := load(t, s.svc, s.repo, e.Key)
	if l3.Fence() <= fence {
		t.Fatalf("fence after restoring the counter = %d, want above %d", l3.Fence(), fence)
	}
	saveN(t, s, l3, 30)
	wantN(t, s, e.Key, 30, "after restoring the counter")
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

// truthful fails t if err is a false answer for a write whose effect is
// (applied) or is not in the store: success must have applied,
// ErrUnavailable without ErrOutcomeUnknown must not have, and a definite
// refusal is false either way, since the proof was entitled to write.
func truthful(t *testing.T, what string, err error, applied bool) {
	t.Helper()
	for _, r := range []error{locked.ErrNotHeld, repository.ErrNotFound, repository.ErrStale, repository.ErrExists} {
		if errors.Is(err, r) {
			t.Fatalf("%s = %v: a definite refusal, but the proof was entitled to write (applied: %v)", what, err, applied)
		}
	}
	switch {
	case err == nil && !applied:
		t.Fatalf("%s reported success, but its effect is not in the store", what)
	case errors.Is(err, locked.ErrOutcomeUnknown):
	case errors.Is(err, locked.ErrUnavailable) && applied:
		t.Fatalf("%s = %v: ErrUnavailable says nothing changed, but its effect is in the store", what, err)
	case err != nil && !errors.Is(err, locked.ErrUnavailable):
		t.Fatalf("%s = %v: not one of the three classes", what, err)
	}
}
