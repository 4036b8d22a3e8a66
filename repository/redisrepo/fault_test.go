package redisrepo_test

// Fault tests: lost replies that go-redis re-sends, a write that times out
// in flight and still applies, a delayed duplicate, foreign values, codecs
// and exact fences, against a real redis-server behind internal/faultproxy.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/internal/faultproxy"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

const (
	faultBound = 10 * time.Second       // liveness bound, never a latency assertion
	faultCtx   = 300 * time.Millisecond // the deadline of a call that a fault makes wait
)

// proxiedStack is a stack whose client goes through a fault proxy and
// re-sends after a lost reply (MaxRetries 3), with an admin client that
// bypasses the proxy.
type proxiedStack struct {
	stack
	proxy *faultproxy.Proxy
	admin redis.UniversalClient
}

func newProxiedStack(t *testing.T) proxiedStack {
	t.Helper()
	node := redistest.Server(t)
	px, c := redistest.Proxied(t, node)
	s := proxiedStack{stack: newStack(t, c, ""), proxy: px, admin: node.Client(t)}
	warm := insert(t, s.stack, 0) // caches the scripts: faults hit executions, not NOSCRIPT
	l := load(t, s.svc, s.repo, warm.Key)
	if err := s.repo.Save(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	if err := s.repo.Delete(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	return s
}

// loseReply makes the proxy reset the connection instead of delivering
// the reply to the next request that names id, calling between() after the
// request ran and before the reply is lost. go-redis then re-sends.
func (s proxiedStack) loseReply(t *testing.T, id string, between func()) (fired func() bool) {
	t.Helper()
	before := s.proxy.Fired()
	s.proxy.Set(faultproxy.Rule{Dir: faultproxy.Downstream, Fault: faultproxy.Reset, Match: []byte(id), Times: 1, OnFire: between})
	return func() bool { return s.proxy.Fired() > before }
}

// TestResentWritesKeepTheirDecision: go-redis re-sends Save, Delete and
// Insert after their reply was lost; each reports the first execution's
// decision. Save's lease is even force-released between the execution
// and the re-sent one (the reported bug: ErrNotHeld after writing).
func TestResentWritesKeepTheirDecision(t *testing.T) {
	s := newProxiedStack(t)
	ctx := t.Context()

	t.Run("Insert", func(t *testing.T) {
		e := &entity{Key: uuid.NewString(), N: 1}
		fired := s.loseReply(t, e.Key, nil)
		if err := s.repo.Insert(ctx, e); err != nil {
			t.Fatalf("Insert re-sent after a lost reply = %v, want success (it stored the record)", err)
		}
		if !fired() {
			t.Fatal("the fault did not fire")
		}
		wantN(t, s.stack, e.Key, 1, "after Insert")
		wantIs(t, "a second Insert", s.repo.Insert(ctx, &entity{Key: e.Key}), repository.ErrExists)
	})

	t.Run("SaveLeaseLostBetween", func(t *testing.T) {
		e := insert(t, s.stack, 1)
		l := load(t, s.svc, s.repo, e.Key)
		l.Entity().N = 2
		fired := s.loseReply(t, e.Key, func() {
			// The lease ends in the store after the first execution.
			if _, err := s.p.ForceRelease(context.Background(), l.Key()); err != nil {
				t.Errorf("ForceRelease: %v", err)
			}
		})
		if err := s.repo.Save(ctx, l); err != nil {
			t.Fatalf("Save re-sent after a lost reply = %v, want success: its first execution wrote", err)
		}
		if !fired() {
			t.Fatal("the fault did not fire")
		}
		wantN(t, s.stack, e.Key, 2, "after Save")
		wantIs(t, "a new Save after the lease ended", s.repo.Save(ctx, l), locked.ErrNotHeld)
	})

	t.Run("Delete", func(t *testing.T) {
		e := insert(t, s.stack, 1)
		l := load(t, s.svc, s.repo, e.Key)
		fired := s.loseReply(t, e.Key, nil)
		if err := s.repo.Delete(ctx, l); err != nil {
			t.Fatalf("Delete re-sent after a lost reply = %v, want success: its first execution deleted", err)
		}
		if !fired() {
			t.Fatal("the fault did not fire")
		}
		_, err := s.repo.Find(ctx, e.Key)
		wantIs(t, "Find after Delete", err, repository.ErrNotFound)
		wantIs(t, "a second Delete", s.repo.Delete(ctx, l), repository.ErrNotFound)
	})
}

// TestTimedOutWriteMayApply: a Save whose request is delayed past its
// deadline reports ErrOutcomeUnknown (and the deadline), not a refusal,
// and does apply afterwards; a later Save of the same proof then wins over
// a delayed duplicate of an earlier one.
func TestTimedOutWriteMayApply(t *testing.T) {
	s := newProxiedStack(t)
	ctx := t.Context()

	t.Run("AppliesLate", func(t *testing.T) {
		e := insert(t, s.stack, 1)
		l := load(t, s.svc, s.repo, e.Key)
		l.Entity().N = 2
		if err := s.c.Ping(ctx).Err(); err != nil { // a pooled connection: the request leaves at once
			t.Fatal(err)
		}
		s.proxy.Set(faultproxy.Rule{Dir: faultproxy.Upstream, Fault: faultproxy.Delay, Delay: 3 * faultCtx, Match: []byte(e.Key), Times: 1})
		sctx, cancel := context.WithTimeout(ctx, faultCtx)
		start := time.Now()
		err := s.repo.Save(sctx, l)
		elapsed := time.Since(start)
		cancel()
		wantIs(t, "Save delayed past its deadline", err, locked.ErrOutcomeUnknown, locked.ErrUnavailable, context.DeadlineExceeded)
		t.Logf("Save returned %v after its deadline", (elapsed - faultCtx).Round(100*time.Microsecond))
		eventuallyN(t, s, e.Key, 2)
	})

	t.Run("DelayedDuplicateLoses", func(t *testing.T) {
		e := insert(t, s.stack, 1)
		l := load(t, s.svc, s.repo, e.Key)
		l.Entity().N = 2
		if err := s.c.Ping(ctx).Err(); err != nil { // a pooled connection: the request leaves at once
			t.Fatal(err)
		}
		s.proxy.Set(faultproxy.Rule{Dir: faultproxy.Upstream, Fault: faultproxy.Delay, Delay: 3 * faultCtx, Match: []byte(e.Key), Times: 1})
		sctx, cancel := context.WithTimeout(ctx, faultCtx)
		err := s.repo.Save(sctx, l)
		cancel()
		wantIs(t, "first Save", err, locked.ErrOutcomeUnknown)
		runs := redistest.ScriptCalls(t, s.admin)
		l.Entity().N = 3
		if err := s.repo.Save(ctx, l); err != nil {
			t.Fatalf("second Save: %v", err)
		}
		// Wait until the delayed first Save has run too.
		deadline := time.Now().Add(faultBound)
		for redistest.ScriptCalls(t, s.admin) < runs+2 {
			if time.Now().After(deadline) {
				t.Fatal("the delayed Save never ran")
			}
			time.Sleep(10 * time.Millisecond)
		}
		wantN(t, s.stack, e.Key, 3, "after the delayed duplicate of an earlier Save ran")
	})
}

func eventuallyN(t *testing.T, s proxiedStack, id string, n int64) {
	t.Helper()
	deadline := time.Now().Add(faultBound)
	for {
		got, err := s.repo.Find(t.Context(), id)
		if err == nil && got.N == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("N = %d, %v after %v; want %d", got.N, err, faultBound, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestForeignValues: a lock key or a record key holding a value that
// lockproof did not write gives a definite answer and is left untouched
// (never a Lua error reported as ErrUnavailable).
func TestForeignValues(t *testing.T) {
	c := redistest.Server(t).Client(t)
	s := newStack(t, c, "")
	ctx := t.Context()

	t.Run("LockKeyHash", func(t *testing.T) {
		e := insert(t, s, 1)
		l := load(t, s.svc, s.repo, e.Key)
		// Replace the hold with a value of another type, as another
		// library's lock might be, without ending the local lease.
		lock := strings.TrimSuffix(s.p.DataKey(l.Key(), "x"), ":x")
		if err := c.Del(ctx, lock).Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.HSet(ctx, lock, "owner", "someone").Err(); err != nil {
			t.Fatal(err)
		}
		l.Entity().N = 2
		for name, err := range map[string]error{"Save": s.repo.Save(ctx, l), "Delete": s.repo.Delete(ctx, l)} {
			wantIs(t, name, err, locked.ErrNotHeld)
			if errors.Is(err, locked.ErrUnavailable) {
				t.Fatalf("%s = %v, want a definite refusal", name, err)
			}
		}
		if v, err := c.HGet(ctx, lock, "owner").Result(); err != nil || v != "someone" {
			t.Fatalf("the foreign value = %q, %v; want it untouched", v, err)
		}
		wantN(t, s, e.Key, 1, "after writes under a foreign lock value")
	})

	t.Run("RecordKey", func(t *testing.T) {
		id := uuid.NewString()
		key, _ := s.repo.EntityKey(id)
		if err := c.Set(ctx, key, "ABCD", 0).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := s.repo.Find(ctx, id)
		wantIs(t, "Find", err, redisrepo.ErrForeign, locked.ErrInvalid)
		wantIs(t, "Insert", s.repo.Insert(ctx, &entity{Key: id}), redisrepo.ErrForeign)
		l, err := locked.Acquire(ctx, s.svc, &entity{Key: id, N: 5})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		wantIs(t, "Save", s.repo.Save(ctx, l), redisrepo.ErrForeign)
		wantIs(t, "Delete", s.repo.Delete(ctx, l), redisrepo.ErrForeign)
		if v, err := c.Get(ctx, key).Result(); err != nil || v != "ABCD" {
			t.Fatalf("the foreign record = %q, %v; want it untouched", v, err)
		}
	})
}

// ddd is an entity in the DDD style: its state is unexported.
type ddd struct {
	id string
	n  uint64
}

func (*ddd) Kind() string { return "ddd" }
func (d *ddd) ID() string { return d.id }
func (d *ddd) MarshalBinary() ([]byte, error) {
	return binary.AppendUvarint([]byte(d.id+"\x00"), d.n), nil
}

func (d *ddd) UnmarshalBinary(b []byte) error {
	id, rest, ok := strings.Cut(string(b), "\x00")
	if !ok {
		return errors.New("no id")
	}
	n, k := binary.Uvarint([]byte(rest))
	if k <= 0 {
		return errors.New("bad n")
	}
	d.id, d.n = id, n
	return nil
}

// TestCodec: with the default JSON an entity whose state is unexported is
// refused at Insert and Save (repository.ErrCodec), nothing written; with
// repository.Binary it round-trips.
func TestCodec(t *testing.T) {
	c := redistest.Server(t).Client(t)
	p := newProvider(t, c)
	svc := newService(t, p, "")
	ctx := t.Context()

	jsonRepo, err := redisrepo.New[*ddd](svc, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &ddd{id: uuid.NewString(), n: 7}
	wantIs(t, "Insert with JSON", jsonRepo.Insert(ctx, e), repository.ErrCodec, locked.ErrInvalid)
	key, _ := jsonRepo.EntityKey(e.id)
	if n, err := c.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS after a refused Insert = %d, %v", n, err)
	}

	binRepo, err := redisrepo.New[*ddd](svc, &redisrepo.Options{Codec: repository.Binary})
	if err != nil {
		t.Fatal(err)
	}
	if err := binRepo.Insert(ctx, e); err != nil {
		t.Fatalf("Insert with Binary: %v", err)
	}
	l, err := locked.Load(ctx, svc, binRepo, e.id)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer l.Close()
	if got := l.Entity(); got.id != e.id || got.n != 7 {
		t.Fatalf("loaded %+v, want %+v", got, e)
	}
	l.Entity().n = 8
	wantIs(t, "Save with JSON", jsonRepo.Save(ctx, l), repository.ErrCodec)
	if err := binRepo.Save(ctx, l); err != nil {
		t.Fatalf("Save with Binary: %v", err)
	}
	got, err := binRepo.Find(ctx, e.id)
	if err != nil || got.n != 8 {
		t.Fatalf("Find = %+v, %v; want n 8", got, err)
	}
}

// TestFencesExact: proofs with fences at 10^14 and beyond 2^53 write, and
// the record stores the fence exactly.
func TestFencesExact(t *testing.T) {
	c := redistest.Server(t).Client(t)
	s := newStack(t, c, "")
	ctx := t.Context()
	for _, start := range []uint64{1e14 - 1, 9007199254740993} {
		t.Run(fmt.Sprint(start), func(t *testing.T) {
			e := insert(t, s, 1)
			counter := s.p.FenceCounter("rtest:" + e.Key)
			if err := c.Set(ctx, counter, start, 0).Err(); err != nil {
				t.Fatal(err)
			}
			for i := uint64(1); i <= 2; i++ {
				l := load(t, s.svc, s.repo, e.Key)
				if l.Fence() != start+i {
					t.Fatalf("fence %d, want %d", l.Fence(), start+i)
				}
				l.Entity().N++
				if err := s.repo.Save(ctx, l); err != nil {
					t.Fatalf("Save with fence %d: %v", l.Fence(), err)
				}
				key, _ := s.repo.EntityKey(e.Key)
				if f, err := c.HGet(ctx, key, "f").Result(); err != nil || f != strconv.FormatUint(l.Fence(), 10) {
					t.Fatalf("record fence %q, %v; want %d", f, err, l.Fence())
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
