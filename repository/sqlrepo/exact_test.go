package sqlrepo_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider/pgprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/repositorytest"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// pgLocks returns a pgprovider on the package's server with its schema.
func pgLocks(t testing.TB) *pgprovider.Provider {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.Shared(t).DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	p, err := pgprovider.New(pool, &pgprovider.Options{PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CreateSchema(t.Context()); err != nil {
		p.Close()
		t.Fatal(err)
	}
	return p
}

func TestConformancePostgresPgprovider(t *testing.T) {
	db := openPG(t)
	repositorytest.Harness{
		NewRepo:    func(t *testing.T) repository.Repository[*entity] { return newRepo(t, db, nil) },
		NewService: func(t *testing.T) *locked.Service { return newService(t, pgLocks(t), nil) },
		Workers:    8,
		Cycles:     50,
	}.Run(t)
}

// TestConformanceExact runs the suite with the lock row checked in the
// Save and Delete statements (Options.Hold): no Check round trip.
func TestConformanceExact(t *testing.T) {
	db := openPG(t)
	var p *pgprovider.Provider
	repositorytest.Harness{
		NewRepo: func(t *testing.T) repository.Repository[*entity] {
			p = pgLocks(t)
			return newRepo(t, db, &sqlrepo.Options{Hold: p})
		},
		NewService: func(t *testing.T) *locked.Service { return newService(t, p, nil) },
		Workers:    8,
		Cycles:     50,
	}.Run(t)
}

// TestExactLockRow: with Options.Hold, a proof whose lock row has expired
// by the database clock (its local lease still alive) is refused by the
// Save statement itself, and so is a proof after the next holder took the
// row, even before that holder loaded.
func TestExactLockRow(t *testing.T) {
	db := openPG(t)
	p := pgLocks(t)
	svc := newService(t, p, nil)
	r := newRepo(t, db, &sqlrepo.Options{Hold: p})
	e := insert(t, r, 1)

	a := load(t, svc, r, e.Key)
	if _, err := db.ExecContext(t.Context(), `UPDATE "lockproof_locks" SET expires_at = clock_timestamp() - interval '1 second' WHERE key = $1`, a.Lease().StoreKey()); err != nil {
		t.Fatal(err)
	}
	a.Entity().N = 100
	wantIs(t, "Save with an expired lock row", r.Save(t.Context(), a), locked.ErrNotHeld)
	wantN(t, r, e.Key, 1, "after the refused Save")

	// The next holder acquires but has not read yet: the old proof's fence
	// is still ≥ the record's, only the lock row can refuse it.
	b, err := locked.Acquire(t.Context(), svc, &entity{Key: e.Key}, locked.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	wantIs(t, "Delete after the next holder acquired", r.Delete(t.Context(), a), locked.ErrNotHeld)
	wantN(t, r, e.Key, 1, "after the refused Delete")
}

// TestPausedHolderPgprovider: the paused-holder interleaving with locks in
// PostgreSQL, fence only and exact.
func TestPausedHolderPgprovider(t *testing.T) {
	db := openPG(t)
	for _, exact := range []bool{false, true} {
		t.Run(map[bool]string{false: "fence", true: "exact"}[exact], func(t *testing.T) {
			p := pgLocks(t)
			svc := newService(t, p, nil)
			var opts *sqlrepo.Options
			if exact {
				opts = &sqlrepo.Options{Hold: p}
			}
			r := newRepo(t, db, opts)
			aErr, bErr, n := pausedHolder(t, svc, r, r)
			wantIs(t, "A's Save", aErr, locked.ErrNotHeld)
			if bErr != nil || n != 11 {
				t.Fatalf("B's Save = %v, N = %d; want nil, 11", bErr, n)
			}
		})
	}
}
