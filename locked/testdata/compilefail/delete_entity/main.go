// Deleting the entity without a lock; DeleteByID is the explicit,
// unlocked clean-up path, Delete needs the proof.
package main

import (
	"context"

	"github.com/lockproof/lockproof/repository"
)

type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

func closeIfEmpty(ctx context.Context, repo repository.Repository[*Account], id string) error {
	a, err := repo.Find(ctx, id)
	if err != nil || a.Balance != 0 {
		return err
	}
	return repo.Delete(ctx, a) // want `cannot use a .*\*Account.* as \*locked\.Locked\[\*Account\] value in argument to repo\.Delete`
}

func main() {
	_ = closeIfEmpty(context.Background(), repository.NewMemory[*Account](), "1")
}
