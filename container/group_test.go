package container_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"go.uber.org/dig"

	"github.com/lockproof/lockproof/container"
	"github.com/lockproof/lockproof/internal/redistest"
	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

// groupClients starts n redis-servers and puts a client of each into the
// value group, as an app's constructors would.
func groupClients(t *testing.T, c *dig.Container, group string, n int) []*redis.Client {
	t.Helper()
	var clients []*redis.Client
	for _, node := range redistest.Servers(t, n) {
		rdb := node.Client(t)
		clients = append(clients, rdb)
		if err := c.Provide(func() redis.UniversalClient { return rdb }, dig.Group(group)); err != nil {
			t.Fatalf("provide a group client: %v", err)
		}
	}
	return clients
}

// nodesHolding returns how many of clients have any key.
func nodesHolding(t *testing.T, clients []*redis.Client) int {
	t.Helper()
	held := 0
	for _, cl := range clients {
		n, err := cl.DBSize(context.Background()).Result()
		if err != nil {
			t.Fatalf("DBSIZE: %v", err)
		}
		if n > 0 {
			held++
		}
	}
	return held
}

// TestResolveRedlockFromGroup: three clients in the group give a Redlock
// over them, whose locks are on a majority of the three; the app's own
// redis.UniversalClient in the graph is not used; Shutdown leaves the
// clients open.
func TestResolveRedlockFromGroup(t *testing.T) {
	c := dig.New()
	nodes := groupClients(t, c, container.RedisGroup, 3)
	own := redistest.Server(t).Client(t)
	clientOf(t, c, own)
	mustProvide(t, c)
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
	if held := nodesHolding(t, nodes); held < 2 {
		t.Fatalf("the lock is on %d nodes of the group, want a majority of 3", held)
	}
	if held := nodesHolding(t, []*redis.Client{own}); held != 0 {
		t.Fatal("the app's own client, outside the group, was used")
	}
	if err := lease.Close(); err != nil {
		t.Fatal(err)
	}
	useItems(t, a, "group")
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	for i, cl := range nodes {
		if err := cl.Ping(ctx).Err(); err != nil {
			t.Fatalf("client %d after Shutdown: %v; want it still open", i, err)
		}
	}
}

// TestResolveGroupOfOne: one client in the group gives a Redis provider on
// it, with a Redis repository on the same client.
func TestResolveGroupOfOne(t *testing.T) {
	c := dig.New()
	nodes := groupClients(t, c, container.RedisGroup, 1)
	mustProvide(t, c)
	mustRepository(t, c)
	a := resolve(t, c)
	if _, ok := a.Provider.(*redisprovider.Provider); !ok {
		t.Fatalf("provider is %T, want *redisprovider.Provider", a.Provider)
	}
	useItems(t, a, "one")
	if held := nodesHolding(t, nodes); held != 1 {
		t.Fatal("the group's client holds no key: the Service is not on it")
	}
}

// TestNamedGroup: a Service named "locks" reads the group
// "lockproof.redis.locks"; the unnamed one, with no group or client of
// its own, stays in memory.
func TestNamedGroup(t *testing.T) {
	c := dig.New()
	nodes := groupClients(t, c, container.RedisGroup+".locks", 3)
	mustProvide(t, c)
	mustProvide(t, c, container.Name("locks"))
	type in struct {
		dig.In
		Main          *locked.Service
		MainStop      container.Shutdown
		Locks         *locked.Service    `name:"locks"`
		LocksStop     container.Shutdown `name:"locks"`
		MainProvider  provider.Provider
		LocksProvider provider.Provider `name:"locks"`
	}
	var got in
	if err := c.Invoke(func(i in) { got = i }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := errors.Join(got.MainStop(), got.LocksStop()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	ctx := context.Background()
	l, err := got.Main.Acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if held := nodesHolding(t, nodes); held != 0 {
		t.Fatalf("the unnamed Service's lock is on %d nodes of the named group", held)
	}
	m, err := got.Locks.Acquire(ctx, "k") // another store: not blocked by l
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if held := nodesHolding(t, nodes); held < 2 {
		t.Fatalf("the named Service's lock is on %d nodes, want a majority of 3", held)
	}
	if _, ok := got.MainProvider.(*memprovider.Provider); !ok {
		t.Fatalf("unnamed provider is %T, want *memprovider.Provider", got.MainProvider)
	}
	if _, ok := got.LocksProvider.(*redisprovider.Redlock); !ok {
		t.Fatalf("provider %q is %T, want *redisprovider.Redlock", "locks", got.LocksProvider)
	}
}

// TestGroupBadInput: the same client twice, in the group or in Redis, and
// a Name that cannot name a group are ErrInvalid errors.
func TestGroupBadInput(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	defer rdb.Close()
	t.Run("same client twice in the group", func(t *testing.T) {
		c := dig.New()
		for range 3 {
			if err := c.Provide(func() redis.UniversalClient { return rdb }, dig.Group(container.RedisGroup)); err != nil {
				t.Fatal(err)
			}
		}
		mustProvide(t, c)
		err := c.Invoke(func(*locked.Service) {})
		var de dig.Error
		if !errors.Is(err, locked.ErrInvalid) || !errors.As(err, &de) || !strings.Contains(err.Error(), "counted twice") {
			t.Fatalf("Invoke = %v; want dig's error wrapping ErrInvalid about a node counted twice", err)
		}
	})
	t.Run("same client twice in Redis", func(t *testing.T) {
		c := dig.New()
		if err := container.Provide(c, container.Redis(rdb, rdb, rdb)); !errors.Is(err, locked.ErrInvalid) {
			t.Fatalf("Provide = %v; want ErrInvalid", err)
		}
		if err := c.Invoke(func(*locked.Service) {}); err == nil {
			t.Fatal("a failed Provide registered a Service")
		}
	})
	t.Run("name with a comma", func(t *testing.T) {
		c := dig.New()
		if err := container.Provide(c, container.Name("a,b")); !errors.Is(err, locked.ErrInvalid) {
			t.Fatalf("Provide = %v; want ErrInvalid", err)
		}
		if err := container.Provide(c, container.Name("a,b"), container.InMemory()); err != nil {
			t.Fatalf("Provide with InMemory reads no group, so the name is fine: %v", err)
		}
	})
}
