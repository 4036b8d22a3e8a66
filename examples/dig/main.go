// Command dig is a small shop wired entirely through container/ and
// go.uber.org/dig: the app's constructor asks for a *locked.Service, a
// repository of carts and a second, in-memory Service named "local"; the
// container builds them, picks the Redis provider and repository when a
// Redis client is in the graph, and gives the app a Shutdown for each
// Service.
//
// Many shoppers add items to one cart at once (Load, modify, Save under
// the cart's lock, in the main store), and after each add the shop bumps
// an in-process cache version under a lock of the "local" Service, which
// never leaves this process.
//
//	go run ./examples/dig
//	go run ./examples/dig -redis localhost:6379
//
// It exits with status 1 if an item or a cache bump was lost.
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

	"github.com/redis/go-redis/v9"
	"go.uber.org/dig"

	"github.com/lockproof/lockproof/container"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/repository"
)

// Cart is a shopping cart; its lock key is "cart:<Number>".
type Cart struct {
	Number string
	Items  []string
}

// Kind implements persistent.Persistent.
func (*Cart) Kind() string { return "cart" }

// ID implements persistent.Persistent.
func (c *Cart) ID() string { return c.Number }

// ShopParams is what the Shop needs; dig fills it.
type ShopParams struct {
	dig.In
	Locks    *locked.Service              // the main store: Redis or memory
	Provider provider.Provider            // the main store's provider, to report it
	Carts    repository.Repository[*Cart] // beside the main store's locks
	Local    *locked.Service              `name:"local"` // in-process locks only
}

// Shop adds items to carts.
type Shop struct {
	locks *locked.Service
	carts repository.Repository[*Cart]
	local *locked.Service
	store string // the main provider's type, for the report

	cacheVersion int // guarded by the "local" Service's lock on "cache"
}

// NewShop is a plain constructor; dig calls it with the graph's values.
func NewShop(p ShopParams) *Shop {
	return &Shop{locks: p.Locks, carts: p.Carts, local: p.Local, store: fmt.Sprintf("%T", p.Provider)}
}

// Add puts item in the cart under the cart's lock, then bumps the cache
// version under the local lock.
func (s *Shop) Add(ctx context.Context, cart, item string) error {
	l, err := locked.Load(ctx, s.locks, s.carts, cart)
	if err != nil {
		return err
	}
	defer l.Close()
	c := l.Entity()
	c.Items = append(c.Items, item)
	if err := s.carts.Save(ctx, l); err != nil {
		return err
	}
	return s.local.Run(ctx, "cache", func(context.Context) error {
		s.cacheVersion++ // safe: one holder at a time
		return nil
	})
}

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dig:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("dig", flag.ContinueOnError)
	shoppers := fs.Int("shoppers", 8, "concurrent shoppers")
	adds := fs.Int("adds", 25, "items each shopper adds")
	redisAddr := fs.String("redis", "", "keep the main locks and the carts in the Redis server at this address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *shoppers < 1 || *adds < 1 {
		return errors.New("need -shoppers >= 1 and -adds >= 1")
	}

	c := dig.New()
	if *redisAddr != "" {
		// The client is ours: closed after the Services' Shutdowns.
		rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
		defer rdb.Close()
		if err := c.Provide(func() redis.UniversalClient { return rdb }); err != nil {
			return err
		}
	}
	err := errors.Join(
		c.Provide(func() *locked.Options { return &locked.Options{Namespace: "shop"} }),
		container.Provide(c),                          // the main Service: Redis if a client is in the graph
		container.ProvideRepository[*Cart](c),         // its carts: same client, same Namespace
		container.Provide(c, container.Name("local")), // a second Service, in memory (no client named "local")
		c.Provide(NewShop),
	)
	if err != nil {
		return err
	}
	type app struct {
		dig.In
		Shop      *Shop
		Stop      container.Shutdown
		StopLocal container.Shutdown `name:"local"`
	}
	return c.Invoke(func(a app) (err error) {
		defer func() { err = errors.Join(err, a.StopLocal(), a.Stop()) }()
		return shop(ctx, out, a.Shop, *shoppers, *adds)
	})
}

// shop runs the shoppers on one cart and checks the result.
func shop(ctx context.Context, out io.Writer, s *Shop, shoppers, adds int) error {
	const cart = "1"
	if err := s.carts.DeleteByID(ctx, cart); err != nil {
		return err
	}
	if err := s.carts.Insert(ctx, &Cart{Number: cart}); err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards errs
		errs []error
	)
	for i := range shoppers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range adds {
				if err := s.Add(ctx, cart, strconv.Itoa(i)+"/"+strconv.Itoa(j)); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	// The two Services are different stores: both can hold the same key.
	a, err := s.locks.TryAcquire(ctx, "cart:"+cart)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := s.local.TryAcquire(ctx, "cart:"+cart)
	if err != nil {
		return fmt.Errorf("the local Service shares the main store: %w", err)
	}
	defer b.Close()

	c, err := s.carts.Find(ctx, cart)
	if err != nil {
		return err
	}
	want := shoppers * adds
	fmt.Fprintf(out, "main store %s: cart has %d items (expected %d); local cache version %d\n", s.store, len(c.Items), want, s.cacheVersion)
	if len(c.Items) != want || s.cacheVersion != want {
		return errors.New("an item or a cache bump was LOST")
	}
	fmt.Fprintln(out, "no item lost; the named local Service is a separate store")
	return nil
}
