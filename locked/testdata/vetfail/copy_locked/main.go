// Copying a Locked compiles, and the copy shares the original's lease, so
// it stays a valid proof wherever it travels. go vet's copylocks check
// reports every copy.
package main

import (
	"context"
	"fmt"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
)

type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

func balance(l locked.Locked[*Account]) int64 { // want `balance passes lock by value: .*locked\.Locked\[.*\] contains .*locked\.noCopy`
	return l.Entity().Balance
}

func snapshot(l *locked.Locked[*Account]) locked.Locked[*Account] {
	return *l // want `return copies lock value: .*locked\.Locked`
}

func fences(ps []locked.Locked[*Account]) []uint64 {
	var out []uint64
	for _, p := range ps { // want `range var p copies lock: .*locked\.Locked`
		out = append(out, p.Fence())
	}
	return out
}

func deposit(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], id string) error {
	l, err := locked.Load(ctx, svc, repo, id)
	if err != nil {
		return err
	}
	defer l.Close()
	backup := *l           // want `assignment copies lock value to backup: .*locked\.Locked`
	_ = balance(*l)        // want `call of balance copies lock value: .*locked\.Locked`
	fmt.Println("got", *l) // want `call of fmt\.Println copies lock value: .*locked\.Locked`
	backup.Entity().Balance++
	return repo.Save(ctx, &backup)
}

func main() {
	_ = deposit(context.Background(), nil, repository.NewMemory[*Account](), "1")
	_ = snapshot
	_ = fences
}
