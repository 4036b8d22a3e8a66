// Comparing proofs by value, or keying a map by one: a Locked is not
// comparable. (Comparing the *Locked pointers is fine.)
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

func same(a, b *locked.Locked[*Account]) bool {
	return a == b || *a == *b // want `invalid operation: \*a == \*b \(struct containing \[0\]func\(\) cannot be compared\)`
}

var seen map[locked.Locked[*Account]]bool // want `invalid map key type locked\.Locked\[\*Account\]`

func main() {
	ctx := context.Background()
	l, err := locked.Load(ctx, nil, repository.NewMemory[*Account](), "1")
	if err != nil {
		return
	}
	defer l.Close()
	_ = same(l, l)
	_ = seen
}
