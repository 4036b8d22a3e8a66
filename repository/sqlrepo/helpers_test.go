package sqlrepo_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/repositorytest"
	"github.com/lockproof/lockproof/repository/sqlrepo"
)

// TestMain fails the package if a test leaves a goroutine running, and
// stops the package's PostgreSQL server.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m),
		// database/sql's connection opener lives as long as its DB; every DB
		// here is closed in t.Cleanup, and pgx's own goroutines end with it.
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

type entity = repositorytest.Entity

// openPG returns a database/sql handle on the package's PostgreSQL server,
// closed when t ends.
func openPG(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pgtest.Shared(t).DSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openSQLite returns a handle on a new SQLite file in t.TempDir. One
// connection: SQLite has one writer, and a pool would turn that into
// SQLITE_BUSY errors rather than waits.
func openSQLite(t testing.TB) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "db.sqlite")+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// newRepo returns a repository of entities on db with its table created.
func newRepo(t testing.TB, db *sql.DB, opts *sqlrepo.Options) *sqlrepo.Repository[*entity] {
	t.Helper()
	r, err := sqlrepo.New[*entity](db, opts)
	if err != nil {
		t.Fatalf("sqlrepo.New: %v", err)
	}
	if err := r.CreateTable(t.Context()); err != nil {
		t.Fatal(err)
	}
	return r
}

// newService returns a Service on p, both closed when t ends.
func newService(t testing.TB, p provider.Provider, opts *locked.Options) *locked.Service {
	t.Helper()
	svc, err := locked.New(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Close(); err != nil {
			t.Errorf("Service Close: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Provider Close: %v", err)
		}
	})
	return svc
}

func memService(t testing.TB) *locked.Service {
	t.Helper()
	return newService(t, memprovider.New(), nil)
}

func redisService(t testing.TB, c redis.UniversalClient) *locked.Service {
	t.Helper()
	p, err := redisprovider.New(c, &redisprovider.Options{PollInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return newService(t, p, nil)
}

// insert stores a new entity with N = n.
func insert(t testing.TB, r *sqlrepo.Repository[*entity], n int64) *entity {
	t.Helper()
	e := &entity{Key: uuid.NewString(), N: n, Tags: []string{"x"}}
	if err := r.Insert(t.Context(), e); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	return e
}

func load(t testing.TB, svc *locked.Service, r locked.Finder[*entity], id string, opts ...locked.CallOption) *locked.Locked[*entity] {
	t.Helper()
	l, err := locked.Load(t.Context(), svc, r, id, append([]locked.CallOption{locked.WithTimeout(30 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("locked.Load(%q): %v", id, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// wantN fails t unless the stored entity has N = n.
func wantN(t testing.TB, r *sqlrepo.Repository[*entity], id string, n int64, why string) {
	t.Helper()
	got, err := r.Find(t.Context(), id)
	if err != nil {
		t.Fatalf("%s: Find: %v", why, err)
	}
	if got.N != n {
		t.Fatalf("%s: N = %d, want %d", why, got.N, n)
	}
}

// fenceOf reads the record's fence column.
func fenceOf(t testing.TB, db *sql.DB, r *sqlrepo.Repository[*entity], id string, d *sqlrepo.Dialect) int64 {
	t.Helper()
	q := `SELECT fence FROM "` + r.Table() + `" WHERE id = $1`
	if d == sqlrepo.SQLite {
		q = `SELECT fence FROM "` + r.Table() + `" WHERE id = ?1`
	}
	var f int64
	if err := db.QueryRowContext(t.Context(), q, id).Scan(&f); err != nil {
		t.Fatalf("read fence of %q: %v", id, err)
	}
	return f
}
