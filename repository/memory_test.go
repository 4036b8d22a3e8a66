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

func load(t *testing.T, svc *locked.Service, repo *repository.Memory[*counter], id string, opts ...locked.CallOption) *locked.Locked[*counter] {
	t.Helper()
	opts = append([]locked.CallOption{locked.WithTimeout(time.Minute)}, opts...)
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
