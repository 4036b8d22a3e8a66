package redisprovider_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/redisprovider"
)

// A Provider on one Redis server, and a locked.Service on top of it. (This
// example needs a Redis server, so it is compiled but not run by go test.)
func ExampleNew() {
	ctx := context.Background()

	// ContextTimeoutEnabled lets a deadline cut a call to a hung Redis
	// short; New refuses a client without it.
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close() // after the provider

	p, err := redisprovider.New(rdb, nil) // nil: default prefix and polling
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close() // after the Service

	svc, err := locked.New(p, &locked.Options{TTL: 10 * time.Second, AutoRenew: true})
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	lease, err := svc.Acquire(ctx, "user:42", locked.WithTimeout(2*time.Second))
	if err != nil {
		log.Fatal(err) // errors.Is(err, locked.ErrNotAcquired) if another holder kept it
	}
	defer lease.Close()

	// Do the work while lease.Context() is live; pass lease.Fence() to the
	// store so it can reject a writer whose lease has been lost.
	fmt.Println("holding user:42 with fence", lease.Fence())
}

// Redlock over three independent Redis servers: a lock is held while a
// majority of them grant it, so it survives the loss of one. (Compiled, not
// run: it needs the servers.)
func ExampleNewRedlock() {
	ctx := context.Background()

	var clients []redis.UniversalClient
	for _, addr := range []string{"redis-a:6379", "redis-b:6379", "redis-c:6379"} {
		c := redis.NewClient(&redis.Options{
			Addr: addr,
			// Let NodeTimeout cut a hung node short: go-redis ignores
			// context deadlines without this.
			ContextTimeoutEnabled: true,
		})
		defer c.Close()
		clients = append(clients, c)
	}

	r, err := redisprovider.NewRedlock(clients, &redisprovider.RedlockOptions{
		NodeTimeout: 200 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	svc, err := locked.New(r, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	err = svc.Run(ctx, "invoice:7", func(ctx context.Context) error {
		// ctx ends if the lock is lost while fn runs.
		fmt.Println("invoice:7 is ours")
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}

// A store that keeps its own data beside a lock checks the hold in the same
// script as its write, through a Guard, without knowing how the provider
// stores holds (repository/redisrepo works this way). (Compiled, not run:
// it needs a Redis server.)
func ExampleNewGuardedScript() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// KEYS[1], ARGV[1] and ARGV[2] are the guard's; ours follow.
	setIfHeld := redisprovider.NewGuardedScript(`
if not guard_held() then return 0 end
redis.call('SET', KEYS[2], ARGV[3])
return 1`)

	g, err := p.TryAcquire(ctx, "doc:7", "my-token", 10*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	guard := p.Guard("doc:7", "my-token", g.Fence)
	n, err := setIfHeld.Run(ctx, guard, []string{p.DataKey("doc:7", "body")}, "hello").Int()
	if err != nil {
		log.Fatal(p.StoreError(ctx, err)) // ErrUnavailable, or ErrOutcomeUnknown if it may have applied
	}
	fmt.Println("written:", n == 1)
}

// After upgrading from a version that kept one fence counter per key, move
// those counters into the per-slot ones once, so that fences continue above
// the ones stores kept. (Compiled, not run: it needs a Redis server.)
func ExampleProvider_MigrateFences() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	p, err := redisprovider.New(rdb, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	n, err := p.MigrateFences(ctx) // safe while locks are in use; a second run moves nothing
	if err != nil {
		log.Fatal(err) // errors.Is(err, locked.ErrUnavailable): run it again
	}
	fmt.Println("moved", n, "fence counters; user:42 now draws from", p.FenceCounter("user:42"))
}
