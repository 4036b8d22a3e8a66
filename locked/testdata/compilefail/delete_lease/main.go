// Passing a key-level Lease where the entity proof is needed: a Lease on
// "account:1" says nothing about which entity value is written.
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

func closeAccount(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], id string) error {
	lease, err := svc.Acquire(ctx, "account:"+id)
	if err != nil {
		return err
	}
	defer lease.Close()
	return repo.Delete(ctx, lease) // want `cannot use lease .*\*locked\.Lease.* as \*locked\.Locked\[\*Account\] value in argument to repo\.Delete`
}

func deposit(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], id string) error {
	l, err := locked.Load(ctx, svc, repo, id)
	if err != nil {
		return err
	}
	defer l.Close()
	l.Entity().Balance++
	return repo.Save(ctx, l.Lease()) // want `cannot use l\.Lease\(\) .*\*locked\.Lease.* as \*locked\.Locked\[\*Account\] value in argument to repo\.Save`
}

func main() {
	repo := repository.NewMemory[*Account]()
	_ = closeAccount(context.Background(), nil, repo, "1")
	_ = deposit(context.Background(), nil, repo, "1")
}
