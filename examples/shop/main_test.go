package main

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/internal/pgtest"
	"github.com/lockproof/lockproof/internal/redistest"
)

// TestMain runs the program instead of the tests in the processes that
// sellInProcesses starts from this test binary.
func TestMain(m *testing.M) {
	if os.Getenv("SHOP_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	goleak.VerifyTestMain(pgtest.Main(m))
}

// TestShop runs the program's three set-ups: SQLite with in-process locks,
// and 4 processes on PostgreSQL with locks in PostgreSQL and in Redis. run
// fails if the product was oversold or a sale was lost.
func TestShop(t *testing.T) {
	base := config{sku: "widget", procs: 4, buyers: 4, orders: 25, stock: 300}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	t.Run("sqlite", func(t *testing.T) {
		if err := run(ctx, base); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("postgres+pgprovider", func(t *testing.T) {
		c := base
		c.dsn = pgtest.Shared(t).DSN()
		if err := run(ctx, c); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("postgres+redis", func(t *testing.T) {
		c := base
		c.dsn, c.redis, c.sku = pgtest.Shared(t).DSN(), redistest.Server(t).Addr(), "gadget"
		if err := run(ctx, c); err != nil {
			t.Fatal(err)
		}
	})
}
