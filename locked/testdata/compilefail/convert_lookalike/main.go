// Forging a proof by converting a struct with the same fields: the fields
// of locked.Locked are unexported, so no type outside package locked has
// the same underlying type, and the conversion does not compile.
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

type noCopy struct{}

type proof struct {
	_      noCopy
	_      [0]func()
	lease  *locked.Lease
	entity *Account
}

func save(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], a *Account) error {
	lease, err := svc.Acquire(ctx, "account:"+a.Number)
	if err != nil {
		return err
	}
	defer lease.Close()
	p := &proof{lease: lease, entity: a}
	if err := repo.Save(ctx, (*locked.Locked[*Account])(p)); err != nil { // want `cannot convert p .*\*proof.* to type \*locked\.Locked\[\*Account\]`
		return err
	}
	l := locked.Locked[*Account](*p) // want `cannot convert \*p .*proof.* to type locked\.Locked\[\*Account\]`
	return repo.Save(ctx, &l)
}

func main() {
	_ = save(context.Background(), nil, repository.NewMemory[*Account](), &Account{Number: "1"})
}
