// Command refund shows a service method that takes the proof of a lock as
// a parameter, *locked.Locked[*User], instead of taking the lock itself:
// the request handler locks the user once and passes the proof down, so
// the methods below it cannot be called without the lock and never lock
// again (no nested locking, no deadlock, one lock round trip per request).
//
// Every refund request is sent several times at once, as retries would
// be; the user must be credited exactly once per order. By default
// everything is in memory; -redis ADDR keeps the lock and the users in
// Redis.
//
//	go run ./examples/refund
//	go run ./examples/refund -redis localhost:6379
//
// It exits with status 1 if an order was refunded twice or not at all.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

// User is a customer with store credit; its lock key is "user:<Name>".
type User struct {
	Name     string
	Credit   int64
	Refunded map[string]int64 // order ID → amount refunded
}

// Kind implements persistent.Persistent.
func (*User) Kind() string { return "user" }

// ID implements persistent.Persistent.
func (u *User) ID() string { return u.Name }

// Order is a paid order that may be refunded.
type Order struct {
	ID     string
	Amount int64
}

// Refunds refunds orders to their users.
type Refunds struct {
	svc   *locked.Service
	users repository.Repository[*User]
}

// Request handles one refund request: it locks the user, reading it under
// the lock, and hands the proof to Refund. It reports whether this request
// did the refund (false: an earlier one had).
func (r *Refunds) Request(ctx context.Context, user string, o Order) (bool, error) {
	l, err := locked.Load(ctx, r.svc, r.users, user)
	if err != nil {
		return false, err
	}
	defer l.Close()
	return r.Refund(ctx, l, o)
}

// Refund credits o's amount to the locked user unless o was refunded
// before, and saves the user. Its signature requires the user's lock: a
// caller without the proof does not compile.
func (r *Refunds) Refund(ctx context.Context, l *locked.Locked[*User], o Order) (bool, error) {
	if alreadyRefunded(l, o) {
		return false, nil
	}
	credit(l, o)
	return true, r.users.Save(ctx, l)
}

// alreadyRefunded reads the locked user: under the lock, the answer stays
// true until the proof is saved or closed.
func alreadyRefunded(l *locked.Locked[*User], o Order) bool {
	_, done := l.Entity().Refunded[o.ID]
	return done
}

// credit changes the locked user in place; Refund saves it.
func credit(l *locked.Locked[*User], o Order) {
	u := l.Entity()
	if u.Refunded == nil {
		u.Refunded = make(map[string]int64)
	}
	u.Refunded[o.ID] = o.Amount
	u.Credit += o.Amount
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "refund:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("refund", flag.ContinueOnError)
	orders := fs.Int("orders", 50, "orders to refund")
	retries := fs.Int("retries", 3, "copies of each refund request, sent at once")
	redisAddr := fs.String("redis", "", "keep the lock and the users in the Redis server at this address")
	namespace := fs.String("namespace", "refund", "with -redis: the namespace of the lock and the users")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *orders < 1 || *retries < 1 {
		return errors.New("need -orders >= 1 and -retries >= 1")
	}

	var (
		p     provider.Provider
		users repository.Repository[*User]
		opts  = &locked.Options{}
	)
	if *redisAddr == "" {
		p, users = memprovider.New(), repository.NewMemory[*User]()
	} else {
		client := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
		defer client.Close()
		rp, err := redisprovider.New(client, nil)
		if err != nil {
			return err
		}
		opts.Namespace = *namespace
		p = rp
	}
	defer p.Close()
	svc, err := locked.New(p, opts)
	if err != nil {
		return err
	}
	defer svc.Close()
	if *redisAddr != "" {
		// The repository takes its client and namespace from the Service.
		rr, err := redisrepo.New[*User](svc, nil)
		if err != nil {
			return err
		}
		users = rr
	}

	const name = "ada"
	if err := users.DeleteByID(ctx, name); err != nil {
		return err
	}
	if err := users.Insert(ctx, &User{Name: name}); err != nil {
		return err
	}
	r := &Refunds{svc: svc, users: users}

	var (
		wg   sync.WaitGroup
		done atomic.Int64 // requests that did a refund
		want int64        // the sum of all orders' amounts
		mu   sync.Mutex   // guards errs
		errs []error
	)
	for i := range *orders {
		o := Order{ID: "order-" + strconv.Itoa(i), Amount: int64(10 + i)}
		want += o.Amount
		for range *retries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				did, err := r.Request(ctx, name, o)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
				if did {
					done.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	u, err := users.Find(ctx, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%d requests for %d orders: %d refunds done; %s has credit %d (expected %d) for %d orders\n",
		*orders**retries, *orders, done.Load(), name, u.Credit, want, len(u.Refunded))
	if done.Load() != int64(*orders) || u.Credit != want || len(u.Refunded) != *orders {
		return errors.New("an order was NOT refunded exactly once")
	}
	fmt.Fprintln(out, "every order refunded exactly once")
	return nil
}
