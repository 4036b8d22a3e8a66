// Saving an Account value (not even a pointer) without a lock.
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

func reset(ctx context.Context, repo repository.Repository[*Account], id string) error {
	a, err := repo.Find(ctx, id)
	if err != nil {
		return err
	}
	return repo.Save(ctx, Account{Number: a.Number}) // want `cannot use Account\{.*\} .*Account.* as \*locked\.Locked\[\*Account\] value in argument to repo\.Save`
}

func main() {
	_ = reset(context.Background(), repository.NewMemory[*Account](), "1")
}
