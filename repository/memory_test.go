package repository_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/repository"
)

// The conformance suite runs against Memory in
// repository/repositorytest/repositorytest_test.go; running it here again
// would add nothing. These tests cover what is particular to Memory.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// counter is a test entity whose Save can be paused while Memory encodes
// it. Memory encodes after checking the proof and before comparing fences:
// a pause there is the window in which only the store's fence check stands
// between a stale holder and the record.
type counter struct {
	Name string
	N    int64

	note  string // unexported: Memory does not store it
	pause func() // called, once, by the next MarshalJSON; not stored
}

func (*counter) Kind() string { return "counter" }
func (c *counter) ID() string { return c.Name }

type plainCounter counter

func (c *counter) MarshalJSON() ([]byte, error) {
	if p := c.pause; p != nil {
		c.pause = nil
		p()
	}
	return json.Marshal((*plainCounter)(c))
}

// checkCounter is the in-memory provider counting State calls, which is
// how a proof's Check asks the store.
type checkCounter struct {
	*memprovider.Provider
	states atomic.Int64
}

func (p *checkCounter) State(ctx context.Context, key string) (provider.State, error) {
	p.states.Add(1)
	return p.Provider.State(ctx, key)
}

func newService(t *testing.T) *locked.Service {
	t.Helper()
	return newServiceOn(t, memprovider.New())
}

// newServiceOn returns a Service on p; both are closed when t ends.
func newServiceOn(t *testing.T, p provider.Provider) *locked.Service {
	t.Helper()
	t.Cleanup(func() { _ = p.Close() })
	svc, err := locked.New(p, nil)
	if err != nil {
		t.Fatalf("locked.New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

func load(t *testing.T, svc *locked.Service, repo *repository.Memory[*counter], id string, opts ...locked.Option) *locked.Locked[*counter] {
	t.Helper()
	opts = append([]locked.Option{locked.WithTimeout(time.Minute)}, opts...)
	l, err := locked.Load(t.Context(), svc, repo, id, opts...)
	if err != nil {
		t.Fatalf("locked.Load(%q) = %v", id, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestMemoryRejectsOldFence shows that Memory itself rejects a write whose
// fence is older than the last one stored, even when the proof passed
// Check: holder A is paused after its Check while its lock goes to B
// (fence f2 > f1), and B saves; A's write must then fail with ErrStale.
//
// If Memory checks the proof after encoding instead (under the lock that
// Find takes, which would close the window that the conformance subtest
// PausedHolderAfterNewLoad finds), the pause lands before the Check, no
// proof passes Check stale, and the test requires ErrNotHeld instead.
func TestMemoryRejectsOldFence(t *testing.T) {
	tests := []struct {
		name string
		ttl  time.Duration
		// loseLock takes A's lock away while A is paused.
		loseLock func(t *testing.T, svc *locked.Service, a *locked.Locked[*counter])
	}{
		{"Lapsed", 300 * time.Millisecond, func(*testing.T, *locked.Service, *locked.Locked[*counter]) {
			// B's blocking Load below waits for the lapse.
		}},
		{"ForceReleased", time.Minute, func(t *testing.T, svc *locked.Service, a *locked.Locked[*counter]) {
			if held, err := svc.ForceRelease(t.Context(), a.Key()); err != nil || !held {
				t.Fatalf("ForceRelease = %v, %v; want true, nil", held, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			p := &checkCounter{Provider: memprovider.New()}
			svc := newServiceOn(t, p)
			repo := repository.NewMemory[*counter]()
			id := uuid.NewString()
			if err := repo.Insert(ctx, &counter{Name: id, N: 1}); err != nil {
				t.Fatal(err)
			}

			a := load(t, svc, repo, id, locked.WithTTL(tc.ttl))
			a.Entity().N = 2
			paused, resume := make(chan struct{}), make(chan struct{})
			before := p.states.Load()
			var checkedFirst bool // A's Check ran before the pause
			a.Entity().pause = func() {
				checkedFirst = p.states.Load() > before
				close(paused)
				<-resume
			}
			aDone := make(chan error, 1)
			go func() { aDone <- repo.Save(ctx, a) }()
			select {
			case <-paused:
			case err := <-aDone:
				// Only possible if the lease lapsed before Check: the
				// machine was too slow to reach the window this test needs.
				t.Skipf("A's Save returned before encoding (%v); its lease lapsed first", err)
			}
			defer func() {
				select {
				case <-resume:
				default:
					close(resume)
				}
			}()

			tc.loseLock(t, svc, a)
			b := load(t, svc, repo, id) // waits for a lapse
			if b.Fence() <= a.Fence() {
				t.Fatalf("B's fence %d is not above A's %d", b.Fence(), a.Fence())
			}
			b.Entity().N = 10
			if err := repo.Save(ctx, b); err != nil {
				t.Fatalf("B's Save = %v", err)
			}
			if err := b.Close(); err != nil {
				t.Fatalf("B's Close = %v", err)
			}

			close(resume)
			err := <-aDone
			if !checkedFirst {
				t.Log("Save checks the proof after encoding: the pause came before the Check, so the Check, not the fence, rejects A")
				if !errors.Is(err, locked.ErrNotHeld) {
					t.Fatalf("A's Save after B saved = %v, want an error matching locked.ErrNotHeld", err)
				}
			} else if !errors.Is(err, repository.ErrStale) || !errors.Is(err, locked.ErrNotHeld) {
				t.Fatalf("A's Save with fence %d, which passed Check, after B saved with fence %d = %v, want an error matching repository.ErrStale and locked.ErrNotHeld",
					a.Fence(), b.Fence(), err)
			}
			got, err := repo.Find(ctx, id)
			if err != nil || got.N != 10 {
				t.Fatalf("Find = %+v, %v; want B's N=10", got, err)
			}

			// A's Delete is rejected too (by Check, now that A's lock is gone).
			if err := repo.Delete(ctx, a); !errors.Is(err, locked.ErrNotHeld) {
				t.Fatalf("A's Delete = %v, want an error matching locked.ErrNotHeld", err)
			}
			if n := repo.Len(); n != 1 {
				t.Fatalf("Len = %d after A's rejected Delete, want 1", n)
			}
		})
	}
}

func TestMemoryLen(t *testing.T) {
	ctx := t.Context()
	svc := newService(t)
	repo := repository.NewMemory[*counter]()
	wantLen := func(want int, after string) {
		t.Helper()
		if got := repo.Len(); got != want {
			t.Fatalf("Len after %s = %d, want %d", after, got, want)
		}
	}
	wantLen(0, "NewMemory")

	x, y := uuid.NewString(), uuid.NewString()
	for _, id := range []string{x, y} {
		if err := repo.Insert(ctx, &counter{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	wantLen(2, "two Inserts")

	if err := repo.Insert(ctx, &counter{Name: x}); !errors.Is(err, repository.ErrExists) {
		t.Fatalf("Insert of an existing ID = %v, want ErrExists", err)
	}
	if err := repo.Insert(ctx, &counter{Name: ""}); err == nil {
		t.Fatal(`Insert with Name "" = nil, want an error`)
	}
	if err := repo.Insert(ctx, nil); err == nil {
		t.Fatal("Insert(nil) = nil, want an error")
	}
	wantLen(2, "rejected Inserts")

	l := load(t, svc, repo, x)
	l.Entity().N = 5
	if err := repo.Save(ctx, l); err != nil {
		t.Fatal(err)
	}
	wantLen(2, "a Save")

	if err := repo.Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	wantLen(1, "a Delete")
	if err := repo.Save(ctx, l); !errors.Is(err, repository.ErrNotFound) {
		t.Fatalf("Save after Delete = %v, want ErrNotFound", err)
	}
	wantLen(1, "a Save of the deleted entity")

	for range 2 {
		if err := repo.DeleteByID(ctx, y); err != nil {
			t.Fatal(err)
		}
	}
	wantLen(0, "DeleteByID, twice")
}

// Memory stores the exported fields only, as its documentation says.
func TestMemoryStoresExportedFieldsOnly(t *testing.T) {
	ctx := t.Context()
	repo := repository.NewMemory[*counter]()
	id := uuid.NewString()
	if err := repo.Insert(ctx, &counter{Name: id, N: 3, note: "lost"}); err != nil {
		t.Fatal(err)
	}
	got, err := repo.Find(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != id || got.N != 3 || got.note != "" {
		t.Fatalf("Find = %+v, want Name %q, N 3 and an empty unexported note", got, id)
	}
}

// TestMemoryRejectsProofFromAnotherStore: two lock stores can grant one key
// at once, so a Memory accepts the proofs of one store only (issue 8, item
// 5). Holder A (the repository's store) and holder B (another provider, or
// the same provider under another Namespace) both hold the entity; B's
// writes are refused with ErrForeignProof, matching ErrNotHeld, and change
// nothing, whether the repository was bound explicitly or by A's first
// write.
func TestMemoryRejectsProofFromAnotherStore(t *testing.T) {
	p := memprovider.New()
	t.Cleanup(func() { _ = p.Close() })
	for _, other := range []struct {
		name string
		svc  func(t *testing.T) *locked.Service
	}{
		{"AnotherProvider", func(t *testing.T) *locked.Service { return newServiceOn(t, memprovider.New()) }},
		{"AnotherNamespace", func(t *testing.T) *locked.Service { return newServiceWith(t, p, &locked.Options{Namespace: "b"}) }},
	} {
		for _, binding := range []string{"Explicit", "FirstProof"} {
			t.Run(other.name+"/"+binding, func(t *testing.T) {
				ctx := t.Context()
				svcA := newServiceWith(t, p, &locked.Options{Namespace: "a"})
				svcB := other.svc(t)
				var repo *repository.Memory[*counter]
				if binding == "Explicit" {
					repo = repository.NewMemory[*counter](repository.WithLockStore(svcA.Store()))
				} else {
					repo = repository.NewMemory[*counter]()
				}
				id := uuid.NewString()
				if err := repo.Insert(ctx, &counter{Name: id, N: 1}); err != nil {
					t.Fatal(err)
				}
				a := load(t, svcA, repo, id)
				b := load(t, svcB, repo, id) // both hold counter:id, each in its own store
				if binding == "FirstProof" {
					a.Entity().N = 2
					if err := repo.Save(ctx, a); err != nil {
						t.Fatalf("A's Save = %v, want nil", err)
					}
				}
				want := a.Entity().N

				b.Entity().N = 100
				for op, call := range map[string]func() error{
					"Save":   func() error { return repo.Save(ctx, b) },
					"Delete": func() error { return repo.Delete(ctx, b) },
				} {
					err := call()
					if !errors.Is(err, repository.ErrForeignProof) || !errors.Is(err, locked.ErrNotHeld) {
						t.Fatalf("B's %s with a proof from another lock store = %v, want an error matching ErrForeignProof and locked.ErrNotHeld", op, err)
					}
					if got, err := repo.Find(ctx, id); err != nil || got.N != want {
						t.Fatalf("after B's refused %s: Find = %+v, %v; want N=%d", op, got, err, want)
					}
				}

				// A's proofs still write, and so do those of another Service
				// over A's store (the same provider and Namespace).
				a.Entity().N = 3
				if err := repo.Save(ctx, a); err != nil {
					t.Fatalf("A's Save after B's refusals = %v, want nil", err)
				}
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
				svcA2 := newServiceWith(t, p, &locked.Options{Namespace: "a"})
				c := load(t, svcA2, repo, id)
				c.Entity().N++
				if err := repo.Save(ctx, c); err != nil {
					t.Fatalf("Save by a second Service over the same store = %v, want nil", err)
				}
				if got, err := repo.Find(ctx, id); err != nil || got.N != 4 {
					t.Fatalf("Find = %+v, %v; want N=4", got, err)
				}
			})
		}
	}
}

// newServiceWith returns a Service on p with opts, closed when t ends; p is
// not closed.
func newServiceWith(t *testing.T, p provider.Provider, opts *locked.Options) *locked.Service {
	t.Helper()
	svc, err := locked.New(p, opts)
	if err != nil {
		t.Fatalf("locked.New: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

// order and member are two kinds with the same IDs.
type order struct {
	Num   string
	Total int
}

func (*order) Kind() string { return "order" }
func (o *order) ID() string { return o.Num }

type member struct {
	Name   string
	Points int
}

func (*member) Kind() string { return "member" }
func (m *member) ID() string { return m.Name }

// TestMemoryKeysByKind: records are filed under the full lock key, so a
// repository of an interface type holds order:1 and member:1 apart, and a
// proof on member:1 never touches order:1 (issue 8, item 5).
func TestMemoryKeysByKind(t *testing.T) {
	ctx := t.Context()
	svc := newService(t)
	repo := repository.NewMemory[persistent.Persistent]()
	if err := repo.Insert(ctx, &order{Num: "1", Total: 10}); err != nil {
		t.Fatal(err)
	}
	orderRecord, _ := repo.Record("order:1")

	// A proof on member:1 with no member:1 stored finds nothing.
	l, err := locked.Acquire[persistent.Persistent](ctx, svc, &member{Name: "1", Points: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := repo.Save(ctx, l); !errors.Is(err, repository.ErrNotFound) {
		t.Fatalf("Save of member:1 with only order:1 stored = %v, want ErrNotFound", err)
	}
	if err := repo.Delete(ctx, l); !errors.Is(err, repository.ErrNotFound) {
		t.Fatalf("Delete of member:1 with only order:1 stored = %v, want ErrNotFound", err)
	}
	if got, ok := repo.Record("order:1"); !ok || string(got) != string(orderRecord) {
		t.Fatalf("order:1 after member:1's Save and Delete = %q, %v; want %q", got, ok, orderRecord)
	}

	// Both kinds can be stored under one ID, and each proof writes its own.
	if err := repo.Insert(ctx, &member{Name: "1", Points: 0}); err != nil {
		t.Fatalf("Insert of member:1 beside order:1 = %v, want nil", err)
	}
	if err := repo.Save(ctx, l); err != nil {
		t.Fatalf("Save of member:1 = %v", err)
	}
	if got, _ := repo.Record("member:1"); string(got) != `{"Name":"1","Points":5}` {
		t.Fatalf("member:1 = %s after its Save", got)
	}
	if err := repo.Delete(ctx, l); err != nil {
		t.Fatalf("Delete of member:1 = %v", err)
	}
	if got, ok := repo.Record("order:1"); !ok || string(got) != string(orderRecord) {
		t.Fatalf("order:1 after member:1's Save and Delete = %q, %v; want %q", got, ok, orderRecord)
	}
	if n := repo.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1 (order:1)", n)
	}

	// Find and DeleteByID have only an ID, and an interface type no kind.
	if _, err := repo.Find(ctx, "1"); !errors.Is(err, locked.ErrInvalid) {
		t.Fatalf("Find on a repository of an interface type = %v, want an error matching ErrInvalid", err)
	}
	if err := repo.DeleteByID(ctx, "1"); !errors.Is(err, locked.ErrInvalid) {
		t.Fatalf("DeleteByID on a repository of an interface type = %v, want an error matching ErrInvalid", err)
	}
	if n := repo.Len(); n != 1 {
		t.Fatalf("Len after a refused DeleteByID = %d, want 1", n)
	}
}

// TestMemoryCodec: an entity whose state is in unexported fields is refused
// by the default JSON codec (issue 8, item 8: it used to be stored empty),
// and round-trips with repository.Binary.
func TestMemoryCodec(t *testing.T) {
	ctx := t.Context()
	svc := newService(t)

	t.Run("JSONRefuses", func(t *testing.T) {
		repo := repository.NewMemory[*user]()
		err := repo.Insert(ctx, &user{id: "1", name: "Ann"})
		if !errors.Is(err, repository.ErrCodec) || !errors.Is(err, locked.ErrInvalid) {
			t.Fatalf("Insert of an entity with unexported fields under JSON = %v, want an error matching ErrCodec and ErrInvalid", err)
		}
		if n := repo.Len(); n != 0 {
			t.Fatalf("Len after a refused Insert = %d, want 0", n)
		}
		l, err := locked.Acquire(ctx, svc, &user{id: "1", name: "Ann"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := repo.Save(ctx, l); !errors.Is(err, repository.ErrCodec) {
			t.Fatalf("Save of an entity with unexported fields under JSON = %v, want an error matching ErrCodec", err)
		}
		if n := repo.Len(); n != 0 {
			t.Fatalf("Len after a refused Save = %d, want 0", n)
		}
	})

	t.Run("BinaryRoundTrips", func(t *testing.T) {
		repo := repository.NewMemory[*user](repository.WithCodec(repository.Binary))
		if err := repo.Insert(ctx, &user{id: "1", name: "Ann"}); err != nil {
			t.Fatalf("Insert under Binary = %v", err)
		}
		got, err := repo.Find(ctx, "1")
		if err != nil || *got != (user{id: "1", name: "Ann"}) {
			t.Fatalf("Find = %+v, %v; want {1 Ann}", got, err)
		}
		l, err := locked.Load(ctx, svc, repo, "1")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.Entity().name = "Bea"
		if err := repo.Save(ctx, l); err != nil {
			t.Fatalf("Save under Binary = %v", err)
		}
		if got, err := repo.Find(ctx, "1"); err != nil || *got != (user{id: "1", name: "Bea"}) {
			t.Fatalf("Find after Save = %+v, %v; want {1 Bea}", got, err)
		}
	})
}

// TestMemoryBadOptions: an invalid option makes every method fail with
// ErrInvalid, and nothing is stored.
func TestMemoryBadOptions(t *testing.T) {
	ctx := t.Context()
	svc := newService(t)
	for name, opt := range map[string]repository.MemoryOption{
		"NilCodec":      repository.WithCodec(nil),
		"ZeroLockStore": repository.WithLockStore(locked.Store{}),
	} {
		t.Run(name, func(t *testing.T) {
			repo := repository.NewMemory[*counter](repository.WithCodec(repository.JSON), opt)
			id := uuid.NewString()
			l, err := locked.Acquire(ctx, svc, &counter{Name: id})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			_, ferr := repo.Find(ctx, id)
			for call, err := range map[string]error{
				"Insert":     repo.Insert(ctx, &counter{Name: id}),
				"Find":       ferr,
				"Save":       repo.Save(ctx, l),
				"Delete":     repo.Delete(ctx, l),
				"DeleteByID": repo.DeleteByID(ctx, id),
			} {
				if !errors.Is(err, locked.ErrInvalid) {
					t.Errorf("%s with an invalid option = %v, want an error matching ErrInvalid", call, err)
				}
			}
			if n := repo.Len(); n != 0 {
				t.Fatalf("Len = %d, want 0", n)
			}
		})
	}
}
