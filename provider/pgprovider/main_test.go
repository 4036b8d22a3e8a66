package pgprovider_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/pgprovider"
	"github.com/lockproof/lockproof/provider/providertest"
)

// TestMain fails the package if a test leaves a goroutine running, and
// stops the package's PostgreSQL server.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}

// newPool returns a pool on dsn, closed when t ends.
func newPool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newProvider returns a provider on pool with its schema, closed when t ends
// (before the pool, whose Cleanup was registered first).
func newProvider(t testing.TB, pool *pgxpool.Pool, opts *pgprovider.Options) *pgprovider.Provider {
	t.Helper()
	p, err := pgprovider.New(pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.CreateSchema(t.Context()); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConformance(t *testing.T) {
	pool := newPool(t, pgtest.Shared(t).DSN())
	providertest.Run(t, func(t *testing.T) provider.Provider {
		return newProvider(t, pool, &pgprovider.Options{PollInterval: 500 * time.Millisecond})
	})
}
