package locked_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
)

// newExampleService returns a Service on a fresh in-memory provider and a
// function that closes both.
func newExampleService(opts *locked.Options) (*locked.Service, func()) {
	p := memprovider.New()
	svc, err := locked.New(p, opts)
	if err != nil {
		panic(err)
	}
	return svc, func() { _ = svc.Close(); _ = p.Close() }
}

func ExampleDo() {
	svc, done := newExampleService(nil)
	defer done()

	total, err := locked.Do(context.Background(), svc, "payment:order-123", func(ctx context.Context) (int, error) {
		return 40 + 2, nil // computed while the key is held
	}, locked.WithTTL(30*time.Second))
	fmt.Println(total, err)
	// Output: 42 <nil>
}

func ExampleService_TryRun() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	busy, _ := svc.TryAcquire(ctx, "order:7")
	err := svc.TryRun(ctx, "order:7", func(ctx context.Context) error {
		fmt.Println("not reached")
		return nil
	})
	fmt.Println("busy:", errors.Is(err, locked.ErrNotAcquired))
	_ = busy.Close()
	err = svc.TryRun(ctx, "order:7", func(ctx context.Context) error {
		fmt.Println("processing")
		return nil
	})
	fmt.Println(err)
	// Output:
	// busy: true
	// processing
	// <nil>
}

func ExampleErrNested() {
	svc, done := newExampleService(nil)
	defer done()

	_ = svc.Run(context.Background(), "invoice:9", func(ctx context.Context) error {
		// ctx carries the lease: taking the same key again would wait for
		// itself until the timeout. It fails at once instead.
		_, err := svc.Acquire(ctx, "invoice:9")
		fmt.Println(errors.Is(err, locked.ErrNested))
		return nil
	})
	// Output: true
}

func ExampleService_AcquireAll() {
	svc, done := newExampleService(nil)
	defer done()

	// Sorted inside, all or nothing, one timeout for the set.
	set, err := svc.AcquireAll(context.Background(), []string{"sku:b", "sku:a"}, locked.WithTimeout(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer set.Close()
	for _, l := range set.All() {
		fmt.Println(l.Key(), l.Fence() > 0) // fences are per memprovider shard: their values vary
	}
	// Output:
	// sku:b true
	// sku:a true
}

func ExampleService_RunAll() {
	svc, done := newExampleService(nil)
	defer done()

	err := svc.RunAll(context.Background(), []string{"stock:1", "stock:2"}, func(ctx context.Context) error {
		fmt.Println("both held")
		return nil
	})
	fmt.Println(err)
	// Output:
	// both held
	// <nil>
}

func ExampleWithOwner() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	// A user locks a document while editing it; the request that saves
	// it later knows the user, not the lease.
	if _, err := svc.Acquire(ctx, "doc:42", locked.WithOwner("user-123")); err != nil {
		fmt.Println(err)
		return
	}
	st, _ := svc.State(ctx, "doc:42")
	fmt.Println("owner:", st.Owner)

	err := svc.Release(ctx, "doc:42", "user-999")
	fmt.Println("other user:", errors.Is(err, locked.ErrNotOwner))
	fmt.Println("owner:", svc.Release(ctx, "doc:42", "user-123"))
	// Output:
	// owner: user-123
	// other user: true
	// owner: <nil>
}

func ExampleWithReentrant() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	first, _ := svc.Acquire(ctx, "cart:5", locked.WithOwner("job-1"), locked.WithTTL(time.Minute))
	// The same owner again: the hold is extended, not waited for.
	again, err := svc.Acquire(ctx, "cart:5", locked.WithOwner("job-1"), locked.WithReentrant(), locked.WithTTL(time.Hour))
	fmt.Println(err, again.Fence() == first.Fence())
	// Another owner is refused.
	_, err = svc.TryAcquire(ctx, "cart:5", locked.WithOwner("job-2"), locked.WithReentrant())
	fmt.Println(errors.Is(err, locked.ErrNotAcquired))
	// Output:
	// <nil> true
	// true
}

func ExampleService_ReleaseOwner() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	for _, key := range []string{"a", "b"} {
		_, _ = svc.Acquire(ctx, key, locked.WithOwner("user-1"))
	}
	_, _ = svc.Acquire(ctx, "c", locked.WithOwner("user-2"))

	n, err := svc.ReleaseOwner(ctx, "user-1")
	fmt.Println(n, err)
	n, err = svc.ForceReleaseAll(ctx) // the admin form: everything in the namespace
	fmt.Println(n, err)
	// Output:
	// 2 <nil>
	// 1 <nil>
}

func ExampleService_Locks() {
	svc, done := newExampleService(&locked.Options{Namespace: "shop"})
	defer done()
	ctx := context.Background()

	_, _ = svc.Acquire(ctx, "order:1", locked.WithOwner("alice"))
	_, _ = svc.Acquire(ctx, "order:2", locked.WithOwner("bob"), locked.WithNoExpiry())
	held, _ := svc.Locks(ctx)
	slices.SortFunc(held, func(a, b locked.KeyState) int { return strings.Compare(a.Key, b.Key) })
	for _, h := range held {
		fmt.Println(h.Key, h.Owner, h.NoExpiry)
	}
	// Output:
	// order:1 alice false
	// order:2 bob true
}

func ExampleWithNoExpiry() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	l, _ := svc.Acquire(ctx, "migration", locked.WithNoExpiry())
	st, _ := svc.State(ctx, "migration")
	fmt.Println("no expiry:", st.NoExpiry, l.NoExpiry())
	fmt.Println("extend:", errors.Is(l.ExtendTo(ctx, time.Minute), locked.ErrInvalid))
	fmt.Println("release:", l.Release(ctx))
	// Output:
	// no expiry: true true
	// extend: true
	// release: <nil>
}

func ExampleLease_ExtendBy() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	l, _ := svc.Acquire(ctx, "long:task", locked.WithTTL(time.Minute))
	defer l.Close()
	_ = l.ExtendBy(ctx, 30*time.Second) // add 30 s to what is left
	fmt.Println(l.Remaining() > time.Minute)
	_ = l.ExtendTo(ctx, 10*time.Second) // set what is left
	fmt.Println(l.Remaining() <= 10*time.Second)
	// Output:
	// true
	// true
}

func ExampleLease_StopAutoRenew() {
	svc, done := newExampleService(&locked.Options{AutoRenew: true})
	defer done()
	ctx := context.Background()

	l, _ := svc.Acquire(ctx, "job")
	defer l.Close()
	fmt.Println(l.AutoRenewing(), l.TTL())
	l.StopAutoRenew()
	fmt.Println(l.AutoRenewing())

	once, _ := svc.Acquire(ctx, "other-job", locked.WithoutAutoRenew())
	defer once.Close()
	fmt.Println(once.AutoRenewing())
	// Output:
	// true 30s
	// false
	// false
}

func ExampleWithMaxRetries() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	held, _ := svc.Acquire(ctx, "report")
	defer held.Close()
	// One try and two retries, each waiting up to 10 ms for a release.
	_, err := svc.Acquire(ctx, "report", locked.WithMaxRetries(2, 10*time.Millisecond))
	fmt.Println(err)
	// Output: locked: acquire "report": lockproof: not acquired: gave up after 2 retries
}

func ExampleService_Subscribe() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	unsubscribe := svc.Subscribe(func(e locked.Event) { fmt.Println(e.Type, e.Key) })
	l, _ := svc.Acquire(ctx, "k")
	if busy, err := svc.TryAcquire(ctx, "k"); err == nil { // held: fails
		_ = busy.Close()
	}
	_ = l.Release(ctx)
	unsubscribe()
	l, _ = svc.Acquire(ctx, "k") // nobody listens now
	_ = l.Release(ctx)
	// Output:
	// acquired k
	// acquire failed k
	// released k
}

func ExampleSlogEvents() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // keep the output stable
			}
			return a
		},
	}))
	svc, done := newExampleService(&locked.Options{OnEvent: locked.SlogEvents(logger)})
	defer done()
	ctx := context.Background()

	l, _ := svc.Acquire(ctx, "k", locked.WithOwner("ann"))
	_, _ = svc.TryAcquire(ctx, "k", locked.WithOwner("bob"))
	_ = l.Release(ctx)
	// Output:
	// level=WARN msg="lockproof: acquire failed" key=k owner=bob err="locked: acquire \"k\": lockproof: not acquired"
}

func ExampleService_Stats() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	l, _ := svc.Acquire(ctx, "a")
	if busy, err := svc.TryAcquire(ctx, "a"); err == nil { // held: fails
		_ = busy.Close()
	}
	st := svc.Stats()
	fmt.Println(st.Open, st.Acquired, st.AcquireFailed)
	_ = l.Release(ctx)
	fmt.Println(svc.Stats().Open)
	// Output:
	// 1 1 1
	// 0
}

func ExampleService_Mutex() {
	svc, done := newExampleService(nil)
	defer done()
	ctx := context.Background()

	m := svc.Mutex("my-resource", locked.WithTTL(2*time.Second))
	if err := m.Acquire(ctx); err != nil {
		fmt.Println(err)
		return
	}
	st, _ := m.State(ctx)
	fmt.Println(st.Status)
	fmt.Println(m.Release(ctx))
	// Output:
	// held by me
	// <nil>
}

func ExampleMutex_Locker() {
	svc, done := newExampleService(nil)
	defer done()

	var mu sync.Locker = svc.Mutex("counter").Locker()
	n := 0
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			n++
		}()
	}
	wg.Wait()
	fmt.Println(n)
	// Output: 4
}
