package repositorytest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/repositorytest"
)

type entity = repositorytest.Entity

// refRepo is a deliberately simple repository that passes the whole suite:
// it shows that the suite can be passed, and the mutants below break it.
//
// It differs from repository.Memory in two ways that the suite checks: it
// rejects a cancelled context in every method, and it checks the proof
// while holding the mutex that Find also takes, after encoding, so the check
// and the write are one step for readers: a holder that loses its lock
// between the two cannot slip a write between another holder's read and
// write.
type refRepo struct {
	bugs bugs

	mu sync.Mutex
	// records, tombs, saves, shared and store are guarded by mu.
	store   locked.Store // of the first proof that passed check; zero before
	records map[string]refRecord
	tombs   map[string][]byte  // deleted records' data, for bugs.allYieldsDeleted
	saves   int                // number of Saves, for bugs.dropWrites
	shared  map[string]*entity // the caller's pointers, for bugs.sharedStore
}

type refRecord struct {
	data  []byte
	fence uint64
}

// bugs are the faults a mutant turns on, each named after the subtest that
// must catch it.
type bugs struct {
	dropWrites           bool // NoLostUpdate: every 7th Save reports success but writes nothing
	insertZeroN          bool // InsertThenFind: Insert stores N as 0
	findMissingNil       bool // FindMissing: Find of a missing ID returns nil, nil
	insertOverwrites     bool // InsertExisting: Insert of a taken ID overwrites it
	findShares           bool // FindReturnsCopy: Find returns one cached pointer per ID
	sharedStore          bool // StoresCopy: Insert and Save keep the caller's pointer
	fenceMustRise        bool // SaveThenFind: a Save needs a fence above the stored one
	zeroProofNoop        bool // ZeroProofRejected: a zero or nil proof is a silent no-op
	deleteUnchecked      bool // ClosedProofRejected: Delete does not Check the proof
	saveUnchecked        bool // ExpiredProofRejected: Save does not Check the proof (fence kept)
	trustProof           bool // StaleFenceRejected: Save neither Checks nor compares fences
	leaseCheckOnly       bool // IdentityChanged: checks the lease, not the entity's identity
	saveUpserts          bool // SaveAfterDelete: Save of a deleted entity recreates it
	deleteByIDMissingErr bool // DeleteByIDIdempotent: DeleteByID of a missing ID errs
	insertEmptyID        bool // BadInput: Insert accepts an empty Key
	localCheckOnly       bool // ForceReleasedProofRejected: checks the lease locally only
	anyStore             bool // ForeignProofRejected: accepts proofs from every lock store
	ignoreCtx            bool // CancelledContext: ignores the context
	checkFirstNoFence    bool // PausedHolderAfterNewWrite: Check before encoding, no fence
	checkFirst           bool // PausedHolderAfterNewLoad, PausedHolderAfterReinsert: Check before encoding (as Memory does)
	allYieldsDeleted     bool // All: All yields deleted records too (a tombstone not skipped)
	allDescending        bool // All: All yields IDs in decreasing order
	allIgnoresBreak      bool // All: All goes on after yield returned false
	allIgnoresCtx        bool // All: All ignores its context
}

var _ repository.Repository[*entity] = (*refRepo)(nil)

func newRefRepo(b bugs) *refRepo {
	return &refRepo{bugs: b, records: map[string]refRecord{}, tombs: map[string][]byte{}, shared: map[string]*entity{}}
}

func (r *refRepo) ctxErr(ctx context.Context) error {
	if r.bugs.ignoreCtx {
		return nil
	}
	return ctx.Err()
}

func (r *refRepo) Find(ctx context.Context, id string) (*entity, error) {
	if err := r.ctxErr(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.shared[id]; ok && (r.bugs.findShares || r.bugs.sharedStore) {
		return p, nil
	}
	rec, ok := r.records[id]
	if !ok {
		if r.bugs.findMissingNil {
			return nil, nil
		}
		return nil, repository.ErrNotFound
	}
	var e *entity
	if err := json.Unmarshal(rec.data, &e); err != nil {
		return nil, err
	}
	if r.bugs.findShares {
		r.shared[id] = e
	}
	return e, nil
}

func (r *refRepo) Insert(ctx context.Context, e *entity) error {
	if e == nil || (e.Key == "" && !r.bugs.insertEmptyID) {
		return fmt.Errorf("insert: %w", persistent.ErrInvalid)
	}
	if err := r.ctxErr(ctx); err != nil {
		return err
	}
	c := *e
	if r.bugs.insertZeroN {
		c.N = 0
	}
	data, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.records[e.Key]; ok && !r.bugs.insertOverwrites {
		return repository.ErrExists
	}
	r.records[e.Key] = refRecord{data: data}
	if r.bugs.sharedStore {
		r.shared[e.Key] = e
	}
	return nil
}

// check is l.Check, or what a mutant does instead.
func (r *refRepo) check(ctx context.Context, l *locked.Locked[*entity], unchecked bool) error {
	switch {
	case l == nil || l.Lease() == nil:
		if r.bugs.zeroProofNoop {
			return errNoop
		}
		return locked.ErrNotHeld
	case unchecked:
		return nil
	case r.bugs.leaseCheckOnly:
		return l.Lease().Check(ctx)
	case r.bugs.localCheckOnly:
		if l.Context().Err() != nil || l.Entity() == nil || "rtest:"+l.Entity().Key != l.Key() {
			return locked.ErrNotHeld
		}
		return nil
	}
	return l.Check(ctx)
}

// checkStore refuses a proof from another lock store than the first one
// that passed; bind records the store of one that passed. r.mu is held.
func (r *refRepo) checkStore(l *locked.Locked[*entity]) error {
	st := l.Lease().Store()
	if r.bugs.anyStore || r.store == (locked.Store{}) || st == r.store {
		return nil
	}
	return fmt.Errorf("proof from another lock store: %w", locked.ErrNotHeld)
}

func (r *refRepo) bind(l *locked.Locked[*entity]) {
	if r.store == (locked.Store{}) {
		r.store = l.Lease().Store()
	}
}

// errNoop makes Save and Delete return nil without writing.
var errNoop = errors.New("no-op")

func (r *refRepo) Save(ctx context.Context, l *locked.Locked[*entity]) error {
	if err := r.ctxErr(ctx); err != nil {
		return err
	}
	unchecked := r.bugs.saveUnchecked || r.bugs.trustProof
	checkFirst := r.bugs.checkFirst || r.bugs.checkFirstNoFence
	if checkFirst {
		if err := r.check(ctx, l, unchecked); err != nil {
			return noop(err)
		}
	}
	e := l.Entity()
	data, err := json.Marshal(e) // before taking mu: the suite pauses here
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkStore(l); err != nil {
		return err
	}
	if !checkFirst {
		if err := r.check(ctx, l, unchecked); err != nil {
			return noop(err)
		}
	}
	r.bind(l)
	r.saves++
	if r.bugs.dropWrites && r.saves%7 == 0 {
		return nil
	}
	rec, ok := r.records[e.Key]
	switch {
	case !ok && !r.bugs.saveUpserts:
		return repository.ErrNotFound
	case r.bugs.trustProof || r.bugs.checkFirstNoFence:
	case r.bugs.fenceMustRise && l.Fence() <= rec.fence:
		return repository.ErrStale
	case l.Fence() < rec.fence:
		return repository.ErrStale
	}
	r.records[e.Key] = refRecord{data: data, fence: l.Fence()}
	if r.bugs.sharedStore {
		r.shared[e.Key] = e
	}
	return nil
}

func (r *refRepo) Delete(ctx context.Context, l *locked.Locked[*entity]) error {
	if err := r.ctxErr(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkStore(l); err != nil {
		return err
	}
	if err := r.check(ctx, l, r.bugs.deleteUnchecked); err != nil {
		return noop(err)
	}
	r.bind(l)
	id := l.Entity().Key
	rec, ok := r.records[id]
	switch {
	case !ok:
		return repository.ErrNotFound
	case l.Fence() < rec.fence:
		return repository.ErrStale
	}
	r.bury(id)
	return nil
}

// bury removes the record of id. r.mu is held.
func (r *refRepo) bury(id string) {
	if rec, ok := r.records[id]; ok && r.bugs.allYieldsDeleted {
		r.tombs[id] = rec.data
	}
	delete(r.records, id)
	delete(r.shared, id)
}

func noop(err error) error {
	if err == errNoop {
		return nil
	}
	return err
}

func (r *refRepo) DeleteByID(ctx context.Context, id string) error {
	if id == "" {
		return persistent.ErrInvalid
	}
	if err := r.ctxErr(ctx); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.records[id]; !ok && r.bugs.deleteByIDMissingErr {
		return repository.ErrNotFound
	}
	r.bury(id)
	return nil
}

// All takes the IDs when it starts and reads each as it reaches it, as
// repository.Memory does.
func (r *refRepo) All(ctx context.Context) iter.Seq2[*entity, error] {
	return func(yield func(*entity, error) bool) {
		r.mu.Lock()
		ids := make([]string, 0, len(r.records)+len(r.tombs))
		for id := range r.records {
			ids = append(ids, id)
		}
		for id := range r.tombs {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		slices.Sort(ids)
		if r.bugs.allDescending {
			slices.Reverse(ids)
		}
		for _, id := range ids {
			if err := ctx.Err(); err != nil && !r.bugs.allIgnoresCtx {
				yield(nil, err)
				return
			}
			r.mu.Lock()
			data, ok := r.records[id].data, true
			if _, live := r.records[id]; !live {
				data, ok = r.tombs[id]
			}
			r.mu.Unlock()
			if !ok {
				continue
			}
			var e *entity
			if err := json.Unmarshal(data, &e); err != nil {
				yield(nil, err)
				return
			}
			if !yield(e, nil) && !r.bugs.allIgnoresBreak {
				return
			}
		}
	}
}

// TestRefRepo shows that the suite can be passed.
func TestRefRepo(t *testing.T) {
	repositorytest.Harness{
		NewRepo:           func(t *testing.T) repository.Repository[*entity] { return newRefRepo(bugs{}) },
		NewService:        newService,
		NewForeignService: newService, // a new provider: another lock store
	}.Run(t)
}

// mutants maps a mutant's name to the subtest that must catch it and to its
// bugs.
var mutants = map[string]struct {
	subtest string
	bugs    bugs
}{
	"DropWrites":           {"NoLostUpdate", bugs{dropWrites: true}},
	"InsertZeroN":          {"InsertThenFind", bugs{insertZeroN: true}},
	"FindMissingNil":       {"FindMissing", bugs{findMissingNil: true}},
	"InsertOverwrites":     {"InsertExisting", bugs{insertOverwrites: true}},
	"FindShares":           {"FindReturnsCopy", bugs{findShares: true}},
	"SharedStore":          {"StoresCopy", bugs{sharedStore: true}},
	"FenceMustRise":        {"SaveThenFind", bugs{fenceMustRise: true}},
	"ZeroProofNoop":        {"ZeroProofRejected", bugs{zeroProofNoop: true}},
	"DeleteUnchecked":      {"ClosedProofRejected", bugs{deleteUnchecked: true}},
	"SaveUnchecked":        {"ExpiredProofRejected", bugs{saveUnchecked: true}},
	"TrustProof":           {"StaleFenceRejected", bugs{trustProof: true}},
	"LeaseCheckOnly":       {"IdentityChanged", bugs{leaseCheckOnly: true}},
	"SaveUpserts":          {"SaveAfterDelete", bugs{saveUpserts: true}},
	"DeleteByIDMissingErr": {"DeleteByIDIdempotent", bugs{deleteByIDMissingErr: true}},
	"InsertEmptyID":        {"BadInput", bugs{insertEmptyID: true}},
	"LocalCheckOnly":       {"ForceReleasedProofRejected", bugs{localCheckOnly: true}},
	"AnyStore":             {"ForeignProofRejected", bugs{anyStore: true}},
	"IgnoreCtx":            {"CancelledContext", bugs{ignoreCtx: true}},
	"CheckFirstNoFence":    {"PausedHolderAfterNewWrite", bugs{checkFirstNoFence: true}},
	"CheckFirst":           {"PausedHolderAfterNewLoad", bugs{checkFirst: true}},
	"CheckFirstReinsert":   {"PausedHolderAfterReinsert", bugs{checkFirst: true}},
	"AllYieldsDeleted":     {"All", bugs{allYieldsDeleted: true}},
	"AllDescending":        {"All", bugs{allDescending: true}},
	"AllIgnoresBreak":      {"All", bugs{allIgnoresBreak: true}},
	"AllIgnoresCtx":        {"All", bugs{allIgnoresCtx: true}},
}

const mutantEnv = "REPOSITORYTEST_MUTANT"

// TestMutant runs the suite against the mutant named by
// $REPOSITORYTEST_MUTANT. It is a child process of TestSuiteCatchesMutants
// and skips otherwise.
func TestMutant(t *testing.T) {
	name := os.Getenv(mutantEnv)
	if name == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	mu, ok := mutants[name]
	if !ok {
		t.Fatalf("unknown mutant %q", name)
	}
	repositorytest.Harness{
		NewRepo:           func(t *testing.T) repository.Repository[*entity] { return newRefRepo(mu.bugs) },
		NewService:        newService,
		NewForeignService: newService,
	}.Run(t)
}

// TestSuiteCatchesMutants checks that every subtest of the suite can fail:
// for each mutant, the subtest aimed at it must report a failure. The
// mutants run in child processes (this test binary, restarted with
// mutantEnv set) because a failing subtest cannot be observed, only
// suffered, through *testing.T.
func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("inside a mutant run")
	}
	if testing.Short() {
		t.Skip("starts a child test process per mutant; skipped with -short")
	}
	covered := map[string]bool{}
	for name, mu := range mutants {
		covered[mu.subtest] = true
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0],
				"-test.run=^TestMutant$/^"+mu.subtest+"$",
				"-test.v", "-test.count=1", "-test.short", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), mutantEnv+"="+name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("mutant %s: child test run: err = %v, want a failing exit\n%s", name, err, out)
			}
			if want := "--- FAIL: TestMutant/" + mu.subtest + " "; !strings.Contains(string(out), want) {
				t.Fatalf("mutant %s: subtest %s did not fail:\n%s", name, mu.subtest, out)
			}
			t.Logf("mutant %s caught by %s", name, mu.subtest)
		})
	}
	for _, sub := range []string{
		"NoLostUpdate", "InsertThenFind", "FindMissing", "InsertExisting",
		"FindReturnsCopy", "StoresCopy", "SaveThenFind", "ZeroProofRejected",
		"ClosedProofRejected", "ExpiredProofRejected", "StaleFenceRejected",
		"IdentityChanged", "SaveAfterDelete", "DeleteByIDIdempotent",
		"BadInput", "ForceReleasedProofRejected", "ForeignProofRejected", "CancelledContext",
		"PausedHolderAfterNewWrite", "PausedHolderAfterNewLoad",
		"PausedHolderAfterReinsert", "All",
	} {
		if !covered[sub] {
			t.Errorf("no mutant shows that subtest %s can fail", sub)
		}
	}
}
