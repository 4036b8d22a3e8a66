package container_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/dig"
	"go.uber.org/goleak"

	"github.com/lockproof/lockproof/container"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository"
	"github.com/lockproof/lockproof/repository/redisrepo"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(redistest.Reporting(m)) }

// Item is a test entity; its lock key is "item:<SKU>".
type Item struct {
	SKU   string
	Stock int
}

func (*Item) Kind() string { return "item" }
func (i *Item) ID() string { return i.SKU }

// app is what the tests resolve: the default (unnamed) values.
type app struct {
	dig.In
	Provider provider.Provider
	Service  *locked.Service
	Shutdown container.Shutdown
	Items    repository.Repository[*Item]
}

func mustProvide(t *testing.T, c *dig.Container, opts ...container.Option) {
	t.Helper()
	if err := container.Provide(c, opts...); err != nil {
		t.Fatalf("Provide: %v", err)
	}
}

func mustRepository(t *testing.T, c *dig.Container, opts ...container.RepositoryOption) {
	t.Helper()
	if err := container.ProvideRepository[*Item](c, opts...); err != nil {
		t.Fatalf("ProvideRepository: %v", err)
	}
}

// clientOf registers rdb in c as the graph's redis.UniversalClient.
func clientOf(t *testing.T, c *dig.Container, rdb *redis.Client, opts ...dig.ProvideOption) {
	t.Helper()
	opts = append(opts, dig.As(new(redis.UniversalClient)))
	if err := c.Provide(func() *redis.Client { return rdb }, opts...); err != nil {
		t.Fatalf("provide client: %v", err)
	}
}

func resolve(t *testing.T, c *dig.Container) app {
	t.Helper()
	var a app
	if err := c.Invoke(func(in app) { a = in }); err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Shutdown(); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return a
}

// useItems inserts an item, updates it under its lock and reads it back.
func useItems(t *testing.T, a app, sku string) {
	t.Helper()
	ctx := context.Background()
	if err := a.Items.Insert(ctx, &Item{SKU: sku, Stock: 3}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	l, err := locked.Load(ctx, a.Service, a.Items, sku)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	l.Entity().Stock--
	if err := a.Items.Save(ctx, l); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := a.Items.Find(ctx, sku)
	if err != nil || got.Stock != 2 {
		t.Fatalf("Find = %+v, %v; want stock 2", got, err)
	}
}

func TestResolveMemory(t *testing.T) {
	c := dig.New()
	mustProvide(t, c)
	mustRepository(t, c)
	a := resolve(t, c)
	if _, ok := a.Provider.(*memprovider.Provider); !ok {
		t.Fatalf("provider is %T, want *memprovider.Provider", a.Provider)
	}
	if _, ok := a.Items.(*repository.Memory[*Item]); !ok {
		t.Fatalf("repository is %T, want *repository.Memory", a.Items)
	}
	useItems(t, a, "mem")
}

func TestResolveRedisFromGraph(t *testing.T) {
	rdb := redistest.Server(t).Client(t)
	c := dig.New()
	clientOf(t, c, rdb)
	if err := c.Provide(func() *locked.Options { return &locked.Options{Namespace: "shop"} }); err != nil {
		t.Fatal(err)
	}
	mustProvide(t, c)
	mustRepository(t, c)
	a := resolve(t, c)
	if _, ok := a.Provider.(*redisprovider.Provider); !ok {
		t.Fatalf("provider is %T, want *redisprovider.Provider", a.Provider)
	}
	r, ok := a.Items.(*redisrepo.Repository[*Item])
	if !ok {
		t.Fatalf("repository is %T, want *redisrepo.Repository", a.Items)
	}
	useItems(t, a, "graph")
	// The record is in Redis, under the Service's namespace.
	key, err := r.EntityKey("graph")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(key, "shop:item:graph") {
		t.Fatalf("entity key %q lacks the Service's namespace", key)
	}
	if n, err := rdb.Exists(context.Background(), key).Result(); err != nil || n != 1 {
		t.Fatalf("EXISTS %s = %d, %v; want the record in Redis", key, n, err)
	}
}

func TestResolveRedisConfigured(t *testing.T) {
	rdb := redistest.Server(t).Client(t)
	c := dig.New()
	mustProvide(t, c, container.Redis(rdb))
	mustRepository(t, c)
	a := resolve(t, c)
	if _, ok := a.Provider.(*redisprovider.Provider); !ok {
		t.Fatalf("provider is %T, want *redisprovider.Provider", a.Provider)
	}
	useItems(t, a, "configured")
	n, err := rdb.DBSize(context.Background()).Result()
	if err != nil || n == 0 {
		t.Fatalf("DBSIZE = %d, %v; want the lock's and the record's keys in Redis", n, err)
	}
}

func TestResolveRedlock(t *testing.T) {
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	c := dig.New()
	mustProvide(t, c, container.Redis(clients...))
	mustRepository(t, c, container.InMemory())
	a := resolve(t, c)
	if _, ok := a.Provider.(*redisprovider.Redlock); !ok {
		t.Fatalf("provider is %T, want *redisprovider.Redlock", a.Provider)
	}
	ctx := context.Background()
	lease, err := a.Service.Acquire(ctx, "quorum")
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, cl := range clients {
		if n, _ := cl.DBSize(ctx).Result(); n > 0 {
			held++
		}
	}
	if held < 2 {
		t.Fatalf("the lock is on %d nodes, want a majority of 3", held)
	}
	if err := lease.Close(); err != nil {
		t.Fatal(err)
	}
	useItems(t, a, "redlock")
}

func TestRedlockRepositoryNeedsInMemory(t *testing.T) {
	nodes := redistest.Servers(t, 3)
	clients := make([]redis.UniversalClient, len(nodes))
	for i, n := range nodes {
		clients[i] = n.Client(t)
	}
	c := dig.New()
	mustProvide(t, c, container.Redis(clients...))
	mustRepository(t, c)
	err := c.Invoke(func(repository.Repository[*Item]) {})
	if !errors.Is(err, locked.ErrInvalid) || !strings.Contains(err.Error(), "InMemory") {
		t.Fatalf("Invoke = %v; want ErrInvalid pointing to InMemory", err)
	}
	// Nothing leaked: the Service and provider were built; shut them down.
	if err := c.Invoke(func(stop container.Shutdown) error { return stop() }); err != nil {
		t.Fatal(err)
	}
}

func TestMissingDependency(t *testing.T) {
	t.Run("service", func(t *testing.T) {
		err := dig.New().Invoke(func(*locked.Service) {})
		var de dig.Error
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "missing type: *locked.Service") {
			t.Fatalf("Invoke = %v; want dig's missing-type error", err)
		}
	})
	t.Run("repository before Provide", func(t *testing.T) {
		c := dig.New()
		mustRepository(t, c)
		err := c.Invoke(func(repository.Repository[*Item]) {})
		var de dig.Error
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "missing type: *locked.Service") {
			t.Fatalf("Invoke = %v; want dig's missing-type error naming *locked.Service", err)
		}
		if !strings.Contains(err.Error(), "container_test.go") {
			t.Fatalf("Invoke = %v; want the error to name the caller's line", err)
		}
	})
	t.Run("other name", func(t *testing.T) {
		c := dig.New()
		mustProvide(t, c, container.Name("a"))
		type in struct {
			dig.In
			S *locked.Service `name:"b"`
		}
		err := c.Invoke(func(in) {})
		if !strings.Contains(err.Error(), `missing type: *locked.Service[name="b"]`) {
			t.Fatalf("Invoke = %v; want dig's missing-type error for name b", err)
		}
	})
	t.Run("service not from Provide", func(t *testing.T) {
		c := dig.New()
		p := memprovider.New()
		defer p.Close()
		if err := c.Provide(func() (*locked.Service, error) { return locked.New(p, nil) }); err != nil {
			t.Fatal(err)
		}
		mustRepository(t, c)
		err := c.Invoke(func(repository.Repository[*Item]) {})
		if err == nil || !strings.Contains(err.Error(), "container.Provide") {
			t.Fatalf("Invoke = %v; want the error to say the Service is not container.Provide's", err)
		}
	})
}

func TestErrorsPassThrough(t *testing.T) {
	t.Run("constructor", func(t *testing.T) {
		c := dig.New()
		if err := c.Provide(func() *locked.Options { return &locked.Options{TTL: -1} }); err != nil {
			t.Fatal(err)
		}
		mustProvide(t, c)
		err := c.Invoke(func(*locked.Service) {})
		var arg *provider.ArgError
		if !errors.Is(err, locked.ErrInvalid) || !errors.As(dig.RootCause(err), &arg) || arg.Arg != "TTL" {
			t.Fatalf("Invoke = %v; want locked.New's TTL error through dig", err)
		}
		var de dig.Error
		if !errors.As(err, &de) {
			t.Fatalf("Invoke = %v; want a dig.Error", err)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		c := dig.New()
		mustProvide(t, c)
		err := container.Provide(c)
		var de dig.Error
		if !errors.As(err, &de) || !strings.Contains(err.Error(), "already provided") {
			t.Fatalf("second Provide = %v; want dig's already-provided error", err)
		}
	})
	t.Run("redis provider", func(t *testing.T) {
		c := dig.New()
		if err := c.Provide(func() *redisprovider.Options { return &redisprovider.Options{Prefix: "{bad}"} }); err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
		defer rdb.Close()
		mustProvide(t, c, container.Redis(rdb))
		var arg *provider.ArgError
		err := c.Invoke(func(*locked.Service) {})
		if !errors.As(err, &arg) || arg.Arg != "Prefix" {
			t.Fatalf("Invoke = %v; want redisprovider's Prefix error", err)
		}
	})
}

func TestBadOptions(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer rdb.Close()
	for _, tc := range []struct {
		name string
		opts []container.Option
	}{
		{"no clients", []container.Option{container.Redis()}},
		{"empty name", []container.Option{container.Name("")}},
		{"memory and redis", []container.Option{container.InMemory(), container.Redis(rdb)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dig.New()
			if err := container.Provide(c, tc.opts...); !errors.Is(err, locked.ErrInvalid) {
				t.Fatalf("Provide = %v; want ErrInvalid", err)
			}
			if err := c.Invoke(func(*locked.Service) {}); err == nil {
				t.Fatal("a failed Provide registered a Service")
			}
		})
	}
	t.Run("repository empty name", func(t *testing.T) {
		c := dig.New()
		if err := container.ProvideRepository[*Item](c, container.Name("")); !errors.Is(err, locked.ErrInvalid) {
			t.Fatalf("ProvideRepository = %v; want ErrInvalid", err)
		}
	})
}

func TestShutdownRedis(t *testing.T) {
	rdb := redistest.Server(t).Client(t)
	ctx := context.Background()
	// An outside holder keeps "busy" held, so that the waiter below waits
	// until Shutdown (releasing the container's own lease must not let it in).
	outside, err := redisprovider.New(rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	if _, err := outside.TryAcquire(ctx, "busy", "outsider", time.Minute); err != nil {
		t.Fatal(err)
	}
	clean := goleak.IgnoreCurrent() // the client and the server's watcher exist already

	c := dig.New()
	clientOf(t, c, rdb)
	mustProvide(t, c)
	var (
		svc  *locked.Service
		stop container.Shutdown
	)
	if err := c.Invoke(func(s *locked.Service, sd container.Shutdown) { svc, stop = s, sd }); err != nil {
		t.Fatal(err)
	}
	// A renewing lease (one goroutine) and a waiter (the provider's
	// subscription goroutines) that Shutdown must end.
	lease, err := svc.Acquire(ctx, "k", locked.WithAutoRenew())
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close() // a no-op once Shutdown has released it
	waited := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := svc.Acquire(ctx, "busy")
		waited <- err
	}()
	waitForWaiter(t, rdb)

	if err := stop(); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	if err := <-waited; !errors.Is(err, locked.ErrClosed) {
		t.Fatalf("waiter ended with %v; want ErrClosed", err)
	}
	if err := lease.Check(ctx); !errors.Is(err, locked.ErrNotHeld) {
		t.Fatalf("lease after Shutdown: %v; want ErrNotHeld", err)
	}
	if _, err := svc.Acquire(ctx, "k2"); !errors.Is(err, locked.ErrClosed) {
		t.Fatalf("Acquire after Shutdown = %v; want ErrClosed", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("second Shutdown = %v; want nil", err)
	}
	goleak.VerifyNone(t, clean)

	// The Service was closed first, so its lease was released in Redis
	// (through the still open provider); the caller's client is still open.
	st, err := outside.State(ctx, "k")
	if err != nil || st.Held {
		t.Fatalf("State(k) after Shutdown = %+v, %v; want free", st, err)
	}
	if st, err := outside.State(ctx, "busy"); err != nil || st.Token != "outsider" {
		t.Fatalf("State(busy) after Shutdown = %+v, %v; want the outsider's", st, err)
	}
}

// waitForWaiter waits until a waiter has queued in Redis (the queue key
// exists), bounded by the test's own deadline.
func waitForWaiter(t *testing.T, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for range 1000 {
		keys, err := rdb.Keys(ctx, "*:queue").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) > 0 {
			return
		}
		if err := rdb.Ping(ctx).Err(); err != nil { // one round trip per try
			t.Fatal(err)
		}
	}
	t.Fatal("no waiter queued")
}

func TestShutdownMemory(t *testing.T) {
	clean := goleak.IgnoreCurrent()
	released := make(chan string, 1)
	c := dig.New()
	if err := c.Provide(func() *locked.Options {
		return &locked.Options{OnEvent: func(e locked.Event) {
			if e.Type == locked.Released {
				released <- e.Key
			}
		}}
	}); err != nil {
		t.Fatal(err)
	}
	mustProvide(t, c)
	err := c.Invoke(func(svc *locked.Service, p provider.Provider, stop container.Shutdown) error {
		lease, err := svc.Acquire(context.Background(), "k", locked.WithAutoRenew())
		if err != nil {
			return err
		}
		defer lease.Close() // a no-op once Shutdown has released it
		if err := stop(); err != nil {
			return err
		}
		select { // OnEvent runs synchronously: the event is sent by now
		case got := <-released:
			if got != "k" {
				t.Errorf("released %q, want k", got)
			}
		default:
			t.Error("Shutdown did not release the open lease (closed the provider first?)")
		}
		if _, err := p.State(context.Background(), "k"); !errors.Is(err, locked.ErrClosed) {
			t.Errorf("provider State after Shutdown = %v; want ErrClosed", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, clean)
}

// named is the graph of two Services side by side: the default one on
// Redis and "local" in memory.
type named struct {
	dig.In
	Redis      *locked.Service
	Local      *locked.Service `name:"local"`
	RedisItems repository.Repository[*Item]
	LocalItems repository.Repository[*Item] `name:"local"`
	RedisStop  container.Shutdown
	LocalStop  container.Shutdown `name:"local"`
}

func TestNamedServices(t *testing.T) {
	rdb := redistest.Server(t).Client(t)
	ctx := context.Background()
	c := dig.New()
	clientOf(t, c, rdb)
	mustProvide(t, c)
	mustProvide(t, c, container.Name("local")) // no client named "local": memory
	mustRepository(t, c)
	mustRepository(t, c, container.Name("local"))
	var g named
	if err := c.Invoke(func(in named) { g = in }); err != nil {
		t.Fatal(err)
	}
	defer g.RedisStop()
	defer g.LocalStop()

	// The same key is free in each store: they are different stores.
	a, err := g.Redis.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := g.Local.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatalf("TryAcquire on local while Redis holds k: %v", err)
	}
	defer b.Close()
	if _, err := g.Local.TryAcquire(ctx, "k"); !errors.Is(err, locked.ErrNotAcquired) {
		t.Fatalf("second TryAcquire on local = %v; want ErrNotAcquired", err)
	}
	if n, err := rdb.DBSize(ctx).Result(); err != nil || n == 0 {
		t.Fatalf("DBSIZE = %d, %v; want the Redis Service's lock in Redis", n, err)
	}

	if err := g.LocalItems.Insert(ctx, &Item{SKU: "only-local", Stock: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.RedisItems.Find(ctx, "only-local"); !errors.Is(err, repository.ErrNotFound) {
		t.Fatalf("Redis repository Find = %v; want ErrNotFound", err)
	}
	if _, err := g.LocalItems.Find(ctx, "only-local"); err != nil {
		t.Fatal(err)
	}
	// Each named repository accepts its own Service's proofs only.
	l, err := locked.Load(ctx, g.Local, g.LocalItems, "only-local")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := g.RedisItems.Save(ctx, l); err == nil {
		t.Fatal("the Redis repository saved a proof of the in-memory Service")
	}
	if err := g.LocalItems.Save(ctx, l); err != nil {
		t.Fatal(err)
	}
}

func TestNamedRedisNamespaces(t *testing.T) {
	rdb := redistest.Server(t).Client(t)
	ctx := context.Background()
	c := dig.New()
	for _, ns := range []string{"a", "b"} {
		clientOf(t, c, rdb, dig.Name(ns))
		if err := c.Provide(func() *locked.Options { return &locked.Options{Namespace: ns} }, dig.Name(ns)); err != nil {
			t.Fatal(err)
		}
		mustProvide(t, c, container.Name(ns))
		mustRepository(t, c, container.Name(ns))
	}
	type graph struct {
		dig.In
		A      *locked.Service              `name:"a"`
		B      *locked.Service              `name:"b"`
		ItemsA repository.Repository[*Item] `name:"a"`
		ItemsB repository.Repository[*Item] `name:"b"`
		StopA  container.Shutdown           `name:"a"`
		StopB  container.Shutdown           `name:"b"`
	}
	var g graph
	if err := c.Invoke(func(in graph) { g = in }); err != nil {
		t.Fatal(err)
	}
	defer g.StopA()
	defer g.StopB()

	la, err := g.A.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := g.B.TryAcquire(ctx, "k")
	if err != nil {
		t.Fatalf("namespace b: TryAcquire k while a holds it: %v", err)
	}
	defer lb.Close()

	if err := g.ItemsA.Insert(ctx, &Item{SKU: "x", Stock: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ItemsB.Find(ctx, "x"); !errors.Is(err, repository.ErrNotFound) {
		t.Fatalf("namespace b sees a's record: %v", err)
	}
	l, err := locked.Load(ctx, g.A, g.ItemsA, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := g.ItemsA.Save(ctx, l); err != nil {
		t.Fatalf("namespace a's repository refused a's proof: %v", err)
	}
}
