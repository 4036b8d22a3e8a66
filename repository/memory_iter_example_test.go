package repository_test

import (
	"context"
	"fmt"

	"github.com/lockproof/lockproof/repository"
)

// Read every account without a lock, filtering in Go.
func ExampleMemory_All() {
	ctx := context.Background()
	repo := repository.NewMemory[*Account]()
	for i, balance := range []int64{50, 500, 5} {
		_ = repo.Insert(ctx, &Account{Number: fmt.Sprint("A-", i), Balance: balance})
	}
	for a, err := range repo.All(ctx) {
		if err != nil {
			fmt.Println(err)
			return
		}
		if a.Balance >= 50 {
			fmt.Println(a.Number, a.Balance)
		}
	}
	// Output:
	// A-0 50
	// A-1 500
}
