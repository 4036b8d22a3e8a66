// Saving the entity itself instead of the proof of its lock: the read and
// the write are not protected, so a concurrent transfer would be lost.
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

func deposit(ctx context.Context, repo repository.Repository[*Account], id string, amount int64) error {
	a, err := repo.Find(ctx, id)
	if err != nil {
		return err
	}
	a.Balance += amount
	return repo.Save(ctx, a) // want `cannot use a .*\*Account.* as \*locked\.Locked\[\*Account\] value in argument to repo\.Save`
}

func main() {
	_ = deposit(context.Background(), repository.NewMemory[*Account](), "1", 10)
}
