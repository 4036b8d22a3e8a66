// Package redisrepo is a repository.Repository on Redis whose writes are
// checked by Redis itself, atomically.
//
// # Where records live
//
// The record of an entity whose lock key is K is a hash stored beside K's
// lock, at redisprovider.Provider.LockKey(K) + ":entity":
//
//	d  the entity as JSON (T's exported fields, as encoding/json sees them)
//	f  the fence of the last write under a proof; 0 after Insert
//
// The record shares the lock's hash tag, so the lock and the record are in
// one Cluster slot and one script can touch both.
//
// # The atomic check
//
// Save and Delete run one Lua script (one EVALSHA round trip) that, inside
// Redis, with nothing else running in between:
//
//  1. compares the lock's value with the proof's "<fence> <token>", so only
//     the current holder writes (else an error matching locked.ErrNotHeld);
//  2. checks that the record exists (else repository.ErrNotFound);
//  3. compares the proof's fence with the record's f (else
//     repository.ErrStale, which also matches locked.ErrNotHeld);
//  4. writes d and f, or deletes the record.
//
// A holder whose lease lapsed, was force-released or was taken over while
// it paused therefore cannot write, whatever its local state says, and a
// forged or zero proof never reaches Redis: Save and Delete first reject
// what can be seen locally (nil or zero proof, ended lease context, an
// entity whose identity changed) without a round trip. Unlike
// repository.Memory they do not call Locked.Check, which would be a second
// round trip and, unlike the script, not atomic with the write.
//
// Step 3 matters only if the lock's fence counter went backwards, as after
// a restart of a Redis without persistence (docs/decisions.md, 16): then
// every older record refuses the new, lower fences (safe, but stuck until
// the counter is restored).
//
// # Namespaces
//
// Find, Insert and DeleteByID have no proof, so the repository computes the
// lock key from the ID itself: persistent.KeyFor[T](id), prefixed with
// Options.Namespace + ":" if set. Options.Namespace must therefore equal the
// Options.Namespace of the locked.Service whose proofs are saved; Save and
// Delete reject a proof from a Service with another namespace (an error
// matching locked.ErrNotHeld and locked.ErrInvalid).
package redisrepo

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
	"github.com/lockproof/lockproof/repository"
)

var (
	//go:embed scripts/write.lua
	writeSrc string
	//go:embed scripts/insert.lua
	insertSrc string

	writeScript  = redis.NewScript(writeSrc)
	insertScript = redis.NewScript(insertSrc)
)

// EntitySuffix follows the lock's Redis key in the key of an entity record.
const EntitySuffix = ":entity"

// Options configure a Repository. A nil *Options, and every zero field,
// means the default.
type Options struct {
	// Namespace must equal the Options.Namespace of the locked.Service whose
	// proofs this repository accepts: it is part of the lock key that
	// Find, Insert and DeleteByID compute from an ID. It must not contain
	// ':'. Default "", no namespace.
	Namespace string
}

var _ repository.Repository[persistent.Persistent] = (*Repository[persistent.Persistent])(nil)

// Repository is a repository.Repository on Redis; see the package
// documentation for the layout and the atomic check. Create one with New;
// the zero value is not usable. It is safe for concurrent use and holds no
// resources of its own: close the client when done with it.
type Repository[T persistent.Persistent] struct {
	c      redis.UniversalClient
	p      *redisprovider.Provider
	prefix string // Namespace + ":" or ""
}

// New returns a Repository of T on c, storing records beside the locks of
// p. c must reach the Redis deployment that p uses (usually it is the
// client p was created with). opts may be nil. New does not contact Redis.
// It returns an error matching locked.ErrInvalid for a nil client or
// provider or a Namespace containing ':'.
func New[T persistent.Persistent](c redis.UniversalClient, p *redisprovider.Provider, opts *Options) (*Repository[T], error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case c == nil:
		return nil, fmt.Errorf("redisrepo: new: %w", &provider.ArgError{Arg: "client", Reason: "must not be nil"})
	case p == nil:
		return nil, fmt.Errorf("redisrepo: new: %w", &provider.ArgError{Arg: "provider", Reason: "must not be nil"})
	case strings.Contains(o.Namespace, ":"):
		return nil, fmt.Errorf("redisrepo: new: %w", &provider.ArgError{Arg: "Namespace", Reason: "must not contain ':'"})
	}
	r := &Repository[T]{c: c, p: p}
	if o.Namespace != "" {
		r.prefix = o.Namespace + ":"
	}
	return r, nil
}

// EntityKey returns the Redis key of the record of the entity with the ID,
// or an error matching locked.ErrInvalid and persistent.ErrInvalid for an
// empty ID. It is for tools and tests that inspect Redis.
func (r *Repository[T]) EntityKey(id string) (string, error) {
	key, err := persistent.KeyFor[T](id)
	if err != nil {
		return "", fmt.Errorf("%w: %w", locked.ErrInvalid, err)
	}
	return r.entityKey(r.prefix + key), nil
}

func (r *Repository[T]) entityKey(storeKey string) string {
	return r.p.LockKey(storeKey) + EntitySuffix
}

// Find implements repository.Repository: one HGET. It returns an error
// matching repository.ErrNotFound if there is no record, locked.ErrInvalid
// for an empty ID, and locked.ErrUnavailable if Redis fails.
func (r *Repository[T]) Find(ctx context.Context, id string) (T, error) {
	var e T
	key, err := r.EntityKey(id)
	if err != nil {
		return e, idError("find", id, err)
	}
	if err := ctx.Err(); err != nil {
		return e, idError("find", id, err)
	}
	data, err := r.c.HGet(ctx, key, "d").Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return e, idError("find", id, repository.ErrNotFound)
	case err != nil:
		return e, idError("find", id, storeError(ctx, err))
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, idError("find", id, err)
	}
	return e, nil
}

// Insert implements repository.Repository: one script that stores the
// record unless it exists (repository.ErrExists). A nil entity or an empty
// ID is an error matching locked.ErrInvalid and persistent.ErrInvalid.
func (r *Repository[T]) Insert(ctx context.Context, e T) error {
	key, err := persistent.KeyOf(e)
	if err != nil {
		return fmt.Errorf("redisrepo: insert: %w: %w", locked.ErrInvalid, err)
	}
	id := e.ID()
	if err := ctx.Err(); err != nil {
		return idError("insert", id, err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return idError("insert", id, err)
	}
	n, err := insertScript.Run(ctx, r.c, []string{r.entityKey(r.prefix + key)}, data).Int()
	switch {
	case err != nil:
		return idError("insert", id, storeError(ctx, err))
	case n == 0:
		return idError("insert", id, repository.ErrExists)
	}
	return nil
}

// Save implements repository.Repository: after the local checks, one script
// checks the proof's token and fence against the lock and the record and
// writes, atomically (see the package documentation). It returns an error
// matching locked.ErrNotHeld for a proof that does not hold the lock
// (repository.ErrStale for a fence older than the record's),
// repository.ErrNotFound if the record was deleted, the context's error if
// ctx has ended, and locked.ErrUnavailable if Redis fails. Nothing is
// written then.
func (r *Repository[T]) Save(ctx context.Context, l *locked.Locked[T]) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisrepo: save: %w", err)
	}
	data, err := json.Marshal(l.Entity())
	if err != nil {
		return fmt.Errorf("redisrepo: save: %w", err)
	}
	return r.write(ctx, "save", l, data)
}

// Delete implements repository.Repository: it removes the locked entity's
// record, with the checks and errors of Save.
func (r *Repository[T]) Delete(ctx context.Context, l *locked.Locked[T]) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisrepo: delete: %w", err)
	}
	return r.write(ctx, "delete", l, nil)
}

// write checks what it can of the proof locally, then runs the write
// script: a save of data, or a delete for op "delete".
func (r *Repository[T]) write(ctx context.Context, op string, l *locked.Locked[T], data []byte) error {
	storeKey, err := r.proofKey(l)
	if err != nil {
		return fmt.Errorf("redisrepo: %s: %w", op, err)
	}
	id := l.Entity().ID()
	lease := l.Lease()
	fence := strconv.FormatUint(lease.Fence(), 10)
	value := fence + " " + lease.Token()
	lockKey := r.p.LockKey(storeKey)
	n, err := writeScript.Run(ctx, r.c, []string{lockKey, lockKey + EntitySuffix}, value, fence, op, data).Int()
	switch {
	case err != nil:
		return idError(op, id, storeError(ctx, err))
	case n == 1:
		return nil
	case n == 0:
		return idError(op, id, fmt.Errorf("%w: Redis does not hold the proof's fence %s and token", locked.ErrNotHeld, fence))
	case n == -1:
		return idError(op, id, repository.ErrNotFound)
	case n == -2:
		return idError(op, id, repository.ErrStale)
	}
	return idError(op, id, fmt.Errorf("%w: write script returned %d", locked.ErrUnavailable, n))
}

// proofKey runs Locked.CheckLocal (the script does the store's part) and
// returns the proof's lock key as the provider sees it, or an error matching locked.ErrNotHeld: for
// a nil or zero proof, a lease that has ended (released, lapsed or lost),
// an entity whose identity changed, or a proof from a Service whose
// namespace is not the repository's (then also locked.ErrInvalid).
func (r *Repository[T]) proofKey(l *locked.Locked[T]) (string, error) {
	if err := l.CheckLocal(); err != nil {
		return "", err
	}
	lease := l.Lease()
	want := r.prefix + lease.Key()
	if storeKey := lease.StoreKey(); storeKey != want {
		return "", fmt.Errorf("%w: %w: the proof locks %q in the store, the repository expects %q: Options.Namespace must equal the Service's",
			locked.ErrNotHeld, locked.ErrInvalid, storeKey, want)
	}
	return want, nil
}

// DeleteByID implements repository.Repository: one DEL, idempotent. An
// empty ID is an error matching locked.ErrInvalid and persistent.ErrInvalid.
func (r *Repository[T]) DeleteByID(ctx context.Context, id string) error {
	key, err := r.EntityKey(id)
	if err != nil {
		return fmt.Errorf("redisrepo: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return idError("delete", id, err)
	}
	if err := r.c.Del(ctx, key).Err(); err != nil {
		return idError("delete", id, storeError(ctx, err))
	}
	return nil
}

func idError(op, id string, err error) error {
	return fmt.Errorf("redisrepo: %s %q: %w", op, id, err)
}

// storeError classifies an error from Redis as locked.ErrUnavailable and,
// if ctx has ended, also as ctx's error, so that neither check lies.
func storeError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w: %w", locked.ErrUnavailable, cerr, err)
	}
	return fmt.Errorf("%w: %w", locked.ErrUnavailable, err)
}
