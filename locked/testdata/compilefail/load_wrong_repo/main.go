// Loading a User through the Account repository: the Finder's entity type
// must be the proof's.
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
	Name string
}

func (*User) Kind() string { return "user" }
func (u *User) ID() string { return u.Name }

func rename(ctx context.Context, svc *locked.Service, accounts *repository.Memory[*Account], users repository.Repository[*User], name string) error {
	l, err := locked.Load[*User](ctx, svc, accounts, name) // want `cannot use accounts .* as locked\.Finder\[\*User\] value in argument to locked\.Load.*wrong type for method Find`
	if err != nil {
		return err
	}
	defer l.Close()
	l.Entity().Name += "!"
	return users.Save(ctx, l)
}

func main() {
	_ = rename(context.Background(), nil, repository.NewMemory[*Account](), repository.NewMemory[*User](), "ann")
}
