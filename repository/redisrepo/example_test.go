package redisrepo_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

// Account is an entity: its lock key is "account:" + Number.
type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

// A Redis repository beside a Redis provider: lock, load, modify, save.
// Save checks the proof's token and fence in the same script as the write.
// (This example needs a Redis server, so it is compiled but not run.)
func ExampleNew() {
	ctx := context.Background()

	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close() // last

	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // after the Service

	svc, err := locked.New(p, &locked.Options{Namespace: "bank"})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	// The repository takes the client and the namespace from the Service.
	accounts, err := redisrepo.New[*Account](svc, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := accounts.Insert(ctx, &Account{Number: "42", Balance: 100}); err != nil {
		log.Fatal(err) // errors.Is(err, repository.ErrExists) if it was there
	}

	l, err := locked.Load(ctx, svc, accounts, "42")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	l.Entity().Balance -= 30
	if err := accounts.Save(ctx, l); err != nil {
		log.Fatal(err) // errors.Is(err, locked.ErrNotHeld) if the lock was lost
	}
	fmt.Println("balance", l.Entity().Balance)
}

// Lock and load: locked.Load through a redisrepo.Repository whose Service
// is on the repository's redisprovider.Provider reads the record in the
// acquire script itself, so the whole cycle (Load, Save, Close) is three
// round trips, and nothing can write the record between the lock and the
// read. With a Service of another lock store, Load locks there and reads
// with Find instead. (Compiled, not run: it needs a Redis server.)
func ExampleRepository_ReadFor() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	accounts, err := redisrepo.New[*Account](svc, nil)
	if err != nil {
		log.Fatal(err)
	}

	// Round trip 1: take the lock and read the record (EVALSHA).
	l, err := locked.Load(ctx, svc, accounts, "42")
	if err != nil {
		log.Fatal(err) // errors.Is(err, repository.ErrNotFound): the lock is released again
	}
	l.Entity().Balance += 5
	// Round trip 2: check the proof's token and fence and write (EVALSHA).
	if err := accounts.Save(ctx, l); err != nil {
		log.Fatal(err)
	}
	// Round trip 3: release (EVALSHA).
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("balance", l.Entity().Balance)
}
