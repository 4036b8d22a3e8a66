// A repository implementation whose Save and Delete take the entity: it
// does not implement repository.Repository, so it cannot be used where one
// is expected.
package main

import (
	"context"
	"iter"

	"github.com/lockproof/lockproof/repository"
)

type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

type sqlAccounts struct{}

func (sqlAccounts) Find(ctx context.Context, id string) (*Account, error) {
	return &Account{Number: id}, nil
}
func (sqlAccounts) Insert(ctx context.Context, a *Account) error    { return nil }
func (sqlAccounts) Save(ctx context.Context, a *Account) error      { return nil }
func (sqlAccounts) Delete(ctx context.Context, a *Account) error    { return nil }
func (sqlAccounts) DeleteByID(ctx context.Context, id string) error { return nil }
func (sqlAccounts) All(ctx context.Context) iter.Seq2[*Account, error] {
	return func(func(*Account, error) bool) {}
}

var _ repository.Repository[*Account] = sqlAccounts{} // want `sqlAccounts does not implement repository\.Repository\[\*Account\] \(wrong type for method (Delete|Save)\)`

func main() {}
