// Calling Service.Acquire as if it were generic over the entity type.
// Methods cannot have type parameters: entity proofs come from the
// functions locked.Acquire and locked.Load.
package main

import (
	"context"

	"github.com/lockproof/lockproof/locked"
)

type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

func lock(ctx context.Context, svc *locked.Service, a *Account) error {
	l, err := svc.Acquire[*Account](ctx, a) // want `cannot index svc\.Acquire`
	if err != nil {
		return err
	}
	return l.Close()
}

func main() {
	_ = lock(context.Background(), nil, &Account{Number: "1"})
}
