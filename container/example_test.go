package container_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"
	"go.uber.org/dig"

	"github.com/lockproof/lockproof/container"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
)

// Account is an example entity; its lock key is "account:<Number>".
type Account struct {
	Number  string
	Balance int64
}

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Number }

// The smallest app: an in-memory provider, a Service with options from the
// graph, and the Shutdown that closes them in order.
func ExampleProvide() {
	c := dig.New()
	if err := c.Provide(func() *locked.Options { return &locked.Options{Owner: "billing"} }); err != nil {
		log.Fatal(err)
	}
	if err := container.Provide(c); err != nil {
		log.Fatal(err)
	}
	err := c.Invoke(func(svc *locked.Service, stop container.Shutdown) error {
		defer stop()
		return svc.Run(context.Background(), "invoice:7", func(ctx context.Context) error {
			fmt.Println("holding invoice:7 as", svc.Owner())
			return nil
		})
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: holding invoice:7 as billing
}

// A repository wired to the Service: in memory here; with a Redis client
// in the graph the same two lines give a Redis provider and a redisrepo
// repository with the Service's Namespace.
func ExampleProvideRepository() {
	c := dig.New()
	if err := container.Provide(c); err != nil {
		log.Fatal(err)
	}
	if err := container.ProvideRepository[*Account](c); err != nil {
		log.Fatal(err)
	}
	err := c.Invoke(func(svc *locked.Service, accounts repository.Repository[*Account], stop container.Shutdown) error {
		defer stop()
		ctx := context.Background()
		if err := accounts.Insert(ctx, &Account{Number: "1", Balance: 100}); err != nil {
			return err
		}
		l, err := locked.Load(ctx, svc, accounts, "1")
		if err != nil {
			return err
		}
		defer l.Close()
		l.Entity().Balance += 50
		if err := accounts.Save(ctx, l); err != nil {
			return err
		}
		a, err := accounts.Find(ctx, "1")
		if err != nil {
			return err
		}
		fmt.Println("balance:", a.Balance)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: balance: 150
}

// Two Services side by side: the default one, and one named "audit" with
// its own options. Each has its own provider, so the same key is free in
// both.
func ExampleName() {
	c := dig.New()
	if err := container.Provide(c); err != nil {
		log.Fatal(err)
	}
	if err := c.Provide(func() *locked.Options { return &locked.Options{Owner: "auditor"} }, dig.Name("audit")); err != nil {
		log.Fatal(err)
	}
	if err := container.Provide(c, container.Name("audit")); err != nil {
		log.Fatal(err)
	}
	type services struct {
		dig.In
		Main      *locked.Service
		Audit     *locked.Service `name:"audit"`
		MainStop  container.Shutdown
		AuditStop container.Shutdown `name:"audit"`
	}
	err := c.Invoke(func(s services) error {
		defer s.MainStop()
		defer s.AuditStop()
		ctx := context.Background()
		a, err := s.Main.TryAcquire(ctx, "report:1")
		if err != nil {
			return err
		}
		defer a.Close()
		b, err := s.Audit.TryAcquire(ctx, "report:1")
		if err != nil {
			return err
		}
		defer b.Close()
		fmt.Println("report:1 held by", a.Owner() != "", "and by", b.Owner())
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: report:1 held by true and by auditor
}

// With Redis: register the client as a redis.UniversalClient and Provide
// picks the Redis provider. The client stays yours: close it after
// Shutdown. (Compiled, not run: it needs a Redis server.)
func ExampleRedis() {
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close() // after Shutdown

	c := dig.New()
	if err := c.Provide(func() redis.UniversalClient { return rdb }); err != nil {
		log.Fatal(err)
	}
	if err := c.Provide(func() *locked.Options { return &locked.Options{Namespace: "shop"} }); err != nil {
		log.Fatal(err)
	}
	if err := container.Provide(c); err != nil {
		log.Fatal(err)
	}
	// The repository is on rdb and in namespace "shop", like the Service.
	if err := container.ProvideRepository[*Account](c); err != nil {
		log.Fatal(err)
	}
	err := c.Invoke(func(svc *locked.Service, accounts repository.Repository[*Account], stop container.Shutdown) error {
		defer stop()
		_, err := accounts.Find(context.Background(), "1")
		return err
	})
	if err != nil {
		log.Print(err)
	}
}

// Redlock from the graph: each node's client goes into the value group
// container.RedisGroup, and Provide builds a Redlock over all of them. A
// plain redis.UniversalClient the app keeps in the graph for other work is
// then left alone. (Compiled, not run: it needs three Redis servers.)
func ExampleRedisGroup() {
	c := dig.New()
	for _, addr := range []string{"redis-a:6379", "redis-b:6379", "redis-c:6379"} {
		node := func() redis.UniversalClient {
			return redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		}
		if err := c.Provide(node, dig.Group(container.RedisGroup)); err != nil {
			log.Fatal(err)
		}
	}
	if err := container.Provide(c); err != nil {
		log.Fatal(err)
	}
	err := c.Invoke(func(svc *locked.Service, stop container.Shutdown, in struct {
		dig.In
		Nodes []redis.UniversalClient `group:"lockproof.redis"`
	}) error {
		defer func() {
			stop() // first the Service and the Redlock, then the clients
			for _, n := range in.Nodes {
				n.Close()
			}
		}()
		return svc.Run(context.Background(), "report:1", func(ctx context.Context) error {
			fmt.Println("held on a majority of the nodes")
			return nil
		})
	})
	if err != nil {
		log.Print(err)
	}
}
