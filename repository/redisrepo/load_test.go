package redisrepo_test

// Lock and load: locked.Load through redisrepo on redisprovider reads the
// record in the acquire script (one round trip, nothing written between
// grant and read), falls back to Find for other lock stores, and keeps
// Load's errors and outcome classes.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/faultproxy"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

// loggedStack is a stack on a client of a new server that records its
// commands, with its scripts cached.
func loggedStack(t *testing.T) (stack, *redistest.CommandLog) {
	t.Helper()
	node := redistest.Server(t)
	c := redis.NewClient(&redis.Options{Addr: node.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	log := redistest.LogCommands(c)
	s := newStack(t, c, "")
	warm := insert(t, s, 0) // caches the scripts: each call below is one EVALSHA
	l := load(t, s.svc, s.repo, warm.Key)
	if err := s.repo.Save(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := locked.Load(t.Context(), s.svc, s.repo, uuid.NewString()); !errors.Is(err, repository.ErrNotFound) {
		t.Fatal(err)
	}
	l = load(t, s.svc, finderOnly{s.repo}, warm.Key) // the plain acquire script
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	log.Take()
	return s, log
}

// finderOnly hides every method of a repository but Find: Load's path
// before lock and load.
type finderOnly struct {
	r *redisrepo.Repository[*entity]
}

func (f finderOnly) Find(ctx context.Context, id string) (*entity, error) { return f.r.Find(ctx, id) }

func wantCmds(t *testing.T, what string, log *redistest.CommandLog, want ...string) {
	t.Helper()
	if got := log.Take(); !slices.Equal(got, want) {
		t.Fatalf("%s sent %v, want %v", what, got, want)
	}
}

// TestLoadOneRoundTrip: Load is one EVALSHA (the lock and the read), and
// the cycle Load, Save, Close three; the proof saves. Through a plain
// Finder the same Load takes two round trips, the lock and an HGET.
// LoadAll is one round trip per entity.
func TestLoadOneRoundTrip(t *testing.T) {
	s, log := loggedStack(t)
	ctx := t.Context()
	e := insert(t, s, 7)
	log.Take()

	l, err := locked.Load(ctx, s.svc, s.repo, e.Key)
	if err != nil {
		t.Fatal(err)
	}
	wantCmds(t, "Load", log, "evalsha")
	if l.Entity().N != 7 || !slices.Equal(l.Entity().Tags, []string{"x"}) || l.Entity().Key != e.Key {
		t.Fatalf("Load returned %+v, want the stored %+v", l.Entity(), e)
	}
	l.Entity().N++
	if err := s.repo.Save(ctx, l); err != nil {
		t.Fatalf("Save with the loaded proof: %v", err)
	}
	wantCmds(t, "Save", log, "evalsha")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantCmds(t, "Close", log, "evalsha")
	wantN(t, s, e.Key, 8, "after the cycle")
	log.Take()

	l, err = locked.Load(ctx, s.svc, finderOnly{s.repo}, e.Key)
	if err != nil {
		t.Fatal(err)
	}
	wantCmds(t, "Load through a plain Finder", log, "evalsha", "hget")
	if l.Entity().N != 8 {
		t.Fatalf("N = %d, want 8", l.Entity().N)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	log.Take()

	ids := []string{insert(t, s, 1).Key, insert(t, s, 2).Key, insert(t, s, 3).Key}
	log.Take()
	ls, err := locked.LoadAll(ctx, s.svc, s.repo, ids)
	if err != nil {
		t.Fatal(err)
	}
	wantCmds(t, "LoadAll of three", log, "evalsha", "evalsha", "evalsha")
	for i, l := range ls {
		if l.Entity().Key != ids[i] || l.Entity().N != int64(i+1) {
			t.Fatalf("LoadAll[%d] = %+v, want %s with N %d", i, l.Entity(), ids[i], i+1)
		}
		_ = l.Close()
	}
}

// TestLoadMissingOrForeignReleases: Load of a missing record returns
// repository.ErrNotFound, of a foreign value ErrForeign, and either way
// the lock is released (one more round trip); so does LoadAll, for every
// lock it took.
func TestLoadMissingOrForeignReleases(t *testing.T) {
	s, log := loggedStack(t)
	ctx := t.Context()
	missing := uuid.NewString()
	_, err := locked.Load(ctx, s.svc, s.repo, missing)
	wantIs(t, "Load of a missing record", err, repository.ErrNotFound)
	wantCmds(t, "Load of a missing record", log, "evalsha", "evalsha")
	wantFree(t, s, missing)

	foreign := uuid.NewString()
	key, _ := s.repo.EntityKey(foreign)
	if err := s.c.Set(ctx, key, "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = locked.Load(ctx, s.svc, s.repo, foreign)
	wantIs(t, "Load of a foreign value", err, redisrepo.ErrForeign)
	wantFree(t, s, foreign)
	if v, err := s.c.Get(ctx, key).Result(); err != nil || v != "not a hash" {
		t.Fatalf("the foreign value is now %q, %v", v, err)
	}

	e := insert(t, s, 1)
	log.Take()
	_, err = locked.LoadAll(ctx, s.svc, s.repo, []string{e.Key, missing})
	wantIs(t, "LoadAll with a missing record", err, repository.ErrNotFound)
	wantFree(t, s, e.Key)
	wantFree(t, s, missing)
}

func wantFree(t *testing.T, s stack, id string) {
	t.Helper()
	held, err := s.svc.IsLocked(t.Context(), "rtest:"+id)
	if err != nil || held {
		t.Fatalf("IsLocked(%s) = %v, %v: Load left the lock held", id, held, err)
	}
}

// TestLoadReadsAtTheGrant: a writer that ignores the lock (a raw HSET)
// writes the record right after the acquire ran in Redis, before its reply
// reaches the client. Lock and load read the record in that same script,
// so the entity is the record as of the grant; through a plain Finder, the
// write lands between the grant and the read, and the read sees it.
func TestLoadReadsAtTheGrant(t *testing.T) {
	s := newProxiedStack(t)
	for _, tc := range []struct {
		name   string
		finder locked.Finder[*entity]
		want   int64
	}{
		{"LockAndLoad", s.repo, 1},
		{"PlainFinder", finderOnly{s.repo}, 99},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := insert(t, s.stack, 1)
			key, _ := s.repo.EntityKey(e.Key)
			fired := s.proxy.Fired()
			s.proxy.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Pass, Match: []byte(e.Key), Times: 1,
				OnFire: func() {
					if err := s.admin.HSet(context.Background(), key, "d", `{"Key":"`+e.Key+`","N":99}`).Err(); err != nil {
						t.Errorf("the raw write: %v", err)
					}
				}})
			l := load(t, s.svc, tc.finder, e.Key)
			if s.proxy.Fired() == fired {
				t.Fatal("the write did not run")
			}
			if l.Entity().N != tc.want {
				t.Fatalf("Load read N = %d, want %d", l.Entity().N, tc.want)
			}
		})
	}
}

// TestLoadWaitsAndReadsAtTheGrant: a Load that waits for the holder reads
// in the try that grants, after the holder's Save and Close, with no
// separate read.
func TestLoadWaitsAndReadsAtTheGrant(t *testing.T) {
	s, log := loggedStack(t)
	ctx := t.Context()
	e := insert(t, s, 1)
	a := load(t, s.svc, s.repo, e.Key)
	other := newService(t, s.p, "")
	type result struct {
		l   *locked.Locked[*entity]
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := locked.Load(ctx, other, s.repo, e.Key, locked.WithTimeout(30*time.Second))
		done <- result{l, err}
	}()
	queue := s.p.DataKey("rtest:"+e.Key, "queue") // the provider's waiter queue
	deadline := time.Now().Add(30 * time.Second)
	for n, _ := s.c.LLen(ctx, queue).Result(); n != 1; n, _ = s.c.LLen(ctx, queue).Result() {
		if time.Now().After(deadline) {
			t.Fatal("the second Load never queued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.Entity().N = 5
	if err := s.repo.Save(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Close()
	if r.l.Entity().N != 5 || r.l.Fence() <= a.Fence() {
		t.Fatalf("the waiter loaded N %d with fence %d, want 5 with a fence above %d", r.l.Entity().N, r.l.Fence(), a.Fence())
	}
	if slices.Contains(log.Take(), "hget") {
		t.Fatal("the waiting Load read with a separate HGET")
	}
}

// TestLoadOtherStoreFallsBack: a Service of another lock store than the
// repository's (another Provider on the same client, another namespace)
// gets no read from the repository: Load locks in that store and reads
// with Find (two round trips), and the repository refuses the proof's
// Save as before. A Service on another provider type is declined too.
func TestLoadOtherStoreFallsBack(t *testing.T) {
	s, log := loggedStack(t)
	ctx := t.Context()
	e := insert(t, s, 3)
	for name, svc := range map[string]*locked.Service{
		"another Provider":  newService(t, newProvider(t, s.c), ""),
		"another namespace": newService(t, s.p, "other"),
	} {
		log.Take()
		l, err := locked.Load(ctx, svc, s.repo, e.Key)
		if err != nil {
			t.Fatalf("%s: Load: %v", name, err)
		}
		wantCmds(t, name+": Load", log, "evalsha", "hget")
		if l.Entity().N != 3 {
			t.Fatalf("%s: N = %d, want 3", name, l.Entity().N)
		}
		wantIs(t, name+": Save", s.repo.Save(ctx, l), locked.ErrNotHeld, locked.ErrInvalid)
		_ = l.Close()
	}
	mp := memprovider.New()
	t.Cleanup(func() { _ = mp.Close() })
	mem, err := locked.New(mp, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mem.Close() })
	if _, ok := s.repo.ReadFor(mem, e.Key); ok {
		t.Fatal("ReadFor a memprovider Service = true")
	}
	if _, ok := s.repo.ReadFor(s.svc, ""); ok {
		t.Fatal("ReadFor an empty ID = true")
	}
	rd, _ := s.repo.ReadFor(s.svc, e.Key)
	if _, err := s.repo.Loaded(e.Key, rd); !errors.Is(err, locked.ErrInvalid) {
		t.Fatalf("Loaded of a read no grant carried = %v, want ErrInvalid", err)
	}
	if _, err := s.repo.Loaded("other-id", rd); !errors.Is(err, locked.ErrInvalid) {
		t.Fatalf("Loaded of another record's read = %v, want ErrInvalid", err)
	}
}

// TestLoadOutcomes: Load under faults of its one request: a lost reply
// that go-redis re-sends loads (the re-execution returns the same hold and
// reads); a dropped reply or request is ErrOutcomeUnknown, never a
// refusal, and the provider's give-up frees the hold it may have taken.
func TestLoadOutcomes(t *testing.T) {
	s := newProxiedStack(t)
	for _, tc := range []struct {
		name    string
		rule    func(id string) faultproxy.Rule
		unknown bool
	}{
		{"ReplyLostThenResent", func(id string) faultproxy.Rule {
			return faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Reset, Match: []byte(id), Times: 1}
		}, false},
		{"ReplyDropped", func(id string) faultproxy.Rule {
			return faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Drop, Match: []byte(id), Times: 1}
		}, true},
		{"RequestDropped", func(id string) faultproxy.Rule {
			return faultproxy.Rule{Dir: faultproxy.Upstream, Fault: faultproxy.Drop, Match: []byte(id), Times: 1}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := insert(t, s.stack, 4)
			if err := s.c.Ping(t.Context()).Err(); err != nil { // a pooled connection
				t.Fatal(err)
			}
			fired := s.proxy.Fired()
			s.proxy.Set(tc.rule(e.Key))
			ctx, cancel := context.WithTimeout(t.Context(), faultBound)
			if tc.unknown {
				cancel()
				ctx, cancel = context.WithTimeout(t.Context(), faultCtx)
			}
			l, err := locked.Load(ctx, s.svc, s.repo, e.Key)
			if err == nil {
				defer l.Close()
			}
			cancel()
			s.proxy.Clear()
			if s.proxy.Fired() == fired {
				t.Fatalf("the fault did not fire (err %v)", err)
			}
			if !tc.unknown {
				if err != nil {
					t.Fatalf("Load after a lost reply that go-redis re-sent = %v, want success", err)
				}
				if l.Entity().N != 4 {
					t.Fatalf("N = %d, want 4", l.Entity().N)
				}
				l.Entity().N = 5
				if err := s.repo.Save(t.Context(), l); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantIs(t, "Load", err, locked.ErrOutcomeUnknown, context.DeadlineExceeded)
			if errors.Is(err, locked.ErrNotAcquired) || errors.Is(err, repository.ErrNotFound) {
				t.Fatalf("Load = %v: a definite answer for an unknown outcome", err)
			}
			deadline := time.Now().Add(faultBound)
			for {
				held, err := s.svc.IsLocked(t.Context(), "rtest:"+e.Key)
				if err == nil && !held {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the lost acquire's hold was not undone: held %v, %v", held, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestLoadConcurrent: goroutines of two Services cycle Load, N++, Save,
// Close on one record; every increment lands (no lost update) and no
// cycle read with a separate HGET.
func TestLoadConcurrent(t *testing.T) {
	s, log := loggedStack(t)
	other := newService(t, s.p, "")
	e := insert(t, s, 0)
	const workers, cycles = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		svc := s.svc
		if w%2 == 1 {
			svc = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range cycles {
				l, err := locked.Load(t.Context(), svc, s.repo, e.Key, locked.WithTimeout(30*time.Second))
				if err != nil {
					errs <- err
					return
				}
				l.Entity().N++
				err = s.repo.Save(t.Context(), l)
				if cerr := l.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if slices.Contains(log.Take(), "hget") {
		t.Fatal("a Load read with a separate HGET")
	}
	wantN(t, s, e.Key, workers*cycles, "after the cycles")
}

// TestLoadCluster: on a Cluster the record shares its lock's hash tag, so
// the lock-and-load script runs in one slot: Load is one EVALSHA there too.
func TestLoadCluster(t *testing.T) {
	c := redistest.Cluster(t, 3).Client(t)
	log := redistest.LogCommands(c)
	s := newStack(t, c, "app")
	ctx := t.Context()
	e := insert(t, s, 2)
	l := load(t, s.svc, s.repo, e.Key) // loads the script on the record's node
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	log.Take()
	l = load(t, s.svc, s.repo, e.Key)
	wantCmds(t, "Load on a Cluster", log, "evalsha")
	if l.Entity().N != 2 {
		t.Fatalf("N = %d, want 2", l.Entity().N)
	}
	l.Entity().N = 3
	if err := s.repo.Save(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	wantN(t, s, e.Key, 3, "after the cycle")
}
