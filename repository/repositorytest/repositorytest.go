// Package repositorytest implements a conformance suite for implementations
// of repository.Repository, in the spirit of testing/fstest.TestFS and
// provider/providertest: every repository runs the same tests, so code
// written against the contract can rely on it whatever the store.
//
// A repository package calls Run from one of its own tests:
//
//	func TestConformance(t *testing.T) {
//		repositorytest.Run(t,
//			func(t *testing.T) repository.Repository[*repositorytest.Entity] {
//				return repository.NewMemory[*repositorytest.Entity]()
//			},
//			func(t *testing.T) *locked.Service {
//				p := memprovider.New()
//				t.Cleanup(func() { p.Close() })
//				svc, err := locked.New(p, nil)
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { svc.Close() })
//				return svc
//			})
//	}
//
// Run uses the default settings; a Harness sets the number of workers and
// cycles of NoLostUpdate, the TTL of holders that the suite lets lapse, and
// how long a wait for a lock may take (raise them for a remote store).
//
// # IDs and shared stores
//
// Every subtest stores entities under its own random IDs (UUIDs), so
// repositories and providers backed by one shared store (a single Redis
// server for a whole test binary) can be tested without clearing it between
// subtests. Entities are of the suite's own type, Entity, of kind "rtest".
//
// # Timing
//
// The suite never sleeps and then asserts that something "seemed to work".
// A lease's expiry is awaited by a blocking locked.Load of the same entity
// with a generous timeout, and a paused holder is simulated by blocking it
// inside its own Save (see Entity), not by racing a timer. No duration is
// asserted, so the suite is reliable on small, busy CI machines.
//
// The package depends only on the standard library's testing package (and
// github.com/google/uuid), not on an assertion library, so importing it does
// not add test-only dependencies to a repository's module.
package repositorytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/repository"
)

// Entity is the entity type the suite stores. Its lock key is "rtest:" + Key.
// Construct the repository under test as a Repository[*Entity].
//
// A stored Entity must come back from Find equal in all three exported
// fields. Entity implements json.Marshaler only so that the suite can pause
// a Save in flight (the PausedHolder subtests); the encoding is the default
// one of its exported fields, so a repository that stores JSON needs no
// special case. A repository that does not encode entities with
// encoding/json cannot be paused that way, and those subtests skip.
type Entity struct {
	Key  string   // the ID; must not be empty
	N    int64    // the counter the suite increments
	Tags []string // checks that Find and Save copy, not share, memory
}

// Kind implements persistent.Persistent.
func (*Entity) Kind() string { return "rtest" }

// ID implements persistent.Persistent.
func (e *Entity) ID() string { return e.Key }

// plainEntity has Entity's fields but not its methods, so encoding it does
// not recurse into MarshalJSON.
type plainEntity Entity

// pauses maps an *Entity to a function that the entity's next MarshalJSON
// calls before encoding, used to pause a Save in flight.
var pauses sync.Map // *Entity → func()

// MarshalJSON implements json.Marshaler with the default encoding of e's
// exported fields.
func (e *Entity) MarshalJSON() ([]byte, error) {
	if f, ok := pauses.LoadAndDelete(e); ok {
		f.(func())()
	}
	return json.Marshal((*plainEntity)(e))
}

// Durations of the suite; see the package documentation on timing.
const (
	// DefaultShortTTL is the default Harness.ShortTTL.
	DefaultShortTTL = 100 * time.Millisecond
	// DefaultTimeout is the default Harness.Timeout.
	DefaultTimeout = time.Minute
	// blockedBound is how long the PausedHolder subtests let the second
	// holder run while the first is paused before deciding that the second
	// is blocked by the first (legal: the assertions cover both orders).
	blockedBound = 5 * time.Second
)

// A Harness runs the suite with settings. Only NewRepo and NewService are
// required; every zero field means its default.
type Harness struct {
	// NewRepo returns the repository under test. It is called once at the
	// start of each subtest, with that subtest's *testing.T, and may register
	// t.Cleanup to close the repository. Repositories sharing one backing
	// store are fine: every subtest uses its own IDs.
	NewRepo func(t *testing.T) repository.Repository[*Entity]

	// NewService returns an open Service. It is called once per subtest,
	// after NewRepo; every holder in the subtest takes its locks from it.
	// It should register t.Cleanup to close the Service and its provider.
	NewService func(t *testing.T) *locked.Service

	// NewForeignService, if set, returns an open Service over another lock
	// store than NewService's (another provider, or the same provider under
	// another Namespace), for ForeignProofRejected; like NewService it
	// should register t.Cleanup to close what it opens. Default nil: that
	// subtest is skipped.
	NewForeignService func(t *testing.T) *locked.Service

	// Workers is the number of goroutines in NoLostUpdate. Default 8.
	Workers int

	// Cycles is the number of lock → load → modify → save cycles of each
	// worker in NoLostUpdate. Default 1000, or 100 with -short.
	Cycles int

	// ShortTTL is the TTL of the holders that the suite lets lapse.
	// Default DefaultShortTTL.
	ShortTTL time.Duration

	// Timeout bounds each wait for a lock (locked.WithTimeout), including
	// the waits for a short-TTL holder to lapse. Default DefaultTimeout.
	Timeout time.Duration
}

// Run runs the suite with the default settings: Harness{NewRepo: newRepo,
// NewService: newService}.Run(t). See Harness.Run.
func Run(t *testing.T, newRepo func(t *testing.T) repository.Repository[*Entity], newService func(t *testing.T) *locked.Service) {
	t.Helper()
	Harness{NewRepo: newRepo, NewService: newService}.Run(t)
}

// Run runs the conformance suite. Subtests run one after another (not in
// parallel), each named as below; "unchanged" means that Find returns the
// value stored before the failed call.
//
//   - NoLostUpdate: Workers goroutines × Cycles cycles of locked.Load, N++,
//     Save, Close on one entity end with N == Workers×Cycles exactly.
//   - InsertThenFind: Find returns what Insert stored, field for field.
//   - FindMissing: Find of an unknown ID returns an error matching
//     repository.ErrNotFound.
//   - InsertExisting: Insert of a taken ID returns an error matching
//     repository.ErrExists; the stored entity is unchanged.
//   - FindReturnsCopy: modifying an entity returned by Find, without Save,
//     does not change what is stored.
//   - StoresCopy: modifying an entity after Insert, or after Save and
//     Close, does not change what is stored.
//   - SaveThenFind: one proof saves twice; Find returns the second value.
//   - ZeroProofRejected: Save and Delete with &locked.Locked[*Entity]{}
//     and with nil return errors matching locked.ErrNotHeld.
//   - ClosedProofRejected: Save and Delete with a closed proof return
//     ErrNotHeld; unchanged.
//   - ExpiredProofRejected: a proof with a short TTL, after another Load of
//     the entity succeeded because it lapsed: Save and Delete return
//     ErrNotHeld; unchanged.
//   - StaleFenceRejected: holder A lapses, B (with a greater fence) loads,
//     modifies and saves; A's Save and Delete return ErrNotHeld, A.Check
//     fails, and B's value stays.
//   - IdentityChanged: a proof whose entity's Key was changed (to another
//     stored entity's ID, to a new ID, to "") cannot Save or Delete
//     (ErrNotHeld); no record changes.
//   - SaveAfterDelete: Delete with a proof removes the entity; a Save with
//     the same proof then returns ErrNotFound or ErrNotHeld and does not
//     recreate it.
//   - DeleteByIDIdempotent: DeleteByID of a stored ID, again, and of an ID
//     never stored returns nil; Find then returns ErrNotFound.
//   - BadInput: Insert of a nil entity and of one with an empty Key return
//     errors matching persistent.ErrInvalid and store nothing;
//     DeleteByID("") returns an error.
//   - ForceReleasedProofRejected: after svc.ForceRelease of the proof's key,
//     Save and Delete return ErrNotHeld; unchanged.
//   - ForeignProofRejected (only with Harness.NewForeignService): holder
//     A saves with a proof of NewService's store; holder B, which holds the
//     same entity at the same time in the foreign store, cannot Save or
//     Delete (ErrNotHeld); unchanged; A's next Save succeeds.
//   - CancelledContext: Find, Insert, Save, Delete and DeleteByID with a
//     cancelled context return errors matching context.Canceled and change
//     nothing.
//   - All: the entities inserted are yielded once each, as stored (not as
//     a holder has modified them unsaved), while another holder keeps one
//     of them locked; IDs come in strictly increasing byte order (entities
//     of other subtests in a shared store may come between); entities
//     deleted with a proof or by ID are not yielded; a yield that returns
//     false is the last call, and the repository answers afterwards; the
//     loop body may load, save and close an entity under its lock; with a
//     cancelled context All yields one error matching context.Canceled and
//     stops.
//   - PausedHolderAfterNewWrite: holder A is paused inside Save (while the
//     repository encodes its entity) and loses its lock; B loads, adds 10,
//     saves and closes; then A resumes. A's write must not land after B's:
//     A's Save fails with ErrNotHeld, or (if the repository made B wait for
//     A) B read A's value. This is the fencing test: a repository that
//     checks the proof before encoding and compares no fence fails it.
//   - PausedHolderAfterNewLoad: the same, but A resumes after B has loaded
//     and before B saves. A's Save must fail with ErrNotHeld unless B read
//     A's value: a write that lands between B's read and B's write is a
//     lost update even though B's fence is newer.
//   - PausedHolderAfterReinsert: the same, but B deletes the entity with
//     its proof and closes, and the ID is then inserted anew, before A
//     resumes. A's stale write must not land on the new entity: a
//     repository that forgets an ID's last fence when it deletes the record
//     fails this.
func (h Harness) Run(t *testing.T) {
	t.Helper()
	if h.NewRepo == nil || h.NewService == nil {
		t.Fatal("repositorytest: Harness.NewRepo and Harness.NewService must not be nil")
	}
	if h.Workers <= 0 {
		h.Workers = 8
	}
	if h.Cycles <= 0 {
		h.Cycles = 1000
		if testing.Short() {
			h.Cycles = 100
		}
	}
	if h.ShortTTL <= 0 {
		h.ShortTTL = DefaultShortTTL
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultTimeout
	}
	s := suite{h}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"NoLostUpdate", s.testNoLostUpdate},
		{"InsertThenFind", s.testInsertThenFind},
		{"FindMissing", s.testFindMissing},
		{"InsertExisting", s.testInsertExisting},
		{"FindReturnsCopy", s.testFindReturnsCopy},
		{"StoresCopy", s.testStoresCopy},
		{"SaveThenFind", s.testSaveThenFind},
		{"ZeroProofRejected", s.testZeroProofRejected},
		{"ClosedProofRejected", s.testClosedProofRejected},
		{"ExpiredProofRejected", s.testExpiredProofRejected},
		{"StaleFenceRejected", s.testStaleFenceRejected},
		{"IdentityChanged", s.testIdentityChanged},
		{"SaveAfterDelete", s.testSaveAfterDelete},
		{"DeleteByIDIdempotent", s.testDeleteByIDIdempotent},
		{"BadInput", s.testBadInput},
		{"ForceReleasedProofRejected", s.testForceReleasedProofRejected},
		{"ForeignProofRejected", s.testForeignProofRejected},
		{"CancelledContext", s.testCancelledContext},
		{"All", s.testAll},
		{"PausedHolderAfterNewWrite", func(t *testing.T) { s.testPausedHolder(t, afterNewWrite) }},
		{"PausedHolderAfterNewLoad", func(t *testing.T) { s.testPausedHolder(t, afterNewLoad) }},
		{"PausedHolderAfterReinsert", func(t *testing.T) { s.testPausedHolder(t, afterReinsert) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct{ h Harness }

// env is what a subtest works with.
type env struct {
	ctx  context.Context
	repo repository.Repository[*Entity]
	svc  *locked.Service
	h    Harness
}

// env returns a context that ends with t, a new repository and a new Service.
func (s suite) env(t *testing.T) env {
	t.Helper()
	repo := s.h.NewRepo(t)
	if repo == nil {
		t.Fatal("NewRepo returned nil")
	}
	svc := s.h.NewService(t)
	if svc == nil {
		t.Fatal("NewService returned nil")
	}
	return env{ctx: t.Context(), repo: repo, svc: svc, h: s.h}
}

// newID returns an ID no other test uses.
func newID() string { return uuid.NewString() }

// insert stores a new entity with a fresh ID, N and a tag, and returns a
// copy of what was stored.
func (e env) insert(t *testing.T, n int64) Entity {
	t.Helper()
	ent := &Entity{Key: newID(), N: n, Tags: []string{"a", "b"}}
	want := clone(ent)
	if err := e.repo.Insert(e.ctx, ent); err != nil {
		t.Fatalf("Insert(%+v) = %v, want nil", want, err)
	}
	return want
}

func clone(e *Entity) Entity {
	c := *e
	c.Tags = slices.Clone(e.Tags)
	return c
}

func equal(a, b Entity) bool {
	return a.Key == b.Key && a.N == b.N && slices.Equal(a.Tags, b.Tags)
}

// find calls Find and fails t unless it succeeds with an entity of that ID.
func (e env) find(t *testing.T, id string) *Entity {
	t.Helper()
	got, err := e.repo.Find(e.ctx, id)
	if err != nil {
		t.Fatalf("Find(%q) = %v, want nil", id, err)
	}
	if got == nil {
		t.Fatalf("Find(%q) returned a nil entity and no error", id)
	}
	if got.Key != id {
		t.Fatalf("Find(%q) returned the entity with Key %q", id, got.Key)
	}
	return got
}

// wantStored fails t unless Find returns want.
func (e env) wantStored(t *testing.T, want Entity, why string) {
	t.Helper()
	if got := e.find(t, want.Key); !equal(*got, want) {
		t.Fatalf("%s: Find(%q) = %+v, want %+v", why, want.Key, *got, want)
	}
}

// wantMissing fails t unless Find returns ErrNotFound.
func (e env) wantMissing(t *testing.T, id, why string) {
	t.Helper()
	got, err := e.repo.Find(e.ctx, id)
	if !errors.Is(err, repository.ErrNotFound) {
		t.Fatalf("%s: Find(%q) = %+v, %v; want an error matching repository.ErrNotFound", why, id, got, err)
	}
}

// load calls locked.Load with opts (after a generous timeout) and fails t
// unless it succeeds. The proof is closed when t ends.
func (e env) load(t *testing.T, id string, opts ...locked.CallOption) *locked.Locked[*Entity] {
	t.Helper()
	opts = append([]locked.CallOption{locked.WithTimeout(e.h.Timeout)}, opts...)
	l, err := locked.Load(e.ctx, e.svc, e.repo, id, opts...)
	if err != nil {
		t.Fatalf("locked.Load(%q) = %v, want nil", id, err)
	}
	t.Cleanup(func() { _ = l.Close() }) // it may have lapsed: nothing to check
	if l.Entity() == nil || l.Entity().Key != id {
		t.Fatalf("locked.Load(%q) returned the entity %+v", id, l.Entity())
	}
	return l
}

// save calls Save and fails t unless it succeeds.
func (e env) save(t *testing.T, l *locked.Locked[*Entity], who string) {
	t.Helper()
	if err := e.repo.Save(e.ctx, l); err != nil {
		t.Fatalf("Save by %s = %v, want nil", who, err)
	}
}

// wantErr fails t unless err matches every target.
func wantErr(t *testing.T, call string, err error, targets ...error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded, want an error matching %q", call, targets)
	}
	for _, target := range targets {
		if !errors.Is(err, target) {
			t.Fatalf("%s = %v, want an error matching %q (errors.Is)", call, err, target)
		}
	}
}

// wantNotHeld fails t unless Save and Delete with l both fail with
// ErrNotHeld and the stored entity is still want.
func (e env) wantNotHeld(t *testing.T, l *locked.Locked[*Entity], want Entity, what string) {
	t.Helper()
	err := e.repo.Save(e.ctx, l)
	wantErr(t, "Save with "+what, err, locked.ErrNotHeld)
	e.wantStored(t, want, "after Save with "+what)
	err = e.repo.Delete(e.ctx, l)
	wantErr(t, "Delete with "+what, err, locked.ErrNotHeld)
	e.wantStored(t, want, "after Delete with "+what)
}

func (s suite) testNoLostUpdate(t *testing.T) {
	e := s.env(t)
	id := e.insert(t, 0).Key
	workers, cycles := s.h.Workers, s.h.Cycles

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cycles {
				l, err := locked.Load(e.ctx, e.svc, e.repo, id, locked.WithTimeout(s.h.Timeout))
				if err != nil {
					t.Errorf("worker %d cycle %d: locked.Load = %v", w, i, err)
					return
				}
				l.Entity().N++
				err = e.repo.Save(e.ctx, l)
				if cerr := l.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("Close: %w", cerr)
				}
				if err != nil {
					t.Errorf("worker %d cycle %d: Save = %v", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if got, want := e.find(t, id).N, int64(workers*cycles); got != want {
		t.Fatalf("after %d workers × %d cycles of Load, N++, Save: N = %d, want %d (%d updates lost)", workers, cycles, got, want, want-got)
	}
}

func (s suite) testInsertThenFind(t *testing.T) {
	e := s.env(t)
	a := e.insert(t, 42)
	b := e.insert(t, -7)
	e.wantStored(t, a, "after Insert")
	e.wantStored(t, b, "after Insert of another entity")
}

func (s suite) testFindMissing(t *testing.T) {
	e := s.env(t)
	e.wantMissing(t, newID(), "an ID never stored")
}

func (s suite) testInsertExisting(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	err := e.repo.Insert(e.ctx, &Entity{Key: orig.Key, N: 2, Tags: []string{"other"}})
	wantErr(t, "Insert of an existing ID", err, repository.ErrExists)
	e.wantStored(t, orig, "after a second Insert of the same ID")
}

func (s suite) testFindReturnsCopy(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	got := e.find(t, orig.Key)
	got.N = 99
	got.Tags[0] = "changed"
	got.Tags = append(got.Tags, "more")
	e.wantStored(t, orig, "after modifying Find's result without Save")

	// Two Finds must not share memory either.
	x, y := e.find(t, orig.Key), e.find(t, orig.Key)
	if x == y {
		t.Fatalf("two Finds of %q returned the same pointer", orig.Key)
	}
	x.Tags[1] = "changed"
	if y.Tags[1] != orig.Tags[1] {
		t.Fatalf("two Finds of %q share the Tags slice", orig.Key)
	}
}

func (s suite) testStoresCopy(t *testing.T) {
	e := s.env(t)
	ent := &Entity{Key: newID(), N: 1, Tags: []string{"a", "b"}}
	orig := clone(ent)
	if err := e.repo.Insert(e.ctx, ent); err != nil {
		t.Fatalf("Insert = %v", err)
	}
	ent.N = 99
	ent.Tags[0] = "changed"
	e.wantStored(t, orig, "after modifying the inserted entity without Save")

	l := e.load(t, orig.Key)
	l.Entity().N = 2
	l.Entity().Tags[1] = "saved"
	saved := clone(l.Entity())
	e.save(t, l, "the holder")
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	l.Entity().N = 3
	l.Entity().Tags[0] = "changed"
	e.wantStored(t, saved, "after modifying a saved entity after Close")
}

func (s suite) testSaveThenFind(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	l := e.load(t, orig.Key)
	if got := clone(l.Entity()); !equal(got, orig) {
		t.Fatalf("locked.Load returned %+v, want the stored %+v", got, orig)
	}
	l.Entity().N = 2
	e.save(t, l, "the holder")
	e.wantStored(t, clone(l.Entity()), "after Save")
	l.Entity().N = 3
	l.Entity().Tags = append(l.Entity().Tags, "c")
	e.save(t, l, "the holder, a second time with the same proof")
	e.wantStored(t, clone(l.Entity()), "after the second Save")
}

func (s suite) testZeroProofRejected(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	e.wantNotHeld(t, &locked.Locked[*Entity]{}, orig, "a zero proof")
	e.wantNotHeld(t, nil, orig, "a nil proof")
}

func (s suite) testClosedProofRejected(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	l := e.load(t, orig.Key)
	l.Entity().N = 2
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	e.wantNotHeld(t, l, orig, "a closed proof")
}

func (s suite) testExpiredProofRejected(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	a := e.load(t, orig.Key, locked.WithTTL(s.h.ShortTTL))
	a.Entity().N = 2
	// Blocks until a lapses: proof that it has.
	e.load(t, orig.Key)
	e.wantNotHeld(t, a, orig, "a proof whose lease lapsed")
}

func (s suite) testStaleFenceRejected(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	a := e.load(t, orig.Key, locked.WithTTL(s.h.ShortTTL))
	a.Entity().N = 100
	b := e.load(t, orig.Key) // blocks until a lapses
	if b.Fence() <= a.Fence() {
		t.Fatalf("fence of the second holder = %d, want > %d", b.Fence(), a.Fence())
	}
	b.Entity().N = 200
	e.save(t, b, "the new holder")
	want := clone(b.Entity())

	e.wantNotHeld(t, a, want, "the lapsed holder's proof after the new holder saved")
	wantErr(t, "Check of the lapsed holder's proof", a.Check(e.ctx), locked.ErrNotHeld)
	if err := b.Check(e.ctx); err != nil {
		t.Fatalf("Check of the new holder's proof = %v, want nil", err)
	}
}

func (s suite) testIdentityChanged(t *testing.T) {
	e := s.env(t)
	x := e.insert(t, 1)
	y := e.insert(t, 2)
	for _, c := range []struct{ name, key string }{
		{"another stored ID", y.Key},
		{"a new ID", newID()},
		{"the empty ID", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := e.load(t, x.Key)
			l.Entity().Key = c.key
			l.Entity().N = 3
			e.wantNotHeld(t, l, x, "a proof whose entity's Key was changed to "+c.name)
			e.wantStored(t, y, "the other entity")
			if c.key != y.Key && c.key != "" {
				e.wantMissing(t, c.key, "the new ID")
			}
		})
	}
}

func (s suite) testSaveAfterDelete(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	l := e.load(t, orig.Key)
	if err := e.repo.Delete(e.ctx, l); err != nil {
		t.Fatalf("Delete with a valid proof = %v, want nil", err)
	}
	e.wantMissing(t, orig.Key, "after Delete")
	l.Entity().N = 2
	err := e.repo.Save(e.ctx, l)
	if !errors.Is(err, repository.ErrNotFound) && !errors.Is(err, locked.ErrNotHeld) {
		t.Fatalf("Save after Delete with the same proof = %v, want an error matching repository.ErrNotFound or locked.ErrNotHeld", err)
	}
	e.wantMissing(t, orig.Key, "after Save of a deleted entity")
}

func (s suite) testDeleteByIDIdempotent(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	for i := range 2 {
		if err := e.repo.DeleteByID(e.ctx, orig.Key); err != nil {
			t.Fatalf("DeleteByID #%d = %v, want nil", i+1, err)
		}
		e.wantMissing(t, orig.Key, fmt.Sprintf("after DeleteByID #%d", i+1))
	}
	if err := e.repo.DeleteByID(e.ctx, newID()); err != nil {
		t.Fatalf("DeleteByID of an ID never stored = %v, want nil", err)
	}
}

func (s suite) testBadInput(t *testing.T) {
	e := s.env(t)
	err := e.repo.Insert(e.ctx, nil)
	wantErr(t, "Insert(nil)", err, persistent.ErrInvalid)
	err = e.repo.Insert(e.ctx, &Entity{Key: "", N: 1})
	wantErr(t, `Insert of an entity with Key ""`, err, persistent.ErrInvalid)
	if got, err := e.repo.Find(e.ctx, ""); err == nil {
		t.Fatalf(`Find("") after a rejected Insert = %+v, nil; want an error`, got)
	}
	if err := e.repo.DeleteByID(e.ctx, ""); err == nil {
		t.Fatal(`DeleteByID("") = nil, want an error`)
	}
}

func (s suite) testForceReleasedProofRejected(t *testing.T) {
	e := s.env(t)
	orig := e.insert(t, 1)
	l := e.load(t, orig.Key)
	l.Entity().N = 2
	held, err := e.svc.ForceRelease(e.ctx, l.Key())
	if err != nil || !held {
		t.Fatalf("ForceRelease(%q) = %v, %v; want true, nil", l.Key(), held, err)
	}
	e.wantNotHeld(t, l, orig, "a force-released proof")
}

func (s suite) testForeignProofRejected(t *testing.T) {
	if s.h.NewForeignService == nil {
		t.Skip("Harness.NewForeignService is nil")
	}
	e := s.env(t)
	foreign := s.h.NewForeignService(t)
	if foreign == nil {
		t.Fatal("NewForeignService returned nil")
	}
	orig := e.insert(t, 1)
	a := e.load(t, orig.Key)
	a.Entity().N = 2
	e.save(t, a, "the holder") // binds a repository that binds to its first proof's store
	want := clone(a.Entity())

	// B holds the same entity at the same time, in the other store.
	b, err := locked.Load(e.ctx, foreign, e.repo, orig.Key, locked.WithTimeout(e.h.Timeout))
	if err != nil {
		t.Fatalf("locked.Load(%q) through the foreign Service = %v, want nil: it holds in a store of its own", orig.Key, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	b.Entity().N = 100
	e.wantNotHeld(t, b, want, "a proof from another lock store")

	a.Entity().N = 3
	e.save(t, a, "the holder, after the foreign proof was refused")
	e.wantStored(t, clone(a.Entity()), "after the holder's second Save")
}

func (s suite) testCancelledContext(t *testing.T) {
	e := s.env(t)
	cancelled, cancel := context.WithCancel(e.ctx)
	cancel()
	wantCanceled := func(t *testing.T, call string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with a cancelled context = %v, want an error matching context.Canceled", call, err)
		}
	}
	// Each call gets its own entity, so that one failure cannot hide another.
	t.Run("Find", func(t *testing.T) {
		orig := e.insert(t, 1)
		got, err := e.repo.Find(cancelled, orig.Key)
		if err == nil {
			t.Fatalf("Find with a cancelled context = %+v, nil; want an error matching context.Canceled", got)
		}
		wantCanceled(t, "Find", err)
	})
	t.Run("Insert", func(t *testing.T) {
		fresh := &Entity{Key: newID(), N: 1}
		wantCanceled(t, "Insert", e.repo.Insert(cancelled, fresh))
		e.wantMissing(t, fresh.Key, "after Insert with a cancelled context")
	})
	t.Run("Save", func(t *testing.T) {
		orig := e.insert(t, 1)
		l := e.load(t, orig.Key)
		l.Entity().N = 2
		wantCanceled(t, "Save", e.repo.Save(cancelled, l))
		e.wantStored(t, orig, "after Save with a cancelled context")
	})
	t.Run("Delete", func(t *testing.T) {
		orig := e.insert(t, 1)
		l := e.load(t, orig.Key)
		wantCanceled(t, "Delete", e.repo.Delete(cancelled, l))
		e.wantStored(t, orig, "after Delete with a cancelled context")
	})
	t.Run("DeleteByID", func(t *testing.T) {
		orig := e.insert(t, 1)
		wantCanceled(t, "DeleteByID", e.repo.DeleteByID(cancelled, orig.Key))
		e.wantStored(t, orig, "after DeleteByID with a cancelled context")
	})
}

// pausedMode says how far holder B gets while holder A is paused.
type pausedMode int

const (
	afterNewWrite pausedMode = iota // B loads, adds 10, saves and closes
	afterNewLoad                    // B loads; A resumes before B adds 10 and saves
	afterReinsert                   // B loads, deletes and closes; the ID is inserted anew
)

// testPausedHolder pauses holder A inside its Save, while the repository
// encodes A's entity, takes A's lock away with ForceRelease (as an expiry
// during a long pause would) and lets holder B run as far as mode says
// before A resumes. A adds 1 to N. Whatever order the repository imposes,
// the outcome must be that of some serial order of the writes that
// succeeded, with A's write, if any, before B's read.
func (s suite) testPausedHolder(t *testing.T, mode pausedMode) {
	e := s.env(t)
	orig := e.insert(t, 1)
	a := e.load(t, orig.Key)
	a.Entity().N++
	aN := a.Entity().N

	paused, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	resumeA := func() { once.Do(func() { close(resume) }) }
	t.Cleanup(resumeA) // never leave A paused, whatever fails
	pauses.Store(a.Entity(), func() {
		close(paused)
		<-resume
	})
	t.Cleanup(func() { pauses.Delete(a.Entity()) })

	aDone := make(chan error, 1)
	go func() { aDone <- e.repo.Save(e.ctx, a) }()
	select {
	case <-paused:
	case err := <-aDone:
		t.Skipf("Save did not encode the entity with encoding/json, so it cannot be paused (it returned %v)", err)
	case <-time.After(s.h.Timeout):
		t.Fatalf("Save with a valid proof did not return within %v", s.h.Timeout)
	}

	if held, err := e.svc.ForceRelease(e.ctx, a.Key()); err != nil || !held {
		t.Fatalf("ForceRelease(%q) while A was paused = %v, %v; want true, nil", a.Key(), held, err)
	}

	type bResult struct {
		read int64 // N as B loaded it
		err  error
	}
	loaded, proceed := make(chan struct{}), make(chan struct{})
	var proceedOnce sync.Once
	proceedB := func() { proceedOnce.Do(func() { close(proceed) }) }
	t.Cleanup(proceedB)
	bDone := make(chan bResult, 1)
	go func() {
		b, err := locked.Load(e.ctx, e.svc, e.repo, orig.Key, locked.WithTimeout(s.h.Timeout))
		close(loaded)
		if err != nil {
			bDone <- bResult{err: fmt.Errorf("B's locked.Load: %w", err)}
			return
		}
		read := b.Entity().N
		switch {
		case b.Fence() <= a.Fence():
			err = fmt.Errorf("B's fence %d is not above A's %d", b.Fence(), a.Fence())
		case mode == afterReinsert:
			if err = e.repo.Delete(e.ctx, b); err != nil {
				err = fmt.Errorf("B's Delete: %w", err)
			}
		default:
			if mode == afterNewLoad {
				<-proceed
			}
			b.Entity().N += 10
			if err = e.repo.Save(e.ctx, b); err != nil {
				err = fmt.Errorf("B's Save: %w", err)
			}
		}
		if cerr := b.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("B's Close: %w", cerr)
		}
		bDone <- bResult{read: read, err: err}
	}()

	// The entity inserted anew after B's Delete, in afterReinsert mode.
	reinserted := Entity{Key: orig.Key, N: 500, Tags: []string{"new"}}
	reinsert := func() {
		t.Helper()
		if err := e.repo.Insert(e.ctx, &Entity{Key: reinserted.Key, N: reinserted.N, Tags: []string{"new"}}); err != nil {
			t.Fatalf("Insert after B's Delete = %v, want nil", err)
		}
	}

	// Let B get as far as mode says while A is paused. If it cannot (the
	// repository makes B wait for A's Save), resume A anyway: the
	// assertions below hold for that order too.
	var (
		b         bResult
		bFinished bool
		inserted  bool
	)
	waitFor := loaded
	if mode != afterNewLoad {
		waitFor = nil
	}
	select {
	case <-waitFor:
	case b = <-bDone:
		bFinished = true
	case <-time.After(blockedBound):
		t.Logf("B did not get far within %v while A was paused inside Save; resuming A", blockedBound)
	}
	if bFinished && b.err == nil && mode == afterReinsert {
		reinsert()
		inserted = true
	}

	resumeA()
	var aErr error
	select {
	case aErr = <-aDone:
	case <-time.After(s.h.Timeout):
		t.Fatalf("A's Save did not return within %v of resuming", s.h.Timeout)
	}
	proceedB()
	if !bFinished {
		select {
		case b = <-bDone:
		case <-time.After(s.h.Timeout):
			t.Fatalf("B did not finish within %v of A's Save returning", s.h.Timeout)
		}
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	if mode == afterReinsert && !inserted {
		reinsert()
	}

	switch {
	case aErr == nil && b.read != aN:
		t.Errorf("A's Save returned nil after A had lost its lock, yet B, which took the lock after A, read N=%d, not A's %d: "+
			"A's write landed after B's read", b.read, aN)
	case aErr != nil && !errors.Is(aErr, locked.ErrNotHeld):
		t.Errorf("A's Save after losing its lock = %v, want nil (only if B then read A's write) or an error matching locked.ErrNotHeld", aErr)
	case aErr != nil && b.read != orig.N:
		t.Errorf("A's Save failed (%v) but B read N=%d, want the original %d", aErr, b.read, orig.N)
	}
	got := *e.find(t, orig.Key)
	switch {
	case mode == afterReinsert && !equal(got, reinserted):
		t.Errorf("after B deleted the entity and it was inserted anew, Find = %+v, want the new %+v (A's stale Save returned %v)", got, reinserted, aErr)
	case mode != afterReinsert && got.N != b.read+10:
		t.Errorf("final N = %d, want B's %d (B held the lock last; A's Save returned %v)", got.N, b.read+10, aErr)
	}
}

func (s suite) testAll(t *testing.T) {
	e := s.env(t)
	want := map[string]Entity{}
	var kept []Entity
	for n := range int64(4) {
		ent := e.insert(t, n)
		want[ent.Key] = ent
		kept = append(kept, ent)
	}
	gone := e.insert(t, 10)
	l := e.load(t, gone.Key)
	if err := e.repo.Delete(e.ctx, l); err != nil {
		t.Fatalf("Delete with a valid proof = %v, want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	goneByID := e.insert(t, 11)
	if err := e.repo.DeleteByID(e.ctx, goneByID.Key); err != nil {
		t.Fatalf("DeleteByID = %v, want nil", err)
	}
	// A holder keeps one entity locked and modified, unsaved, during the
	// iteration: All needs no lock, and yields what is stored.
	held := e.load(t, kept[0].Key)
	held.Entity().N = 99

	seen := map[string]int{}
	prev, first := "", true
	for ent, err := range e.repo.All(e.ctx) {
		if err != nil {
			t.Fatalf("All yielded the error %v, want none", err)
		}
		if ent == nil {
			t.Fatal("All yielded a nil entity and no error")
		}
		if !first && ent.Key <= prev {
			t.Fatalf("All yielded %q after %q: want strictly increasing IDs (ID order, each once)", ent.Key, prev)
		}
		prev, first = ent.Key, false
		switch ent.Key {
		case gone.Key:
			t.Fatalf("All yielded %q, deleted with its proof", gone.Key)
		case goneByID.Key:
			t.Fatalf("All yielded %q, deleted by ID", goneByID.Key)
		}
		if w, ok := want[ent.Key]; ok {
			seen[ent.Key]++
			if !equal(*ent, w) {
				t.Fatalf("All yielded %+v, want the stored %+v", *ent, w)
			}
			ent.Tags[0] = "changed" // a private copy: the store is not changed
		}
	}
	for _, w := range kept {
		if seen[w.Key] != 1 {
			t.Fatalf("All yielded the inserted %q %d times, want once", w.Key, seen[w.Key])
		}
	}
	e.wantStored(t, kept[1], "after modifying an entity yielded by All")
	if err := held.Close(); err != nil {
		t.Fatalf("Close of the holder = %v", err)
	}

	// The iteration stops when yield returns false. Called directly, not
	// through range, so that a repository that goes on is reported, not a
	// panic of the range-over-func machinery.
	calls := 0
	e.repo.All(e.ctx)(func(*Entity, error) bool {
		calls++
		return false
	})
	if calls != 1 {
		t.Fatalf("All called yield %d times after it returned false the first time, want 1", calls)
	}

	// After a break, and inside the loop body, the repository answers and
	// entities can be locked: an iteration must not hold what the body
	// needs (a database connection, a mutex). Bounded, so that a
	// repository that does block fails here instead of hanging.
	bounded, cancel := context.WithTimeout(e.ctx, e.h.Timeout)
	defer cancel()
	target := kept[2]
	updated := false
	for ent, err := range e.repo.All(bounded) {
		if err != nil {
			t.Fatalf("All yielded the error %v, want none", err)
		}
		if ent.Key != target.Key {
			continue
		}
		l, err := locked.Load(bounded, e.svc, e.repo, target.Key, locked.WithTimeout(e.h.Timeout))
		if err != nil {
			t.Fatalf("locked.Load inside a loop over All = %v, want nil", err)
		}
		l.Entity().N = 77
		err = e.repo.Save(bounded, l)
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("Save inside a loop over All = %v, want nil", err)
		}
		updated = true
		break
	}
	if !updated {
		t.Fatalf("All did not yield %q", target.Key)
	}
	target.N = 77
	e.wantStored(t, target, "after a Save inside a loop over All, and a break")

	cancelled, cancelNow := context.WithCancel(e.ctx)
	cancelNow()
	errs := 0
	for got, err := range e.repo.All(cancelled) {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("All with a cancelled context yielded %+v, %v; want an error matching context.Canceled", got, err)
		}
		errs++
	}
	if errs != 1 {
		t.Fatalf("All with a cancelled context yielded %d errors, want 1, then the end", errs)
	}
}
