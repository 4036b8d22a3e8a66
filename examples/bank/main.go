// Command bank moves money between accounts from many goroutines at once
// and checks that the total is conserved.
//
// Each transfer locks both accounts with locked.LoadAll (sorted keys, so
// two transfers in opposite directions cannot deadlock), reads them under
// the lock, and saves both with the proofs. It runs on the embedded
// in-memory provider; -redis ADDR takes the locks from a Redis server
// instead (the accounts stay in this process's memory).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository"
)

// Account is a bank account; its lock key is "account:<Number>".
type Account struct {
	Number  string
	Balance int64
}

// Kind implements persistent.Persistent.
func (*Account) Kind() string { return "account" }

// ID implements persistent.Persistent.
func (a *Account) ID() string { return a.Number }

// transfer moves amount from one account to another under both locks.
func transfer(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], from, to string, amount int64) error {
	ls, err := locked.LoadAll(ctx, svc, repo, []string{from, to})
	if err != nil {
		return err
	}
	defer ls[0].Close()
	defer ls[1].Close()
	src, dst := ls[0].Entity(), ls[1].Entity()
	if src.Balance < amount {
		return nil // declined: never overdraw
	}
	src.Balance -= amount
	dst.Balance += amount
	return errors.Join(repo.Save(ctx, ls[0]), repo.Save(ctx, ls[1]))
}

func main() {
	accounts := flag.Int("accounts", 5, "number of accounts")
	workers := flag.Int("workers", 8, "concurrent goroutines")
	transfers := flag.Int("transfers", 500, "transfers per goroutine")
	redisAddr := flag.String("redis", "", "take locks from the Redis server at this address instead of in memory")
	flag.Parse()

	ctx := context.Background()
	var p provider.Provider = memprovider.New()
	if *redisAddr != "" {
		client := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
		defer client.Close()
		rp, err := redisprovider.New(client, nil)
		if err != nil {
			log.Fatal(err)
		}
		p = rp
	}
	defer p.Close()
	svc, err := locked.New(p, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	repo := repository.NewMemory[*Account]()

	const opening = 1000
	for i := range *accounts {
		if err := repo.Insert(ctx, &Account{Number: strconv.Itoa(i), Balance: opening}); err != nil {
			log.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, *workers)
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range *transfers {
				from, to := rand.IntN(*accounts), rand.IntN(*accounts)
				if from == to {
					continue
				}
				if err := transfer(ctx, svc, repo, strconv.Itoa(from), strconv.Itoa(to), rand.Int64N(100)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		log.Fatal(err)
	}

	var total int64
	for i := range *accounts {
		a, err := repo.Find(ctx, strconv.Itoa(i))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("account %s: %d\n", a.Number, a.Balance)
		total += a.Balance
	}
	want := int64(*accounts) * opening
	fmt.Printf("total: %d (expected %d)\n", total, want)
	if total != want {
		fmt.Println("total NOT conserved")
		os.Exit(1)
	}
	fmt.Println("total conserved")
}
