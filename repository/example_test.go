package repository_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/repository"
)

// Account is a bank account; its lock key is "account:<Number>".
type Account struct {
	Number  string
	Balance int64
}

// Kind implements persistent.Persistent.
func (*Account) Kind() string { return "account" }

// ID implements persistent.Persistent.
func (a *Account) ID() string { return a.Number }

// Insert a new entity (no lock needed), lock and load it, modify it, save it
// with the proof, and read it back.
func ExampleMemory() {
	ctx := context.Background()
	p := memprovider.New()
	defer p.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close() // runs before p.Close

	repo := repository.NewMemory[*Account]()
	if err := repo.Insert(ctx, &Account{Number: "42", Balance: 100}); err != nil {
		log.Fatal(err)
	}

	// Lock first, then read: the account cannot change under us.
	l, err := locked.Load(ctx, svc, repo, "42")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	l.Entity().Balance += 50
	if err := repo.Save(ctx, l); err != nil { // Save needs the proof
		log.Fatal(err)
	}
	if err := l.Close(); err != nil {
		log.Fatal(err)
	}

	a, err := repo.Find(ctx, "42") // reads need no lock
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Number, a.Balance)
	// Output: 42 150
}

// A proof stops working when it is closed, and when its lease lapses and
// another holder takes the lock: Save then fails with an error matching
// locked.ErrNotHeld, and nothing is written.
func ExampleMemory_Save_spentProof() {
	ctx := context.Background()
	p := memprovider.New()
	defer p.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	repo := repository.NewMemory[*Account]()
	if err := repo.Insert(ctx, &Account{Number: "7", Balance: 100}); err != nil {
		log.Fatal(err)
	}

	// A closed proof.
	closed, err := locked.Load(ctx, svc, repo, "7")
	if err != nil {
		log.Fatal(err)
	}
	closed.Entity().Balance = 0
	closed.Close()
	err = repo.Save(ctx, closed)
	fmt.Println("closed proof:", errors.Is(err, locked.ErrNotHeld))

	// A stale proof: its lease lapses, and a second holder (whose Load
	// waits for the lapse) takes the lock and saves.
	stale, err := locked.Load(ctx, svc, repo, "7", locked.WithTTL(50*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer stale.Close() // nothing left to free once it has lapsed
	stale.Entity().Balance = 0
	//lockcheck:ignore this Load waits for stale to lapse, on purpose
	fresh, err := locked.Load(ctx, svc, repo, "7")
	if err != nil {
		log.Fatal(err)
	}
	defer fresh.Close()
	fresh.Entity().Balance += 1
	if err := repo.Save(ctx, fresh); err != nil {
		log.Fatal(err)
	}
	err = repo.Save(ctx, stale)
	fmt.Println("stale proof:", errors.Is(err, locked.ErrNotHeld))

	a, err := repo.Find(ctx, "7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("balance:", a.Balance)
	// Output:
	// closed proof: true
	// stale proof: true
	// balance: 101
}
