package sqlrepo_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// engine is one database under test.
type engine struct {
	name string
	d    *sqlrepo.Dialect
	open func(t testing.TB) *sql.DB
}

var engines = []engine{
	{"postgres", sqlrepo.Postgres, openPG},
	{"sqlite", sqlrepo.SQLite, openSQLite},
}

func forEngines(t *testing.T, f func(t *testing.T, db *sql.DB, r *sqlrepo.Repository[*entity], d *sqlrepo.Dialect)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			db := e.open(t)
			f(t, db, newRepo(t, db, &sqlrepo.Options{Dialect: e.d}), e.d)
		})
	}
}

func wantIs(t testing.TB, call string, err error, targets ...error) {
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

// finderOnly hides the repository's Claim, so locked.Load falls back to Find.
type finderOnly struct{ r *sqlrepo.Repository[*entity] }

func (f finderOnly) Find(ctx context.Context, id string) (*entity, error) { return f.r.Find(ctx, id) }

// pausedHolder runs the interleaving of decision "claim on load": A loads,
// lapses (force-released), B loads, A saves, B saves. It returns A's and
// B's Save errors and the N stored at the end.
func pausedHolder(t *testing.T, svc *locked.Service, r *sqlrepo.Repository[*entity], finder locked.Finder[*entity]) (aErr, bErr error, n int64) {
	t.Helper()
	e := insert(t, r, 1)
	a := load(t, svc, finder, e.Key)
	a.Entity().N = 100 // A's update, computed before it pauses
	// A pauses past its lease: the lock store gives the key away.
	if held, err := svc.ForceRelease(t.Context(), a.Key()); err != nil || !held {
		t.Fatalf("ForceRelease = %v, %v", held, err)
	}
	b := load(t, svc, finder, e.Key)
	if b.Fence() <= a.Fence() {
		t.Fatalf("B's fence %d is not above A's %d", b.Fence(), a.Fence())
	}
	// A resumes and writes, then B writes.
	aErr = r.Save(t.Context(), a)
	b.Entity().N += 10
	bErr = r.Save(t.Context(), b)
	got, err := r.Find(t.Context(), e.Key)
	if err != nil {
		t.Fatal(err)
	}
	return aErr, bErr, got.N
}

// TestClaimOnLoad: locked.Load through the repository writes the new
// holder's fence into the record in the reading statement, so an older
// proof is refused by the database itself (ErrStale), not only by its
// provider; through a plain Finder the record keeps the old fence.
func TestClaimOnLoad(t *testing.T) {
	forEngines(t, func(t *testing.T, db *sql.DB, r *sqlrepo.Repository[*entity], d *sqlrepo.Dialect) {
		svc := memService(t)
		e := insert(t, r, 1)
		if f := fenceOf(t, db, r, e.Key, d); f != 0 {
			t.Fatalf("fence after Insert = %d, want 0", f)
		}
		a := load(t, svc, r, e.Key)
		if f := fenceOf(t, db, r, e.Key, d); f != int64(a.Fence()) {
			t.Fatalf("fence after Load = %d, want the proof's %d", f, a.Fence())
		}
		a.Close()
		plain := load(t, svc, finderOnly{r}, e.Key)
		if f := fenceOf(t, db, r, e.Key, d); f != int64(a.Fence()) {
			t.Fatalf("fence after a Find-based Load = %d, want it unchanged at %d", f, a.Fence())
		}
		plain.Close()

		// A claim by an older lease than the record's is refused: that
		// lease's holder must not read the record as if it were current.
		c := load(t, svc, r, e.Key)
		if _, err := r.Claim(t.Context(), e.Key, a.Lease()); !errors.Is(err, repository.ErrStale) {
			t.Fatalf("Claim with an older lease = %v, want ErrStale", err)
		}
		if _, err := r.Claim(t.Context(), "missing", c.Lease()); !errors.Is(err, locked.ErrInvalid) && !errors.Is(err, repository.ErrNotFound) {
			t.Fatalf("Claim of another ID = %v", err)
		}
	})
}

// TestPausedHolder: A loads, lapses, B loads, A writes, B writes: A is
// refused, B's write lands on the value B read. With both lock stores.
func TestPausedHolder(t *testing.T) {
	c := redistest.Server(t).Client(t)
	services := map[string]func(t testing.TB) *locked.Service{
		"memprovider":   memService,
		"redisprovider": func(t testing.TB) *locked.Service { return redisService(t, c) },
	}
	for _, eng := range engines {
		for name, newSvc := range services {
			t.Run(eng.name+"/"+name, func(t *testing.T) {
				db := eng.open(t)
				r := newRepo(t, db, &sqlrepo.Options{Dialect: eng.d})
				aErr, bErr, n := pausedHolder(t, newSvc(t), r, r)
				wantIs(t, "A's Save", aErr, locked.ErrNotHeld)
				if bErr != nil {
					t.Fatalf("B's Save: %v", bErr)
				}
				if n != 11 {
					t.Fatalf("N = %d, want B's 1+10", n)
				}
			})
		}
	}
}

// TestStaleFenceByDatabase: the fence in the statement refuses an older
// proof even when its provider still confirms it (a holder that passed
// Check and paused before its statement): the next holder's claim is what
// refuses it.
func TestStaleFenceByDatabase(t *testing.T) {
	forEngines(t, func(t *testing.T, db *sql.DB, r *sqlrepo.Repository[*entity], d *sqlrepo.Dialect) {
		svcA, svcB := memService(t), memService(t) // two stores: A's provider keeps confirming A
		e := insert(t, r, 1)
		a := load(t, svcA, r, e.Key)
		a.Entity().N = 100
		// B's store hands out fences from 1 too; take enough to pass A's.
		var b *locked.Locked[*entity]
		for {
			b = load(t, svcB, finderOnly{r}, e.Key)
			if b.Fence() > a.Fence() {
				break
			}
			b.Close()
		}
		b.Close()
		b = load(t, svcB, r, e.Key) // claims with a fence above A's
		wantIs(t, "A's Save after B's claim", r.Save(t.Context(), a), repository.ErrStale, locked.ErrNotHeld)
		wantIs(t, "A's Delete after B's claim", r.Delete(t.Context(), a), repository.ErrStale)
		b.Entity().N += 10
		if err := r.Save(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		wantN(t, r, e.Key, 11, "after B's Save")
	})
}

// TestNotFoundAndTombstone: Save and Delete of a deleted record are
// ErrNotFound; a record deleted and inserted anew keeps the fence of the
// delete, so a proof from before still cannot write.
func TestNotFoundAndTombstone(t *testing.T) {
	forEngines(t, func(t *testing.T, db *sql.DB, r *sqlrepo.Repository[*entity], d *sqlrepo.Dialect) {
		svc := memService(t)
		e := insert(t, r, 1)
		a := load(t, svc, r, e.Key)
		if err := r.Delete(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		wantIs(t, "Save after Delete", r.Save(t.Context(), a), repository.ErrNotFound)
		wantIs(t, "Delete after Delete", r.Delete(t.Context(), a), repository.ErrNotFound)
		wantIs(t, "Find after Delete", func() error { _, err := r.Find(t.Context(), e.Key); return err }(), repository.ErrNotFound)
		a.Close()
		if err := r.Insert(t.Context(), &entity{Key: e.Key, N: 7}); err != nil {
			t.Fatalf("Insert over a tombstone: %v", err)
		}
		if f := fenceOf(t, db, r, e.Key, d); f != int64(a.Fence()) {
			t.Fatalf("fence after re-Insert = %d, want the delete's %d", f, a.Fence())
		}
		wantIs(t, "Insert again", r.Insert(t.Context(), &entity{Key: e.Key}), repository.ErrExists)
		wantN(t, r, e.Key, 7, "after re-Insert")
		if err := r.DeleteByID(t.Context(), e.Key); err != nil {
			t.Fatal(err)
		}
		if f := fenceOf(t, db, r, e.Key, d); f != int64(a.Fence()) {
			t.Fatalf("fence after DeleteByID = %d, want it kept at %d", f, a.Fence())
		}
	})
}

// TestUnitOfWork: two aggregates saved in one transaction; a rollback
// leaves data and fences unchanged, a commit applies both, and a stale
// proof is refused inside the transaction.
func TestUnitOfWork(t *testing.T) {
	forEngines(t, func(t *testing.T, db *sql.DB, r *sqlrepo.Repository[*entity], d *sqlrepo.Dialect) {
		svc := memService(t)
		x, y := insert(t, r, 1), insert(t, r, 2)
		fx, fy := fenceOf(t, db, r, x.Key, d), fenceOf(t, db, r, y.Key, d)
		lx, ly := load(t, svc, r, x.Key), load(t, svc, r, y.Key)
		fx, fy = fenceOf(t, db, r, x.Key, d), fenceOf(t, db, r, y.Key, d)

		tx, err := db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		lx.Entity().N, ly.Entity().N = 10, 20
		rt := r.WithTx(tx)
		if err := rt.Save(t.Context(), lx); err != nil {
			t.Fatal(err)
		}
		if err := rt.Delete(t.Context(), ly); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		wantN(t, r, x.Key, 1, "after rollback")
		wantN(t, r, y.Key, 2, "after rollback")
		if gx, gy := fenceOf(t, db, r, x.Key, d), fenceOf(t, db, r, y.Key, d); gx != fx || gy != fy {
			t.Fatalf("fences after rollback = %d, %d; want %d, %d", gx, gy, fx, fy)
		}
		wantIs(t, "Save on a done transaction", rt.Save(t.Context(), lx), locked.ErrUnavailable)

		tx, err = db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		rt = r.WithTx(tx)
		if err := rt.Save(t.Context(), lx); err != nil {
			t.Fatal(err)
		}
		if err := rt.Save(t.Context(), ly); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		wantN(t, r, x.Key, 10, "after commit")
		wantN(t, r, y.Key, 20, "after commit")
		lx.Close()

		// A stale proof inside a transaction: the next holder claimed x.
		old := lx
		next := load(t, svc, r, x.Key)
		_ = next
		tx, err = db.BeginTx(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		wantIs(t, "Save of a closed proof in a transaction", r.WithTx(tx).Save(t.Context(), old), locked.ErrNotHeld)
	})
}

// binEntity keeps its state in unexported fields: JSON would store it
// empty, so it needs repository.Binary.
type binEntity struct {
	id string
	n  int64
}

func (*binEntity) Kind() string { return "binentity" }
func (e *binEntity) ID() string { return e.id }
func (e *binEntity) MarshalBinary() ([]byte, error) {
	return []byte(fmt.Sprintf("%s|%d", e.id, e.n)), nil
}
func (e *binEntity) UnmarshalBinary(b []byte) error {
	id, n, ok := strings.Cut(string(b), "|")
	if !ok {
		return errors.New("bad binEntity")
	}
	e.id = id
	_, err := fmt.Sscan(n, &e.n)
	return err
}

// TestCodec: the Binary codec stores an entity with unexported fields;
// with the default JSON codec Insert refuses it and stores nothing.
func TestCodec(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			db := eng.open(t)
			r, err := sqlrepo.New[*binEntity](db, &sqlrepo.Options{Dialect: eng.d, Codec: repository.Binary})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.CreateTable(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := r.Insert(t.Context(), &binEntity{id: "b1", n: 42}); err != nil {
				t.Fatal(err)
			}
			got, err := r.Find(t.Context(), "b1")
			if err != nil || got.n != 42 || got.id != "b1" {
				t.Fatalf("Find = %+v, %v", got, err)
			}
			j, err := sqlrepo.New[*binEntity](db, &sqlrepo.Options{Dialect: eng.d})
			if err != nil {
				t.Fatal(err)
			}
			wantIs(t, "JSON Insert of unexported fields", j.Insert(t.Context(), &binEntity{id: "b2", n: 1}), repository.ErrCodec, locked.ErrInvalid)
			if _, err := r.Find(t.Context(), "b2"); !errors.Is(err, repository.ErrNotFound) {
				t.Fatalf("Find after a refused Insert = %v, want ErrNotFound", err)
			}
		})
	}
}

// badKind has a kind that is not an SQL identifier.
type badKind struct{ Key string }

func (*badKind) Kind() string { return "bad-kind" }
func (e *badKind) ID() string { return e.Key }

// TestNewBadInput: each bad option is a clear ErrInvalid error.
func TestNewBadInput(t *testing.T) {
	db := openSQLite(t)
	cases := []struct {
		name string
		new  func() error
		want string
	}{
		{"nil db", func() error { _, err := sqlrepo.New[*entity](nil, nil); return err }, "db"},
		{"table", func() error { _, err := sqlrepo.New[*entity](db, &sqlrepo.Options{Table: "x; DROP"}); return err }, "Table"},
		{"kind", func() error { _, err := sqlrepo.New[*badKind](db, nil); return err }, "Options.Table"},
		{"namespace", func() error { _, err := sqlrepo.New[*entity](db, &sqlrepo.Options{Namespace: "a:b"}); return err }, "Namespace"},
		{"hold on sqlite", func() error {
			_, err := sqlrepo.New[*entity](db, &sqlrepo.Options{Dialect: sqlrepo.SQLite, Hold: holdFunc(nil)})
			return err
		}, "Postgres"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.new()
			wantIs(t, "New", err, locked.ErrInvalid)
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want it to mention %q", err, c.want)
			}
		})
	}
	if _, err := sqlrepo.New[*badKind](db, &sqlrepo.Options{Table: "bad_kind"}); err != nil {
		t.Fatalf("New with Options.Table for a non-identifier kind: %v", err)
	}
	if _, err := sqlrepo.Schema(nil, "1x"); err == nil {
		t.Fatal("Schema of a bad table name = nil error")
	}
}

type holdFunc func(key, token, fence string) string

func (f holdFunc) HoldSQL(key, token, fence string) string { return f(key, token, fence) }

// TestNamespace: a proof from a Service in another namespace is refused.
func TestNamespace(t *testing.T) {
	db := openSQLite(t)
	r := newRepo(t, db, &sqlrepo.Options{Dialect: sqlrepo.SQLite, Namespace: "app"})
	e := insert(t, r, 1)
	if _, err := locked.Load(t.Context(), memService(t), r, e.Key); !errors.Is(err, locked.ErrInvalid) {
		t.Fatalf("Load from a Service without the namespace = %v, want ErrInvalid", err)
	}
	svc := newService(t, memprovider.New(), &locked.Options{Namespace: "app"})
	l := load(t, svc, r, e.Key)
	l.Entity().N = 5
	if err := r.Save(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	wantN(t, r, e.Key, 5, "after Save in the namespace")
}

// TestDatabaseDown: a closed pool is ErrUnavailable for every call, and
// nothing is claimed to have happened.
func TestDatabaseDown(t *testing.T) {
	forEngines(t, func(t *testing.T, db *sql.DB, r *sqlrepo.Repository[*entity], d *sqlrepo.Dialect) {
		svc := memService(t)
		e := insert(t, r, 1)
		l := load(t, svc, r, e.Key)
		db.Close()
		_, err := r.Find(t.Context(), e.Key)
		wantIs(t, "Find", err, locked.ErrUnavailable)
		wantIs(t, "Save", r.Save(t.Context(), l), locked.ErrUnavailable)
		wantIs(t, "Insert", r.Insert(t.Context(), &entity{Key: "n"}), locked.ErrUnavailable)
		wantIs(t, "DeleteByID", r.DeleteByID(t.Context(), e.Key), locked.ErrUnavailable)
		if err := r.Save(t.Context(), l); errors.Is(err, locked.ErrOutcomeUnknown) {
			t.Fatalf("Save on a closed pool = %v: nothing was sent, so the outcome is known", err)
		}
		_ = persistent.ErrInvalid
	})
}
