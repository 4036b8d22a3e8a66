// Re-pointing a proof at another entity or lease from outside package
// locked: its fields are unexported, so reads and writes do not compile.
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

func overwrite(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], id string, other *Account) error {
	l, err := locked.Load(ctx, svc, repo, id)
	if err != nil {
		return err
	}
	defer l.Close()
	l.entity = other // want `l\.entity undefined`
	return repo.Save(ctx, l)
}

func borrow(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], a *Account) error {
	lease, err := svc.Acquire(ctx, "account:"+a.Number)
	if err != nil {
		return err
	}
	defer lease.Close()
	var l locked.Locked[*Account]
	l.lease = lease // want `l\.lease undefined`
	return repo.Save(ctx, &l)
}

func main() {
	repo := repository.NewMemory[*Account]()
	_ = overwrite(context.Background(), nil, repo, "1", &Account{Number: "2"})
	_ = borrow(context.Background(), nil, repo, &Account{Number: "1"})
}
