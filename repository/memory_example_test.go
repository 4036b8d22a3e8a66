package repository_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/repository"
)

// A Memory repository takes proofs from one lock store. Bound to the
// Service's, it refuses a proof minted over another provider (or another
// Namespace), which could hold the same account at the same time.
func ExampleWithLockStore() {
	ctx := context.Background()
	p, other := memprovider.New(), memprovider.New()
	defer p.Close()
	defer other.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	stray, err := locked.New(other, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer stray.Close()

	repo := repository.NewMemory[*Account](repository.WithLockStore(svc.Store()))
	if err := repo.Insert(ctx, &Account{Number: "9", Balance: 10}); err != nil {
		log.Fatal(err)
	}

	l, err := locked.Load(ctx, stray, repo, "9") // another store grants it too
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	l.Entity().Balance = 0
	err = repo.Save(ctx, l)
	fmt.Println("foreign proof:", errors.Is(err, repository.ErrForeignProof), errors.Is(err, locked.ErrNotHeld))

	a, err := repo.Find(ctx, "9")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("balance:", a.Balance)
	// Output:
	// foreign proof: true true
	// balance: 10
}

// Wallet keeps its state in unexported fields, as domain entities often do,
// and encodes itself with encoding.BinaryMarshaler.
type Wallet struct {
	owner string
	coins int
}

// Kind implements persistent.Persistent.
func (*Wallet) Kind() string { return "wallet" }

// ID implements persistent.Persistent.
func (w *Wallet) ID() string { return w.owner }

// MarshalBinary implements encoding.BinaryMarshaler.
func (w *Wallet) MarshalBinary() ([]byte, error) {
	return fmt.Appendf(nil, "%s %d", w.owner, w.coins), nil
}

// UnmarshalBinary implements encoding.BinaryUnmarshaler.
func (w *Wallet) UnmarshalBinary(b []byte) error {
	_, err := fmt.Sscanf(string(b), "%s %d", &w.owner, &w.coins)
	return err
}

// JSON would store a Wallet empty, so Insert refuses it; with the Binary
// codec it is stored whole.
func ExampleWithCodec() {
	ctx := context.Background()
	err := repository.NewMemory[*Wallet]().Insert(ctx, &Wallet{owner: "ann", coins: 3})
	fmt.Println("JSON:", errors.Is(err, repository.ErrCodec))

	repo := repository.NewMemory[*Wallet](repository.WithCodec(repository.Binary))
	if err := repo.Insert(ctx, &Wallet{owner: "ann", coins: 3}); err != nil {
		log.Fatal(err)
	}
	w, err := repo.Find(ctx, "ann")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("Binary:", w.owner, w.coins)
	// Output:
	// JSON: true
	// Binary: ann 3
}
