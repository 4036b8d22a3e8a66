// Command bank moves money between accounts from many goroutines at once
// and checks that the total is conserved.
//
// Each transfer locks both accounts with locked.LoadAll (sorted keys, so
// two transfers in opposite directions cannot deadlock), reads them under
// the lock, and saves both with the proofs. By default the locks and the
// accounts live in this process's memory; with -redis ADDR both live in
// that Redis server (redisprovider and redisrepo, in namespace -namespace),
// so several bank processes can share the accounts.
//
//	go run ./examples/bank
//	go run ./examples/bank -redis localhost:6379
//
// It exits with status 1 if the total is not conserved.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"github.com/lockproof/lockproof/repository/redisrepo"
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
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// errNotConserved: the check failed.
var errNotConserved = errors.New("total NOT conserved")

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bank", flag.ContinueOnError)
	accounts := fs.Int("accounts", 5, "number of accounts (at least 2)")
	workers := fs.Int("workers", 8, "concurrent goroutines")
	transfers := fs.Int("transfers", 500, "transfers per goroutine")
	redisAddr := fs.String("redis", "", "keep locks and accounts in the Redis server at this address instead of in memory")
	namespace := fs.String("namespace", "bank", "with -redis: the namespace of the locks and accounts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *accounts < 2 || *workers < 1 || *transfers < 0 {
		return fmt.Errorf("need -accounts >= 2, -workers >= 1 and -transfers >= 0")
	}

	var (
		p    provider.Provider
		repo repository.Repository[*Account]
		opts = &locked.Options{}
	)
	if *redisAddr == "" {
		p = memprovider.New()
		repo = repository.NewMemory[*Account]()
	} else {
		client := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
		defer client.Close() // last: after the provider
		rp, err := redisprovider.New(client, nil)
		if err != nil {
			return err
		}
		opts.Namespace = *namespace
		p = rp
	}
	defer p.Close() // after the Service
	svc, err := locked.New(p, opts)
	if err != nil {
		return err
	}
	defer svc.Close()
	if *redisAddr != "" {
		// The repository takes its client and namespace from the Service.
		rr, err := redisrepo.New[*Account](svc, nil)
		if err != nil {
			return err
		}
		repo = rr
	}

	const opening = 1000
	for i := range *accounts {
		id := strconv.Itoa(i)
		// Open the account afresh (DeleteByID is for clean-up, as here: a
		// previous run may have left it in Redis).
		if err := repo.DeleteByID(ctx, id); err != nil {
			return err
		}
		if err := repo.Insert(ctx, &Account{Number: id, Balance: opening}); err != nil {
			return err
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
	if err := errors.Join(<-errs); err != nil {
		return err
	}

	var total int64
	for i := range *accounts {
		a, err := repo.Find(ctx, strconv.Itoa(i))
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "account %s: %d\n", a.Number, a.Balance)
		total += a.Balance
	}
	want := int64(*accounts) * opening
	fmt.Fprintf(out, "total: %d (expected %d)\n", total, want)
	if total != want {
		return errNotConserved
	}
	fmt.Fprintln(out, "total conserved")
	return nil
}
