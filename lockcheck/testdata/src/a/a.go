// Package a holds lockcheck's test cases: each bad case carries a want
// comment with the diagnostic it must get, each good case none.
package a

import (
	"context"
	"errors"
	"fmt"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/repository"
	"github.com/stretchr/testify/assert"

	"helpers"
)

type Account struct{ Num string }

func (*Account) Kind() string { return "account" }
func (a *Account) ID() string { return a.Num }

type Order struct{ Num string }

func (*Order) Kind() string { return "order" }
func (o *Order) ID() string { return o.Num }

// --- defer and early returns ---

func goodDefer(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	l, err := locked.Load(ctx, svc, repo, "1")
	if err != nil {
		return err // the error path holds nothing
	}
	defer l.Close()
	return repo.Save(ctx, l)
}

func badSaveOnly(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	l, err := locked.Load(ctx, svc, repo, "1") // want `l \(\*locked.Locked\[\*a.Account\] from locked.Load\) is not closed on every path: the return at line 43 can be reached without closing it`
	if err != nil {
		return err
	}
	return repo.Save(ctx, l) // Save borrows the proof
}

func badConcreteSave(ctx context.Context, svc *locked.Service, repo *repository.Memory[*Account]) error {
	l, err := locked.Load(ctx, svc, repo, "1") // want `l .* is not closed on every path`
	if err != nil {
		return err
	}
	return repo.Save(ctx, l) // the fact says Memory.Save borrows too
}

func badEarlyReturn(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "k") // want `l \(\*locked.Lease from svc.Acquire\) is not closed on every path: the return at line 60`
	if err != nil {
		return err
	}
	if l.Fence() == 0 {
		return errors.New("no fence")
	}
	defer l.Close()
	return nil
}

func badFallOff(ctx context.Context, svc *locked.Service) {
	l, err := svc.Acquire(ctx, "k") // want `the end of the function \(line 71\) can be reached`
	if err == nil {
		fmt.Println(l.Key())
	}
}

func goodNilCheck(ctx context.Context, svc *locked.Service) {
	l, _ := svc.TryAcquire(ctx, "k")
	if l == nil {
		return
	}
	defer l.Close()
}

func goodErrorsIs(ctx context.Context, svc *locked.Service) error {
	l, err := svc.TryAcquire(ctx, "k")
	if errors.Is(err, locked.ErrNotAcquired) {
		return nil
	} else if err != nil {
		return err
	}
	return l.Close()
}

func badErrReassigned(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	l, err := locked.Load(ctx, svc, repo, "1") // want `l .* is not closed on every path: the return at line 98`
	if err != nil {
		return err
	}
	err = repo.Save(ctx, l)
	if err != nil {
		return err // this err is Save's: l is held here
	}
	return l.Close()
}

// --- switch and select ---

func goodSwitch(ctx context.Context, svc *locked.Service, n int) error {
	l, err := svc.TryAcquire(ctx, "k")
	switch {
	case errors.Is(err, locked.ErrNotAcquired):
		return nil
	case err != nil:
		return err
	}
	switch n {
	case 0:
		return l.Close()
	case 1:
		l.Detach() // handed over: ends ownership here
		return nil
	default:
		return l.Release(ctx)
	}
}

func badSwitch(ctx context.Context, svc *locked.Service, n int) error {
	l, err := svc.Acquire(ctx, "k") // want `the return at line 133 can be reached without closing it`
	if err != nil {
		return err
	}
	switch n {
	case 0:
		return l.Close()
	case 1:
		return nil
	}
	return l.Close()
}

func goodSelect(ctx context.Context, svc *locked.Service, out chan<- *locked.Lease, done <-chan struct{}) error {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	select {
	case out <- l: // sent: the receiver owns it
		return nil
	case <-done:
		return l.Close()
	}
}

func badSelect(ctx context.Context, svc *locked.Service, done, stop <-chan struct{}) error {
	l, err := svc.Acquire(ctx, "k") // want `the return at line 160 can be reached`
	if err != nil {
		return err
	}
	select {
	case <-done:
		return l.Close()
	case <-stop:
		return nil
	}
}

// --- discarded and never used ---

func badDiscarded(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) {
	svc.Acquire(ctx, "k")                   // want `the \*locked.Lease from svc.Acquire is discarded`
	_, _ = locked.Load(ctx, svc, repo, "1") // want `the \*locked.Locked\[\*a.Account\] from locked.Load is discarded`
}

func badDiscardedErrChecked(ctx context.Context, svc *locked.Service) error {
	_, err := svc.Acquire(ctx, "k") // want `the \*locked.Lease from svc.Acquire is discarded: the lock stays held until its TTL runs out \(if the call is meant to fail`
	if err != nil {
		return err
	}
	return nil
}

func goodProbe(ctx context.Context, svc *locked.Service) bool {
	_, err := svc.TryAcquire(ctx, "k") // made to fail: its error is inspected
	return errors.Is(err, locked.ErrNotAcquired)
}

func badNeverUsed(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "k") // want `l \(\*locked.Lease from svc.Acquire\) is never used`
	_ = l
	return err
}

// --- returned, stored, named results ---

type holder struct{ l *locked.Lease }

func goodReturned(ctx context.Context, svc *locked.Service) (*locked.Lease, error) {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return nil, err
	}
	if l.Fence() == 0 {
		_ = l.Close()
		return nil, errors.New("no fence")
	}
	return l, nil
}

func goodStored(ctx context.Context, svc *locked.Service, h *holder, m map[string]*locked.Lease) error {
	l, err := svc.Acquire(ctx, "a")
	if err != nil {
		return err
	}
	h.l = l
	l2, err := svc.Acquire(ctx, "b")
	if err != nil {
		return err
	}
	m["b"] = l2
	h.l, err = svc.Acquire(ctx, "c") // straight into a field
	return err
}

func goodNamed(ctx context.Context, svc *locked.Service) (l *locked.Lease, err error) {
	l, err = svc.Acquire(ctx, "k")
	if err != nil {
		return
	}
	return // a naked return hands l to the caller
}

func badNamedErr(ctx context.Context, svc *locked.Service) (err error) {
	l, err := svc.Acquire(ctx, "k") // want `l .* is not closed on every path: the return at line 235`
	if err != nil {
		return
	}
	if l.Fence() > 1 {
		return errors.New("fence too high")
	}
	return l.Close()
}

func goodDeferClosure(ctx context.Context, svc *locked.Service) (err error) {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	if l.Fence() == 0 {
		return errors.New("no fence")
	}
	return nil
}

// --- closures and goroutines ---

func goodCleanup(ctx context.Context, svc *locked.Service, cleanup func(func())) error {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	cleanup(func() { _ = l.Close() })
	return nil
}

func badInClosure(ctx context.Context, svc *locked.Service) func() {
	return func() {
		l, err := svc.Acquire(ctx, "k") // want `l .* is not closed on every path`
		if err != nil {
			return
		}
		fmt.Println(l.Key())
	}
}

func goodGoroutine(ctx context.Context, svc *locked.Service, done <-chan struct{}) error {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	go func() {
		defer l.Close() // the goroutine owns it
		<-done
	}()
	return nil
}

func goodGoOwner(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	go helpers.CloseAll(l) // CloseAll takes it over (a fact from package helpers)
	return nil
}

func badGoBorrower(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "k") // want `l .* is not closed on every path`
	if err != nil {
		return err
	}
	go helpers.Describe(l) // Describe only borrows it
	return nil
}

func goodKeep(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	helpers.Keep(l)
	return nil
}

// --- loops ---

func goodDeferInLoop(ctx context.Context, svc *locked.Service, keys []string) error {
	for _, k := range keys {
		l, err := svc.Acquire(ctx, k)
		if err != nil {
			return err
		}
		defer l.Close() // closes, but only when the function returns
	}
	return nil
}

func badContinue(ctx context.Context, svc *locked.Service, keys []string) error {
	for _, k := range keys {
		l, err := svc.Acquire(ctx, k) // want `a loop can come back to the acquire before it is closed`
		if err != nil {
			return err
		}
		if l.Fence() == 0 {
			continue
		}
		_ = l.Close()
	}
	return nil
}

func goodCloseInLoop(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], ids []string) error {
	for _, id := range ids {
		l, err := locked.Load(ctx, svc, repo, id)
		if err != nil {
			return err
		}
		err = repo.Save(ctx, l)
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// --- nesting: a second proof of the same entity type ---

func badNested(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	a, err := locked.Load(ctx, svc, repo, "1")
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := locked.Load(ctx, svc, repo, "2") // want `locked.Load acquires a \*a.Account while a from line 359 is still open`
	if err != nil {
		return err
	}
	defer b.Close()
	return nil
}

func badNestedInLoop(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account], ids []string) error {
	for _, id := range ids {
		l, err := locked.Load(ctx, svc, repo, id) // want `locked.Load acquires a \*a.Account while l from line 374 is still open \(in a loop`
		if err != nil {
			return err
		}
		defer l.Close()
	}
	return nil
}

func goodOtherType(ctx context.Context, svc *locked.Service, accounts repository.Repository[*Account], orders repository.Repository[*Order]) error {
	a, err := locked.Load(ctx, svc, accounts, "1")
	if err != nil {
		return err
	}
	defer a.Close()
	o, err := locked.Load(ctx, svc, orders, "1")
	if err != nil {
		return err
	}
	return o.Close()
}

func goodSequential(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	a, err := locked.Load(ctx, svc, repo, "1")
	if err != nil {
		return err
	}
	if err := a.Close(); err != nil {
		return err
	}
	b, err := locked.Load(ctx, svc, repo, "2")
	if err != nil {
		return err
	}
	return b.Close()
}

func goodAll(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	ls, err := locked.LoadAll(ctx, svc, repo, []string{"1", "2"})
	if err != nil {
		return err
	}
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	return repo.Save(ctx, ls[0])
}

func goodIndexed(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	ls, err := locked.LoadAll(ctx, svc, repo, []string{"1", "2"})
	if err != nil {
		return err
	}
	defer ls[0].Close()
	defer ls[1].Close()
	return nil
}

func badAllNotClosed(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	ls, err := locked.LoadAll(ctx, svc, repo, []string{"1", "2"}) // want `ls \(\[\]\*locked.Locked\[\*a.Account\] from locked.LoadAll\) is not closed`
	if err != nil {
		return err
	}
	for _, l := range ls {
		fmt.Println(l.Key())
	}
	return nil
}

func goodTryNested(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	a, err := locked.Load(ctx, svc, repo, "1")
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := locked.TryAcquire(ctx, svc, &Account{Num: "2"}) // a Try… call does not wait: no deadlock
	if err != nil {
		return err
	}
	return b.Close()
}

// --- generics ---

func goodGeneric[T locked.Persistent](ctx context.Context, svc *locked.Service, r locked.Finder[T], id string) (T, error) {
	l, err := locked.Load(ctx, svc, r, id)
	if err != nil {
		var zero T
		return zero, err
	}
	defer l.Close()
	return l.Entity(), nil
}

func badGenericNested[T locked.Persistent](ctx context.Context, svc *locked.Service, r locked.Finder[T], x, y string) error {
	a, err := locked.Load(ctx, svc, r, x)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := locked.Load(ctx, svc, r, y) // want `locked.Load acquires a T while a from line 471 is still open`
	if err != nil {
		return err
	}
	return b.Close()
}

// --- new entry points are covered by type ---

func goodMulti(ctx context.Context, svc *locked.Service) error {
	m, err := svc.AcquireKeys(ctx, "a", "b")
	if err != nil {
		return err
	}
	defer m.Close()
	for _, l := range m.Leases() { // a view: these are m's
		fmt.Println(l.Key())
	}
	return nil
}

func badMulti(ctx context.Context, svc *locked.Service) error {
	m, err := svc.AcquireKeys(ctx, "a", "b") // want `m \(\*locked.Leases from svc.AcquireKeys\) is not closed`
	if err != nil {
		return err
	}
	fmt.Println(len(m.Leases()))
	return nil
}

func goodRestoreDetach(ctx context.Context, svc *locked.Service, send func(locked.Handle)) error {
	l, err := svc.Restore(ctx, locked.Handle{Key: "k"})
	if err != nil {
		return err
	}
	send(l.Handle())
	l.Detach()
	return nil
}

func goodViewClose(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	l, err := locked.Load(ctx, svc, repo, "1")
	if err != nil {
		return err
	}
	return l.Lease().Close() // closing the proof's lease closes the proof
}

// --- helpers, through facts ---

func goodManagedHelper(ctx context.Context, svc *locked.Service, cleanup func(func())) {
	helpers.MustAcquire(ctx, svc, "a", cleanup) // its Close is registered already
	l := helpers.MustAcquire(ctx, svc, "b", cleanup)
	fmt.Println(l.Key())
}

func badHelper(ctx context.Context, svc *locked.Service) error {
	l, err := helpers.Acquire(ctx, svc, "k") // want `l \(\*locked.Lease from helpers.Acquire\) is not closed`
	if err != nil {
		return err
	}
	fmt.Println(helpers.Describe(l))
	return nil
}

func goodManagedLit(ctx context.Context, svc *locked.Service, cleanup func(func())) {
	acquire := func(key string) *locked.Lease {
		l, err := svc.Acquire(ctx, key)
		if err != nil {
			panic(err)
		}
		cleanup(func() { _ = l.Close() })
		return l
	}
	acquire("a")
	fmt.Println(acquire("b").Key())
}

func badUnmanagedLit(ctx context.Context, svc *locked.Service) {
	acquire := func(key string) *locked.Lease {
		l, _ := svc.Acquire(ctx, key)
		return l
	}
	acquire("a") // want `the \*locked.Lease from acquire is discarded`
}

// --- testify ---

func goodAssert(t assert.TestingT, ctx context.Context, svc *locked.Service) {
	l, err := svc.Acquire(ctx, "k")
	if !assert.NoError(t, err) {
		return
	}
	defer l.Close()
}

func goodAssertProbe(t assert.TestingT, ctx context.Context, svc *locked.Service) {
	_, err := svc.TryAcquire(ctx, "k")
	assert.ErrorIs(t, err, locked.ErrNotAcquired)
}

// --- copies ---

func badCopy(l *locked.Locked[*Account]) *Account {
	c := *l // want `\*l copies a locked.Locked\[\*a.Account\] by value`
	return c.Entity()
}

func goodDeref(l *locked.Locked[*Account]) *Account {
	return (*l).Entity() // a method call through the pointer copies nothing
}

// --- more hand-offs and non-locks ---

func goodService() error {
	svc, err := locked.New() // a Service has Close, but it is not a lock
	if err != nil {
		return err
	}
	_ = svc
	return nil
}

func goodIfInit(ctx context.Context, svc *locked.Service) {
	if l, err := svc.TryAcquire(ctx, "k"); err == nil {
		defer l.Close()
		fmt.Println(l.Key())
	}
}

func goodMethodValue(ctx context.Context, svc *locked.Service, cleanup func(func() error)) error {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	cleanup(l.Close)
	return nil
}

func goodAnyParam(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "k")
	if err != nil {
		return err
	}
	fmt.Println(l) // a parameter of type any is assumed to take it over (a documented limit)
	return nil
}

func badRetry(ctx context.Context, svc *locked.Service) error {
	var l *locked.Lease
	var err error
	for range 3 {
		l, err = svc.TryAcquire(ctx, "k") // want `l .* is not closed on every path: the return at line \d+`
		if err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	fmt.Println(l.Key())
	return nil
}

func goodRetry(ctx context.Context, svc *locked.Service) error {
	var l *locked.Lease
	var err error
	for range 3 {
		l, err = svc.TryAcquire(ctx, "k")
		if err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	return l.Close()
}

func badSliceHint(ctx context.Context, svc *locked.Service, repo repository.Repository[*Account]) error {
	ls, err := locked.AcquireAll(ctx, svc, []*Account{{Num: "1"}}) // want `ls .* is not closed on every path: the return at line \d+ can be reached without closing it \(close every element, e.g. in a deferred loop\)`
	if err != nil {
		return err
	}
	return repo.Save(ctx, ls[0])
}

func goodMutex(ctx context.Context, svc *locked.Service) error {
	m := svc.Mutex("k") // a handle, not a lock: it has Acquire
	if err := m.Acquire(ctx); err != nil {
		return err
	}
	defer m.Release(ctx)
	fmt.Println(m.Lease().Key())
	return nil
}

func goodOwner(ctx context.Context, svc *locked.Service) error {
	if _, err := svc.Acquire(ctx, "doc", locked.WithOwner("user-1")); err != nil {
		return err
	}
	return svc.Release(ctx, "doc", "user-1") // released by owner, not by the lease
}

func goodTagSwitch(ctx context.Context, svc *locked.Service) error {
	l, err := svc.Acquire(ctx, "k")
	switch err {
	case nil:
		return l.Close()
	default:
		return err
	}
}

// --- the ignore directive ---

func ignored(ctx context.Context, svc *locked.Service) {
	//lockcheck:ignore the lease is meant to lapse
	l, _ := svc.Acquire(ctx, "k")
	fmt.Println(l.Key())
}
