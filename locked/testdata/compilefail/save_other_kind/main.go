// Saving a proof on a User into the Account repository: a proof only
// authorises writes of its own entity type.
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

type User struct {
	Name    string
	Account string
}

func (*User) Kind() string { return "user" }
func (u *User) ID() string { return u.Name }

func closeUserAccount(ctx context.Context, svc *locked.Service, users repository.Repository[*User], accounts repository.Repository[*Account], name string) error {
	l, err := locked.Load(ctx, svc, users, name)
	if err != nil {
		return err
	}
	defer l.Close()
	a, err := accounts.Find(ctx, l.Entity().Account)
	if err != nil {
		return err
	}
	a.Balance = 0
	return accounts.Save(ctx, l) // want `cannot use l .*\*locked\.Locked\[\*User\].* as \*locked\.Locked\[\*Account\] value in argument to accounts\.Save`
}

func main() {
	_ = closeUserAccount(context.Background(), nil, repository.NewMemory[*User](), repository.NewMemory[*Account](), "ann")
}
