package redisrepo_test

import (
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
	"github.com/lockproof/lockproof/repository/repositorytest"
)

// TestMain fails the package if any test leaves a goroutine running.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type entity = repositorytest.Entity

// stack is a provider, a Service and a repository on one Redis client.
type stack struct {
	c    redis.UniversalClient
	p    *redisprovider.Provider
	svc  *locked.Service
	repo *redisrepo.Repository[*entity]
}

// newProvider returns a provider on c, closed when t ends.
func newProvider(t *testing.T, c redis.UniversalClient) *redisprovider.Provider {
	t.Helper()
	p, err := redisprovider.New(c, &redisprovider.Options{PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("redisprovider.New: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Provider Close: %v", err)
		}
	})
	return p
}

// newService returns a Service on p in the namespace, closed when t ends
// (before p, whose Cleanup was registered first).
func newService(t *testing.T, p *redisprovider.Provider, namespace string) *locked.Service {
	t.Helper()
	svc, err := locked.New(p, &locked.Options{Namespace: namespace})
	if err != nil {
		t.Fatalf("locked.New: %v", err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("Service Close: %v", err)
		}
	})
	return svc
}

func newRepo(t *testing.T, svc *locked.Service) *redisrepo.Repository[*entity] {
	t.Helper()
	r, err := redisrepo.New[*entity](svc, nil)
	if err != nil {
		t.Fatalf("redisrepo.New: %v", err)
	}
	return r
}

func newStack(t *testing.T, c redis.UniversalClient, namespace string) stack {
	t.Helper()
	p := newProvider(t, c)
	svc := newService(t, p, namespace)
	return stack{c: c, p: p, svc: svc, repo: newRepo(t, svc)}
}

// conformance runs repositorytest on c, with a provider, Service and
// repository per subtest, all on c and in the namespace.
func conformance(t *testing.T, c redis.UniversalClient, namespace string) {
	var svc *locked.Service // the subtest's, set by NewRepo for NewService
	repositorytest.Harness{
		NewRepo: func(t *testing.T) repository.Repository[*entity] {
			svc = newService(t, newProvider(t, c), namespace)
			return newRepo(t, svc)
		},
		NewService: func(t *testing.T) *locked.Service { return svc },
		Workers:    8,
		Cycles:     500,
		Timeout:    30 * time.Second,
	}.Run(t)
}

func TestConformanceServer(t *testing.T) {
	conformance(t, redistest.Server(t).Client(t), "")
}

func TestConformanceCluster(t *testing.T) {
	conformance(t, redistest.Cluster(t, 3).Client(t), "app")
}

// insert stores a new entity with N = n and returns it.
func insert(t *testing.T, s stack, n int64) *entity {
	t.Helper()
	e := &entity{Key: uuid.NewString(), N: n, Tags: []string{"x"}}
	if err := s.repo.Insert(t.Context(), e); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	return e
}

func load(t *testing.T, svc *locked.Service, repo locked.Finder[*entity], id string, opts ...locked.CallOption) *locked.Locked[*entity] {
	t.Helper()
	l, err := locked.Load(t.Context(), svc, repo, id, append([]locked.CallOption{locked.WithTimeout(30 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("locked.Load(%q): %v", id, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// wantN fails t unless the stored entity has N = n.
func wantN(t *testing.T, s stack, id string, n int64, why string) {
	t.Helper()
	got, err := s.repo.Find(t.Context(), id)
	if err != nil {
		t.Fatalf("%s: Find: %v", why, err)
	}
	if got.N != n {
		t.Fatalf("%s: N = %d, want %d", why, got.N, n)
	}
}

func wantIs(t *testing.T, call string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s = nil, want an error matching %v", call, targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("%s = %v, want an error matching %v", call, err, target)
		}
	}
}

// TestRecordLayout checks the documented record: a hash {d, f} beside the
// lock, f = 0 after Insert and the proof's fence after Save.
func TestRecordLayout(t *testing.T) {
	s := newStack(t, redistest.Server(t).Client(t), "")
	ctx := t.Context()
	e := insert(t, s, 1)
	key, err := s.repo.EntityKey(e.Key)
	if err != nil {
		t.Fatal(err)
	}
	storeKey, _ := persistent.KeyOf(e)
	if want := s.p.DataKey(storeKey, "entity"); key != want {
		t.Fatalf("EntityKey = %q, want %q", key, want)
	}
	if f, err := s.c.HGet(ctx, key, "f").Result(); err != nil || f != "0" {
		t.Fatalf("f after Insert = %q, %v; want 0", f, err)
	}
	l := load(t, s.svc, s.repo, e.Key)
	l.Entity().N = 2
	if err := s.repo.Save(ctx, l); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if f, err := s.c.HGet(ctx, key, "f").Result(); err != nil || f != strconv.FormatUint(l.Fence(), 10) {
		t.Fatalf("f after Save = %q, %v; want the fence %d", f, err, l.Fence())
	}
	if d, err := s.c.HGet(ctx, key, "d").Result(); err != nil || d != `{"Key":"`+e.Key+`","N":2,"Tags":["x"]}` {
		t.Fatalf("d after Save = %q, %v", d, err)
	}
}

// TestLapsedHolderRejected: A's lease lapses, B (another Service on the same
// provider) takes the lock with a higher fence and saves; A's Save and
// Delete fail and B's value stays.
func TestLapsedHolderRejected(t *testing.T) {
	c := redistest.Server(t).Client(t)
	s := newStack(t, c, "")
	svc2 := newService(t, s.p, "")
	ctx := t.Context()
	e := insert(t, s, 1)

	a := load(t, s.svc, s.repo, e.Key, locked.WithTTL(200*time.Millisecond))
	a.Entity().N = 100
	b := load(t, svc2, s.repo, e.Key) // blocks until A lapses
	if b.Fence() <= a.Fence() {
		t.Fatalf("B's fence %d, want > A's %d", b.Fence(), a.Fence())
	}
	b.Entity().N = 200
	if err := s.repo.Save(ctx, b); err != nil {
		t.Fatalf("B's Save: %v", err)
	}
	wantIs(t, "A's Save", s.repo.Save(ctx, a), locked.ErrNotHeld)
	wantIs(t, "A's Delete", s.repo.Delete(ctx, a), locked.ErrNotHeld)
	wantN(t, s, e.Key, 200, "after A's Save and Delete")
}

// TestStoreExpiryRejectedByScript: the lock expires in Redis while A's local
// lease (a long TTL) is still live, and B takes it. A's Save passes every
// local check, so only the script can reject it.
func TestStoreExpiryRejectedByScript(t *testing.T) {
	c := redistest.Server(t).Client(t)
	s := newStack(t, c, "")
	svc2 := newService(t, s.p, "")
	ctx := t.Context()
	e := insert(t, s, 1)

	a := load(t, s.svc, s.repo, e.Key, locked.WithTTL(time.Minute))
	a.Entity().N = 100
	// The store's hold lapses in a millisecond; the local lease does not know.
	if _, err := s.p.Extend(ctx, a.Key(), a.Lease().Token(), time.Millisecond); err != nil {
		t.Fatalf("Extend to 1ms: %v", err)
	}
	b := load(t, svc2, s.repo, e.Key)
	b.Entity().N = 200
	if err := s.repo.Save(ctx, b); err != nil {
		t.Fatalf("B's Save: %v", err)
	}
	if err := a.Context().Err(); err != nil {
		t.Fatalf("A's local lease ended (%v): the test would not reach the script", err)
	}
	wantIs(t, "A's Save", s.repo.Save(ctx, a), locked.ErrNotHeld)
	wantIs(t, "A's Delete", s.repo.Delete(ctx, a), locked.ErrNotHeld)
	wantN(t, s, e.Key, 200, "after A's Save and Delete")
}

// TestForceReleasedRejectedByScript: ForceRelease without auto-renewal does
// not end the holder's local lease, so the rejection is the script's.
func TestForceReleasedRejectedByScript(t *testing.T) {
	s := newStack(t, redistest.Server(t).Client(t), "ns")
	ctx := t.Context()
	e := insert(t, s, 1)
	a := load(t, s.svc, s.repo, e.Key)
	a.Entity().N = 2
	if held, err := s.svc.ForceRelease(ctx, a.Key()); err != nil || !held {
		t.Fatalf("ForceRelease = %v, %v", held, err)
	}
	if err := a.Context().Err(); err != nil {
		t.Fatalf("A's local lease ended (%v): the test would not reach the script", err)
	}
	wantIs(t, "Save", s.repo.Save(ctx, a), locked.ErrNotHeld)
	wantIs(t, "Delete", s.repo.Delete(ctx, a), locked.ErrNotHeld)
	wantN(t, s, e.Key, 1, "after Save and Delete with a force-released proof")
}

// TestFenceCheckedInScript: a record whose fence is above the holder's (as
// after the fence counter was lost, decision 16) refuses the holder's
// writes with ErrStale although the holder holds the lock.
func TestFenceCheckedInScript(t *testing.T) {
	s := newStack(t, redistest.Server(t).Client(t), "")
	ctx := t.Context()
	e := insert(t, s, 1)
	a := load(t, s.svc, s.repo, e.Key)
	key, _ := s.repo.EntityKey(e.Key)
	if err := s.c.HSet(ctx, key, "f", a.Fence()+1).Err(); err != nil {
		t.Fatalf("HSET: %v", err)
	}
	a.Entity().N = 2
	wantIs(t, "Save", s.repo.Save(ctx, a), repository.ErrStale, locked.ErrNotHeld)
	wantIs(t, "Delete", s.repo.Delete(ctx, a), repository.ErrStale)
	wantN(t, s, e.Key, 1, "after Save and Delete with a stale fence")

	// An equal fence is the same holder writing again: allowed.
	if err := s.c.HSet(ctx, key, "f", a.Fence()).Err(); err != nil {
		t.Fatalf("HSET: %v", err)
	}
	if err := s.repo.Save(ctx, a); err != nil {
		t.Fatalf("Save with the record's own fence: %v", err)
	}
	wantN(t, s, e.Key, 2, "after Save")
}

// TestNamespaceMismatch: a proof from a Service in another namespace is
// rejected before Redis is asked, and says why.
func TestNamespaceMismatch(t *testing.T) {
	c := redistest.Server(t).Client(t)
	s := newStack(t, c, "")
	other := newRepo(t, newService(t, s.p, "other"))
	ctx := t.Context()
	e := insert(t, s, 1)
	l := load(t, s.svc, s.repo, e.Key)
	l.Entity().N = 2
	wantIs(t, "Save", other.Save(ctx, l), locked.ErrNotHeld, locked.ErrInvalid)
	wantIs(t, "Delete", other.Delete(ctx, l), locked.ErrNotHeld, locked.ErrInvalid)
	wantN(t, s, e.Key, 1, "after writes through a repository of another namespace")
}

func TestNewInvalid(t *testing.T) {
	mp := memprovider.New()
	t.Cleanup(func() { _ = mp.Close() })
	memSvc, err := locked.New(mp, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = memSvc.Close() })
	for _, tc := range []struct {
		name string
		svc  *locked.Service
	}{
		{"nil service", nil},
		{"service on memprovider", memSvc},
	} {
		_, err := redisrepo.New[*entity](tc.svc, nil)
		wantIs(t, "New with "+tc.name, err, locked.ErrInvalid)
		var ae *provider.ArgError
		if !errors.As(err, &ae) || ae.Arg != "service" {
			t.Fatalf("New with %s = %v, want an ArgError for service", tc.name, err)
		}
	}
}

// TestUnavailable: a Redis that cannot be reached is reported as
// ErrUnavailable, not as an unknown outcome (nothing was sent), by every
// method that gets as far as Redis, with the dial error in the chain.
func TestUnavailable(t *testing.T) {
	node := redistest.Server(t)
	// Few dial attempts per call, so that go-redis does not start its
	// background redialer (which goleak would report).
	c := redis.NewClient(&redis.Options{Addr: node.Addr(), ContextTimeoutEnabled: true, MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { _ = c.Close() })
	s := newStack(t, c, "")
	e := insert(t, s, 1)
	l := load(t, s.svc, s.repo, e.Key)
	node.Kill(t)

	ctx := t.Context()
	check := func(call string, err error) {
		t.Helper()
		wantIs(t, call, err, locked.ErrUnavailable)
		if errors.Is(err, locked.ErrOutcomeUnknown) {
			t.Fatalf("%s = %v: nothing could be sent, want ErrUnavailable without ErrOutcomeUnknown", call, err)
		}
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Fatalf("%s = %v: want the dial error in the chain", call, err)
		}
	}
	_, err := s.repo.Find(ctx, e.Key)
	check("Find", err)
	check("Insert", s.repo.Insert(ctx, &entity{Key: uuid.NewString()}))
	check("Save", s.repo.Save(ctx, l))
	check("Delete", s.repo.Delete(ctx, l))
	check("DeleteByID", s.repo.DeleteByID(ctx, e.Key))
}

// TestScriptFlushed: after SCRIPT FLUSH (as after a restart), the scripts
// are loaded again transparently.
func TestScriptFlushed(t *testing.T) {
	s := newStack(t, redistest.Server(t).Client(t), "")
	ctx := t.Context()
	e := insert(t, s, 1)
	l := load(t, s.svc, s.repo, e.Key)
	if err := s.c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	l.Entity().N = 2
	if err := s.repo.Save(ctx, l); err != nil {
		t.Fatalf("Save after SCRIPT FLUSH: %v", err)
	}
	if err := s.c.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.repo.Insert(ctx, &entity{Key: uuid.NewString()}); err != nil {
		t.Fatalf("Insert after SCRIPT FLUSH: %v", err)
	}
	wantN(t, s, e.Key, 2, "after Save")
}
