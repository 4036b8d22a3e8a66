// Passing the entity to the key-level Service.Acquire, or saving with the
// Lease it returns: entity locks go through locked.Acquire or locked.Load.
package main

import (
	"context"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
)

type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

func deposit(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], a *Account) error {
	l, err := svc.Acquire(ctx, a) // want `cannot use a .*as string value in argument to svc\.Acquire`
	if err != nil {
		return err
	}
	defer l.Close()
	a.Balance++
	return repo.Save(ctx, l) // want `cannot use l .*\*locked\.Lease.* as \*locked\.Locked\[\*Account\] value in argument to repo\.Save`
}

func main() {
	_ = deposit(context.Background(), nil, repository.NewMemory[*Account](), &Account{Number: "1"})
}
