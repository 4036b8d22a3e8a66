package locked_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/memprovider"
	"github.com/lockproof/lockproof/repository"
)

// Account is a lockable entity: its lock key is "account:" + Num.
type Account struct {
	Num     string
	Balance int
}

// Kind implements persistent.Persistent.
func (*Account) Kind() string { return "account" }

// ID implements persistent.Persistent.
func (a *Account) ID() string { return a.Num }

func ExampleNew() {
	p := memprovider.New()
	defer p.Close()

	svc, err := locked.New(p, &locked.Options{
		TTL:       10 * time.Second,
		Namespace: "shop", // keys are "shop:..." in the store
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()

	lease, err := svc.Acquire(context.Background(), "orders")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lease.Close()
	fmt.Println(lease.Key(), lease.Fence())
	// Output: orders 1
}

func ExampleService_Acquire() {
	p := memprovider.New()
	defer p.Close()
	svc, _ := locked.New(p, nil)
	defer svc.Close()
	ctx := context.Background()

	lease, err := svc.Acquire(ctx, "report", locked.WithTimeout(time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lease.Close()

	fmt.Println("holding", lease.Key())
	fmt.Println("release:", lease.Release(ctx))
	fmt.Println("again:", errors.Is(lease.Release(ctx), locked.ErrNotHeld))
	// Output:
	// holding report
	// release: <nil>
	// again: true
}

func ExampleService_TryAcquire() {
	p := memprovider.New()
	defer p.Close()
	svc, _ := locked.New(p, nil)
	defer svc.Close()
	ctx := context.Background()

	first, _ := svc.TryAcquire(ctx, "cache-refresh")
	if _, err := svc.TryAcquire(ctx, "cache-refresh"); errors.Is(err, locked.ErrNotAcquired) {
		fmt.Println("busy")
	}
	_ = first.Close()

	second, err := svc.TryAcquire(ctx, "cache-refresh")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer second.Close()
	fmt.Println("fences:", first.Fence(), second.Fence())
	// Output:
	// busy
	// fences: 1 2
}

func ExampleService_Run() {
	p := memprovider.New()
	defer p.Close()
	svc, _ := locked.New(p, nil)
	defer svc.Close()
	ctx := context.Background()

	err := svc.Run(ctx, "nightly-job", func(ctx context.Context) error {
		// ctx ends if the lease is lost; pass it to everything fn does.
		held, _ := svc.IsLocked(ctx, "nightly-job")
		fmt.Println("running, locked:", held)
		return nil
	}, locked.WithAutoRenew())
	fmt.Println("err:", err)

	held, _ := svc.IsLocked(ctx, "nightly-job")
	fmt.Println("after, locked:", held)
	// Output:
	// running, locked: true
	// err: <nil>
	// after, locked: false
}

func ExampleLoad() {
	p := memprovider.New()
	defer p.Close()
	svc, _ := locked.New(p, nil)
	defer svc.Close()
	ctx := context.Background()

	accounts := repository.NewMemory[*Account]()
	_ = accounts.Insert(ctx, &Account{Num: "42", Balance: 100}) // new: no lock needed

	// Lock first, then read: nobody can change the account in between.
	acct, err := locked.Load(ctx, svc, accounts, "42")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer acct.Close()

	acct.Entity().Balance += 50
	if err := accounts.Save(ctx, acct); err != nil { // Save needs the proof
		fmt.Println(err)
		return
	}
	_ = acct.Close()

	saved, _ := accounts.Find(ctx, "42")
	fmt.Println(acct.Key(), saved.Balance)
	// Output: account:42 150
}

func ExampleLoadAll() {
	p := memprovider.New()
	defer p.Close()
	svc, _ := locked.New(p, nil)
	defer svc.Close()
	ctx := context.Background()

	accounts := repository.NewMemory[*Account]()
	_ = accounts.Insert(ctx, &Account{Num: "1", Balance: 100})
	_ = accounts.Insert(ctx, &Account{Num: "2", Balance: 100})

	// transfer locks both accounts, in sorted key order whatever the
	// direction, so concurrent transfers cannot deadlock.
	transfer := func(from, to string, amount int) error {
		both, err := locked.LoadAll(ctx, svc, accounts, []string{from, to})
		if err != nil {
			return err
		}
		defer func() {
			for _, l := range both {
				_ = l.Close()
			}
		}()
		src, dst := both[0], both[1] // in the order asked for
		src.Entity().Balance -= amount
		dst.Entity().Balance += amount
		return errors.Join(accounts.Save(ctx, src), accounts.Save(ctx, dst))
	}

	fmt.Println(transfer("2", "1", 30))
	fmt.Println(transfer("1", "2", 5))
	for _, id := range []string{"1", "2"} {
		a, _ := accounts.Find(ctx, id)
		fmt.Println(a.Num, a.Balance)
	}
	// Output:
	// <nil>
	// <nil>
	// 1 125
	// 2 75
}

func ExampleAcquireAll() {
	p := memprovider.New()
	defer p.Close()
	svc, _ := locked.New(p, nil)
	defer svc.Close()
	ctx := context.Background()

	// Someone else holds account 7.
	other, _ := locked.New(p, nil)
	defer other.Close()
	busy, _ := locked.TryAcquire(ctx, other, &Account{Num: "7"})

	es := []*Account{{Num: "9"}, {Num: "7"}, {Num: "8"}}
	_, err := locked.AcquireAll(ctx, svc, es, locked.WithTimeout(10*time.Millisecond))
	fmt.Println("all or nothing:", errors.Is(err, locked.ErrNotAcquired), svc.Stats().Open)

	_ = busy.Close()
	all, err := locked.AcquireAll(ctx, svc, es)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, l := range all {
		fmt.Println(l.Key())
		_ = l.Close()
	}
	// Output:
	// all or nothing: true 0
	// account:9
	// account:7
	// account:8
}

func ExampleLease_Handle() {
	p := memprovider.New() // in real use, a store both processes share
	defer p.Close()
	ctx := context.Background()

	producer, _ := locked.New(p, nil)
	defer producer.Close()
	lease, err := producer.Acquire(ctx, "import-batch-17")
	if err != nil {
		fmt.Println(err)
		return
	}
	data, _ := json.Marshal(lease.Handle()) // hand this to the other process
	lease.Detach()                          // and stop using the lease here

	consumer, _ := locked.New(p, nil)
	defer consumer.Close()
	var h locked.Handle
	_ = json.Unmarshal(data, &h)
	restored, err := consumer.Restore(ctx, h) // checked against the store
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(restored.Key(), restored.Fence(), restored.Token() == lease.Token())
	fmt.Println("release:", restored.Release(ctx))

	// A spent handle restores nothing.
	_, err = consumer.Restore(ctx, h)
	fmt.Println("again:", errors.Is(err, locked.ErrNotHeld))
	// Output:
	// import-batch-17 1 true
	// release: <nil>
	// again: true
}

func ExampleService_State() {
	p := memprovider.New()
	defer p.Close()
	ctx := context.Background()
	a, _ := locked.New(p, &locked.Options{Owner: "worker-a"})
	defer a.Close()
	b, _ := locked.New(p, &locked.Options{Owner: "worker-b"})
	defer b.Close()

	st, _ := a.State(ctx, "invoice-run")
	fmt.Println(st.Status)

	lease, _ := a.Acquire(ctx, "invoice-run", locked.WithTTL(time.Minute))
	defer lease.Close()
	st, _ = a.State(ctx, "invoice-run")
	fmt.Println(st.Status, st.Owner, st.Fence)
	st, _ = b.State(ctx, "invoice-run")
	fmt.Println(st.Status, st.Owner, st.TTL > 0 && st.TTL <= time.Minute)
	// Output:
	// free
	// held by me worker-a 1
	// held by other worker-a true
}
