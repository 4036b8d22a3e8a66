// Locking an Account value when Kind and ID have pointer receivers: only
// *Account is Persistent, and a proof on a copy could not modify the stored
// entity in place anyway.
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

func lock(ctx context.Context, svc *locked.Service, a Account) error {
	l, err := locked.Acquire(ctx, svc, a) // want `T \(type Account\) does not satisfy persistent\.Persistent \(method (Kind|ID) has pointer receiver\)`
	if err != nil {
		return err
	}
	return l.Close()
}

var accounts = repository.NewMemory[Account]() // want `Account does not satisfy persistent\.Persistent \(method (Kind|ID) has pointer receiver\)`

func main() {
	_ = lock(context.Background(), nil, Account{Number: "1"})
	_ = accounts
}
