// Package lockcheck defines an analyzer that reports lockproof locks a
// function leaks, discards or never uses, a second proof of an entity type
// taken while one is open, and proofs copied by value.
//
// Go's type system proves that a repository write holds a lock; it cannot
// prove that the lock is released, or that a function does not wait for a
// lock it already holds. lockcheck checks both, function by function, the
// way vet's lostcancel checks context cancel functions.
//
// # Usage
//
// With go vet:
//
//	go install github.com/lockproof/lockproof/lockcheck/cmd/lockcheck@latest
//	go vet -vettool=$(which lockcheck) ./...
//
// or as a tool of the module (Go 1.24 and later):
//
//	go get -tool github.com/lockproof/lockproof/lockcheck/cmd/lockcheck@latest
//	go vet -vettool=$(go tool -n lockcheck) ./...
//
// The analyzer is [Analyzer]; golang.org/x/tools/go/analysis drivers such
// as multichecker or gopls can run it with others.
//
// # Locks
//
// A lock is a value of a type declared in package
// github.com/lockproof/lockproof/locked that has a Close or Release method
// and no Acquire method — *locked.Locked[T], *locked.Lease, a multi-lock
// result such as *locked.Leases — or a slice of them. (A type with Acquire,
// such as Service or a Mutex handle, takes locks rather than being one.) Any call whose callee declares a lock result hands
// the caller a lock it must end: locked.Acquire, TryAcquire, Load,
// AcquireAll, LoadAll, Service.Acquire, TryAcquire and Restore, entry points
// added later, and the caller's own helpers. Two kinds of calls are not:
// methods of lock types (l.Lease() is a view of l, not a second lock), and
// functions that arrange the end of the lock they return themselves (a
// test helper that calls t.Cleanup(func() { l.Close() }) and returns l:
// every lock it returns is closed by a function literal, or handed on as
// the method value l.Close; this holds for functions declared in the
// analysed code and for local ones, f := func(…) {…}). A call given the
// option locked.WithOwner(…) is not followed either: an owner's lock is
// released by key and owner (Service.Release, ReleaseOwner), not only
// through its handle.
//
// # Ending a lock
//
// A lock kept in a local variable l must be ended on every path from the
// acquire to a return of the function. Each of these ends it:
//
//   - l.Close(), l.Release(ctx) or l.Detach() (Detach hands the lock over:
//     it ends ownership here), on l, on an element l[i] of a slice of locks,
//     on a view such as l.Lease(), or on the variable of a range over l;
//   - the method value l.Close handed on (t.Cleanup(l.Close));
//   - defer of any of these, or of a function literal doing one: it covers
//     every later path. A defer in a loop ends the lock only when the
//     function returns, which the nesting check below notes;
//   - returning l (a naked return, for a named result); assigning it to
//     another variable (an alias is not followed), a field, a map or slice
//     element or a global; putting it in a composite literal; sending it
//     on a channel; taking its address, converting it or appending it. A
//     lock assigned straight from the call to anything but a local
//     variable is not followed either;
//   - passing it to a function that takes it over. A function in the
//     analysed code takes over a lock parameter if its body ends it by one
//     of these rules (go vet carries this from package to package as a
//     fact); it borrows the parameter otherwise, and then the caller must
//     still end the lock. Methods of interfaces declared in the lockproof
//     module (repository.Repository's Save and Delete) borrow. Other
//     interface methods, function values and parameters that are not of a
//     lock type (any, in fmt.Println(l)) are assumed to take it over;
//   - a function literal, not deferred, that ends l (go func() { defer
//     l.Close(); … }(), or a cleanup callback): the goroutine or callback
//     owns it.
//
// Reading l (l.Entity(), l.Key(), l.Check(ctx), comparing it with nil) or
// passing it to a borrowing function leaves it open.
//
// # Error paths
//
// Branches on which the lock is nil are not followed: the true branch of
// `err != nil`, `errors.Is(err, …)` and `errors.As(err, …)`, the false
// branch of `err == nil`, the branches of `l == nil` and `l != nil`, and
// their combinations with !, && and ||, in if statements and in cases of
// switch statements. err is the error result of the acquiring call, until
// it is assigned again (`err = repo.Save(ctx, l); if err != nil { return
// err }` does leak l). testify's assert/require NoError, Error, ErrorIs,
// ErrorAs and ErrorContains are understood by name (`if
// !assert.NoError(t, err) { return }`). Paths that end in panic, log.Fatal,
// os.Exit or t.Fatal do not return, so they do not leak.
//
// # Reports
//
//   - "l (… from f) is not closed on every path": some path from the
//     acquire reaches a return (named in the message), the end of the
//     function, or the same acquire again in a loop, without ending l.
//   - "the … from f is discarded": the lock result is not kept (an
//     expression statement, go or defer of the call, or _ in an
//     assignment). `_, err := f(…)` is not reported when every path
//     inspects err (passes it to a function, returns, sends or stores it,
//     or tests it with errors.Is or errors.As): that is a call made to
//     fail, as in tests and examples; `_, err := f(…); if err != nil {
//     return err }` is reported.
//   - "l (… from f) is never used": kept, then never read (only `_ = l`).
//   - "f acquires a *E while l from line N is still open": a call returning
//     a *locked.Locked[E] (or a slice of them) is reached while a proof for
//     the same entity type E, acquired in the same function, is still open
//     (deferred closes do not count; a loop reaching its own acquire again
//     counts). Two keys of one kind taken one by one can wait on each
//     other, or on themselves when the IDs are equal; take them together
//     with locked.AcquireAll or LoadAll, which sort the keys. A call whose
//     lock is discarded with its error inspected is a probe that keeps
//     nothing, and is not reported; nor is a call whose name starts with
//     Try (TryAcquire), which does not wait. Leases (key-level) are not
//     checked: their keys are strings, not types.
//   - "*l copies a locked.Locked[T] by value": a dereferenced proof used as
//     a value. A copy is not a second lock (go vet's copylocks reports
//     these too).
//
// # Suppressing a report
//
// A comment starting with //lockcheck:ignore on the line of a report or
// on the line before it suppresses it. Say why after the directive:
//
//	//lockcheck:ignore the second Load waits for the first proof to lapse
//	fresh, err := locked.Load(ctx, svc, repo, "7")
//
// # Limits
//
// The analysis is intraprocedural apart from the facts above: it follows
// locks in local variables only, trusts a closing call on one element of a
// slice of locks for the whole slice, and does not know when a function
// literal that ends a lock runs. It reports what it can show on a path
// through one function; it does not prove the absence of leaks.
package lockcheck
