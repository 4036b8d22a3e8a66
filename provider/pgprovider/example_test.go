package pgprovider_test

import (
	"context"
	"fmt"
	"log"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider/pgprovider"
)

// Locks in PostgreSQL: create the schema once, then use the provider under
// a locked.Service like any other. (This example needs a PostgreSQL server,
// so it is compiled but not run; the tests run the same calls against a
// real one.)
func ExampleNew() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://app@localhost/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close() // last

	p, err := pgprovider.New(pool, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // after the Service
	if err := p.CreateSchema(ctx); err != nil {
		log.Fatal(err) // errors.Is(err, locked.ErrUnavailable)
	}

	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	err = svc.Run(ctx, "report:daily", func(ctx context.Context) error {
		fmt.Println("only one process runs this at a time")
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// With sqlrepo on the same database, pass the provider as
// sqlrepo.Options.Hold: each Save then checks the lock row and the fence
// in one statement. HoldSQL is the condition it embeds, over the
// statement's placeholders. (New does not connect: the pool dials lazily.)
func ExampleProvider_HoldSQL() {
	pool, err := pgxpool.New(context.Background(), "postgres://app@127.0.0.1:1/app")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	p, err := pgprovider.New(pool, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	fmt.Println(p.HoldSQL("$4", "$5", "$2"))
	// Output:
	// EXISTS (SELECT 1 FROM "lockproof_locks" WHERE key = $4 AND token = $5 AND fence = $2 AND expires_at > clock_timestamp())
}
