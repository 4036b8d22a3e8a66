// Passing a Locked by value to Save (dereferencing the proof, or declaring
// a Locked variable): Save takes *Locked[T], never a copy.
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

func deposit(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], id string, amount int64) error {
	l, err := locked.Load(ctx, svc, repo, id)
	if err != nil {
		return err
	}
	defer l.Close()
	l.Entity().Balance += amount
	return repo.Save(ctx, *l) // want `cannot use \*l .*locked\.Locked\[\*Account\].* as \*locked\.Locked\[\*Account\] value in argument to repo\.Save`
}

func wipe(ctx context.Context, repo repository.Repository[*Account]) error {
	var proof locked.Locked[*Account]
	return repo.Delete(ctx, proof) // want `cannot use proof .*locked\.Locked\[\*Account\].* as \*locked\.Locked\[\*Account\] value in argument to repo\.Delete`
}

func main() {
	repo := repository.NewMemory[*Account]()
	_ = deposit(context.Background(), nil, repo, "1", 10)
	_ = wipe(context.Background(), repo)
}
