// Minting a proof with a composite literal from a lease and an entity that
// were never checked to belong together.
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

func save(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], a *Account) error {
	lease, err := svc.Acquire(ctx, "account:"+a.Number)
	if err != nil {
		return err
	}
	defer lease.Close()
	return repo.Save(ctx, &locked.Locked[*Account]{
		lease:  lease, // want `unexported field lease in struct literal of type locked\.Locked\[\*Account\]`
		entity: a,     // want `unexported field entity in struct literal of type locked\.Locked\[\*Account\]`
	})
}

func main() {
	_ = save(context.Background(), nil, repository.NewMemory[*Account](), &Account{Number: "1"})
}
