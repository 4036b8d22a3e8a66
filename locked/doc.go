// Package locked hands out locks, and proofs that a lock is held, so that
// writing a persisted entity without its lock does not compile.
//
// A [Service] takes locks from a [provider.Provider] (in memory, Redis,
// Redlock); create one per application with [New] and share it.
//
// # Proofs
//
// A [Locked] is proof that its holder has exclusive access to one entity
// (a persistent.Persistent, identified by Kind and ID; its lock key is
// "kind:id"). Only this package mints one: [Load] and [LoadAll] lock first
// and then read the entity, so it cannot change between the read and the
// write; [Acquire], [TryAcquire] and [AcquireAll] lock an entity the
// caller already has (one just created, or overwritten whole). The
// repositories' Save and Delete take *Locked[T], so an unlocked write is a
// compile error, and at run time the store checks the proof's token and
// fence, so a zero, closed, lapsed or forged proof writes nothing.
// Methods further down a call chain can take the proof as a parameter
// instead of locking again.
//
//	l, err := locked.Load(ctx, svc, accounts, "42")
//	if err != nil {
//		return err
//	}
//	defer l.Close()
//	l.Entity().Balance += 10
//	return accounts.Save(ctx, l)
//
// [LoadAll] and [AcquireAll] take several locks in sorted key order, all
// or nothing, so callers locking overlapping sets cannot deadlock.
//
// # Leases
//
// Behind every proof is a [Lease]: a held lock on one key, with a token
// unique to it and a fencing token ([Lease.Fence]) that is greater than
// that of any earlier lease on the key. [Service.Acquire],
// [Service.TryAcquire] and [Service.Run] give leases on plain keys. A lease
// lives for its TTL ([Options].TTL, [WithTTL]) unless extended ([Lease.Extend]) or
// renewed ([Options].AutoRenew, [WithAutoRenew]); [Lease.Context] ends when
// the lease does (released, lapsed, or found taken over), so work can stop
// with it. A lease must end with [Lease.Release] or [Lease.Close];
// [Service.Close] releases those still open. The Service does not own its
// provider: close the provider after the Service.
//
// # Waiting
//
// [Service.Acquire] waits while another holder has the key, for at most
// the Service's Timeout ([Options].Timeout, [WithTimeout]) and while its
// context lasts; [Service.TryAcquire] does not wait. Waiting is the
// provider's job and does not poll: a release wakes the next waiter, in
// FIFO order in memory and on one Redis deployment (Redlock wakes every
// waiter, without order).
//
// # Errors
//
// Every call ends in exactly one of: success; a definite refusal, where
// the store decided and nothing changed ([ErrNotAcquired], [ErrNotHeld],
// [ErrInvalid], [ErrClosed]); [ErrUnavailable], where nothing was sent and
// nothing changed; or [ErrOutcomeUnknown], where the request may have been
// applied (it also matches ErrUnavailable). Match them with errors.Is. An
// [Error] adds the operation and key; a wait ended by its context matches
// both ErrNotAcquired and the context's error.
//
// # Hand-over
//
// A lease can move to another goroutine or process without being released
// in between: send its [Handle] (it encodes with encoding/json), then
// [Lease.Detach] it, so neither it nor [Service.Close] frees what the
// other side now holds. The receiver calls [Service.Restore], which checks
// with the store that the handle's token still holds the key with its
// fence, and then owns the lease and releases it.
package locked
