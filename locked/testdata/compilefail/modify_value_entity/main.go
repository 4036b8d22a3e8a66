// With a value entity type, Entity returns a copy: assigning to its fields
// does not compile, rather than silently changing nothing.
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

func (Account) Kind() string { return "account" }
func (a Account) ID() string { return a.Number }

func deposit(ctx context.Context, svc *locked.Service, repo repository.Repository[Account], id string, amount int64) error {
	l, err := locked.Load(ctx, svc, repo, id)
	if err != nil {
		return err
	}
	defer l.Close()
	l.Entity().Balance += amount // want `cannot assign to l\.Entity\(\)\.Balance`
	return repo.Save(ctx, l)
}

func main() {
	_ = deposit(context.Background(), nil, repository.NewMemory[Account](), "1", 10)
}
