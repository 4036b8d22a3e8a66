// Package redisrepo is a repository.Repository on Redis whose writes are
// checked by Redis itself, atomically.
//
// # Where records live
//
// The record of an entity whose lock key is K is a hash stored beside K's
// lock, at the provider's DataKey(K, "entity"):
//
//	d  the entity, encoded by Options.Codec (JSON by default)
//	f  the fence of the last write under a proof; 0 after Insert
//	s  that write's sequence number; 0 after Insert
//	i  the id of the Insert that created the record
//
// The record shares the lock's hash tag, so the lock and the record are in
// one Cluster slot and one script can touch both.
//
// # The atomic check
//
// Save and Delete run one Lua script (one EVALSHA round trip) that, inside
// Redis, with nothing else running in between:
//
//  1. checks the proof's hold with the provider's Guard, so only the
//     current holder writes (else an error matching locked.ErrNotHeld);
//  2. checks that the record exists (else repository.ErrNotFound);
//  3. compares the proof's fence and write sequence with the record's f
//     and s (else repository.ErrStale, which also matches
//     locked.ErrNotHeld);
//  4. writes d, f and s, or deletes the record.
//
// A holder whose lease lapsed, was force-released or was taken over while
// it paused therefore cannot write, whatever its local state says, and a
// forged or zero proof never reaches Redis: Save and Delete first reject
// what can be seen locally (nil or zero proof, ended lease context, an
// entity whose identity changed, a proof of another namespace) without a
// round trip. The hold's format is the provider's alone: the repository
// gets a redisprovider.Guard for the proof and runs its script as a
// redisprovider.GuardedScript.
//
// Step 3 orders writes: by fence across holders (a fence counter that went
// backwards, as after a restart of a Redis without persistence,
// docs/decisions.md, leaves older records refusing the new, lower fences:
// safe, but stuck until the counter is restored), and, under one proof, by
// a write sequence number that increases with each Save or Delete (the
// process's clock in nanoseconds, or the last number plus one), so a
// delayed duplicate of an earlier write can never overwrite a later one.
//
// # Lock and load
//
// A Repository is a locked.Loader: locked.Load and LoadAll with the
// repository's own Service hand the provider a read of the record's d
// field (ReadFor), which the provider runs in the acquire script when it
// grants. Lock and read are one round trip, nothing can write the record
// between them, and Load, Save, Close is three round trips in all. With a
// Service of another lock store, Load locks there and reads with Find.
//
// # What an error means
//
// Each call ends in success, a definite refusal (locked.ErrNotHeld,
// repository.ErrNotFound, ErrExists, ErrStale, repository.ErrCodec,
// locked.ErrInvalid: nothing changed), locked.ErrUnavailable (nothing was
// sent, or Redis answered with an error: nothing changed) or
// locked.ErrOutcomeUnknown (also matching ErrUnavailable: the request may
// have been written and its answer was lost, or ctx ended while it was in
// flight: the write may have applied, even after the call returned, since
// Redis runs a request already in its buffer). The classes are
// redisprovider.Provider.StoreError's. A call whose ctx ended also matches
// ctx.Err().
//
// go-redis re-sends a request whose reply was lost; each write is
// idempotent: a re-executed Save, Delete or Insert returns the first
// execution's decision (a Save that wrote reports success even if the lease
// lapsed before the re-execution; a Delete that deleted, success; an
// Insert that stored, success).
//
// # Service and namespace
//
// New takes the locked.Service whose proofs the repository accepts: the
// client and the key layout come from its provider, and the namespace of
// the keys that Find, Insert and DeleteByID compute from an ID is the
// Service's, so the two cannot disagree. Save and Delete reject a proof
// from another lock store (locked.Store: another provider, or a Service
// with another namespace) with an error matching locked.ErrNotHeld and
// locked.ErrInvalid, before any round trip.
package redisrepo

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

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

	writeScript  = redisprovider.NewGuardedScript(writeSrc)
	insertScript = redis.NewScript(insertSrc)
)

// ErrForeign reports that the record's Redis key holds a value that
// redisrepo did not write (another program's, or a hand-set one). It
// matches locked.ErrInvalid; the value is left as it is.
var ErrForeign = fmt.Errorf("redisrepo: the record's key holds a value redisrepo did not write: %w", locked.ErrInvalid)

// Options configure a Repository. A nil *Options, and every zero field,
// means the default.
type Options struct {
	// Codec encodes entities into the record. An entity that does not
	// decode back to its own identity is refused at Insert and Save
	// (repository.ErrCodec). Default repository.JSON, which stores T's
	// exported fields.
	Codec repository.Codec
}

var _ repository.Repository[persistent.Persistent] = (*Repository[persistent.Persistent])(nil)

// Repository is a repository.Repository on Redis; see the package
// documentation for the layout and the atomic check. Create one with New;
// the zero value is not usable. It is safe for concurrent use and holds no
// resources of its own.
type Repository[T persistent.Persistent] struct {
	c      redis.UniversalClient
	p      *redisprovider.Provider
	store  locked.Store // the Service's: the proofs it accepts
	codec  repository.Codec
	prefix string // the Service's namespace + ":" or ""
}

// New returns a Repository of T that accepts the proofs of svc and keeps
// its records beside svc's locks: svc's provider must be a
// *redisprovider.Provider (Redlock's holds live on several deployments),
// whose client the repository uses. opts may be nil. New does not contact
// Redis. It returns an error matching locked.ErrInvalid for a nil Service
// or one on another provider.
func New[T persistent.Persistent](svc *locked.Service, opts *Options) (*Repository[T], error) {
	if svc == nil {
		return nil, fmt.Errorf("redisrepo: new: %w", &provider.ArgError{Arg: "service", Reason: "must not be nil"})
	}
	p, ok := svc.Provider().(*redisprovider.Provider)
	if !ok || p == nil {
		return nil, fmt.Errorf("redisrepo: new: %w", &provider.ArgError{Arg: "service",
			Reason: fmt.Sprintf("its provider is a %T; redisrepo needs a *redisprovider.Provider", svc.Provider())})
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	r := &Repository[T]{c: p.Client(), p: p, store: svc.Store(), codec: o.Codec}
	if r.codec == nil {
		r.codec = repository.JSON
	}
	if ns := svc.Namespace(); ns != "" {
		r.prefix = ns + ":"
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

func (r *Repository[T]) entityKey(storeKey string) string { return r.p.DataKey(storeKey, entityName) }

// entityName is the record's name beside its lock (Provider.DataKey).
const entityName = "entity"

func (r *Repository[T]) goneKey(storeKey string) string { return r.p.DataKey(storeKey, "entity:gone") }

// Find implements repository.Repository: one HGET. It returns an error
// matching repository.ErrNotFound if there is no record, locked.ErrInvalid
// for an empty ID, ErrForeign for a key that holds a value redisrepo did
// not write, a decode error if the codec cannot read the record, and
// locked.ErrUnavailable (or ErrOutcomeUnknown, for a lost reply) if Redis
// fails; Find changes nothing either way.
func (r *Repository[T]) Find(ctx context.Context, id string) (T, error) {
	var e T
	key, err := r.EntityKey(id)
	if err != nil {
		return e, idError("find", id, err)
	}
	if err := ctx.Err(); err != nil {
		return e, idError("find", id, provider.Unavailable(err))
	}
	data, err := r.c.HGet(ctx, key, dataField).Bytes()
	return r.decode(ctx, "find", id, data, err)
}

// dataField is the record's field that holds the encoded entity.
const dataField = "d"

// decode returns the entity of a read of the record's data field that
// returned data and err, for op on id.
func (r *Repository[T]) decode(ctx context.Context, op, id string, data []byte, err error) (T, error) {
	var e T
	switch {
	case err == nil:
	case errors.Is(err, redis.Nil):
		return e, idError(op, id, repository.ErrNotFound)
	case isWrongType(err):
		return e, idError(op, id, ErrForeign)
	default:
		return e, idError(op, id, r.p.StoreError(ctx, err))
	}
	e, err = repository.Decode[T](r.codec, data)
	if err != nil {
		return e, idError(op, id, err)
	}
	return e, nil
}

// isWrongType reports Redis's answer to a command on a key of another type.
func isWrongType(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && len(re.Error()) >= 9 && re.Error()[:9] == "WRONGTYPE"
}

// Insert implements repository.Repository: one script that stores the
// record unless it exists. Errors: repository.ErrExists if it does (an
// Insert re-sent after a lost reply still reports its own success);
// repository.ErrCodec (matching locked.ErrInvalid) for an entity that does
// not survive the codec; locked.ErrInvalid and persistent.ErrInvalid for a
// nil entity or an empty ID; ErrForeign; locked.ErrUnavailable if nothing
// was sent; locked.ErrOutcomeUnknown if the request may have been applied.
func (r *Repository[T]) Insert(ctx context.Context, e T) error {
	key, err := persistent.KeyOf(e)
	if err != nil {
		return fmt.Errorf("redisrepo: insert: %w: %w", locked.ErrInvalid, err)
	}
	id := e.ID()
	if err := ctx.Err(); err != nil {
		return idError("insert", id, provider.Unavailable(err))
	}
	data, err := repository.Encode(r.codec, e)
	if err != nil {
		return idError("insert", id, err)
	}
	n, err := insertScript.Run(ctx, r.c, []string{r.entityKey(r.prefix + key)}, data, newID()).Int()
	switch {
	case err != nil:
		return idError("insert", id, r.p.StoreError(ctx, err))
	case n == 1:
		return nil
	case n == 0:
		return idError("insert", id, repository.ErrExists)
	case n == -3:
		return idError("insert", id, ErrForeign)
	}
	return idError("insert", id, fmt.Errorf("%w: insert script returned %d", locked.ErrUnavailable, n))
}

// Save implements repository.Repository: after the local checks, one script
// checks the proof's hold, fence and write order against the lock and the
// record and writes, atomically (see the package documentation).
//
// Errors, each a definite refusal that wrote nothing: locked.ErrNotHeld
// for a proof that does not hold the lock (repository.ErrStale for a
// fence older than the record's, or a delayed duplicate of an earlier
// Save); repository.ErrNotFound if the record was deleted;
// repository.ErrCodec for an entity that does not survive the codec;
// ErrForeign. locked.ErrUnavailable if nothing was sent;
// locked.ErrOutcomeUnknown if the request may have been written: the Save
// may have applied (and may still apply). With an ended ctx, also
// ctx.Err().
func (r *Repository[T]) Save(ctx context.Context, l *locked.Locked[T]) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisrepo: save: %w", provider.Unavailable(err))
	}
	g, err := r.guard(l)
	if err != nil {
		return fmt.Errorf("redisrepo: save: %w", err)
	}
	data, err := repository.Encode(r.codec, l.Entity())
	if err != nil {
		return idError("save", l.Entity().ID(), err)
	}
	return r.write(ctx, "save", l, g, data)
}

// Delete implements repository.Repository: it removes the locked entity's
// record, with the checks and error classes of Save (a Delete re-sent after
// a lost reply that had deleted reports success).
func (r *Repository[T]) Delete(ctx context.Context, l *locked.Locked[T]) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisrepo: delete: %w", provider.Unavailable(err))
	}
	g, err := r.guard(l)
	if err != nil {
		return fmt.Errorf("redisrepo: delete: %w", err)
	}
	return r.write(ctx, "delete", l, g, nil)
}

// write runs the write script under g: a save of data, or a delete for op
// "delete".
func (r *Repository[T]) write(ctx context.Context, op string, l *locked.Locked[T], g redisprovider.Guard, data []byte) error {
	id := l.Entity().ID()
	storeKey := r.prefix + l.Key()
	seq := strconv.FormatInt(nextSeq(), 10)
	n, err := writeScript.Run(ctx, g, []string{r.entityKey(storeKey), r.goneKey(storeKey)}, op, seq, data).Int()
	switch {
	case err != nil:
		return idError(op, id, r.p.StoreError(ctx, err))
	case n == 1:
		return nil
	case n == 0:
		return idError(op, id, fmt.Errorf("%w: Redis does not hold the proof's fence %d and token", locked.ErrNotHeld, l.Fence()))
	case n == -1:
		return idError(op, id, repository.ErrNotFound)
	case n == -2:
		return idError(op, id, repository.ErrStale)
	case n == -3:
		return idError(op, id, ErrForeign)
	}
	return idError(op, id, fmt.Errorf("%w: write script returned %d", locked.ErrUnavailable, n))
}

// guard runs Locked.CheckLocal (the script does the store's part) and
// returns the provider's guard of the proof's hold, or an error matching
// locked.ErrNotHeld: for a nil or zero proof, a lease that has ended
// (released, lapsed or lost), an entity whose identity changed, or a proof
// from another lock store (another provider, or a Service of another
// namespace: then also locked.ErrInvalid).
func (r *Repository[T]) guard(l *locked.Locked[T]) (redisprovider.Guard, error) {
	if err := l.CheckLocal(); err != nil {
		return redisprovider.Guard{}, err
	}
	lease := l.Lease()
	if st := lease.Store(); st != r.store {
		return redisprovider.Guard{}, fmt.Errorf("%w: %w: the proof is from %v, the repository's lock store is %v",
			locked.ErrNotHeld, locked.ErrInvalid, st, r.store)
	}
	return r.p.Guard(r.prefix+lease.Key(), lease.Token(), lease.Fence()), nil
}

// DeleteByID implements repository.Repository: one DEL, idempotent. An
// empty ID is an error matching locked.ErrInvalid and persistent.ErrInvalid;
// otherwise locked.ErrUnavailable if nothing was sent, or
// locked.ErrOutcomeUnknown if the record may have been deleted.
func (r *Repository[T]) DeleteByID(ctx context.Context, id string) error {
	key, err := r.EntityKey(id)
	if err != nil {
		return fmt.Errorf("redisrepo: delete: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return idError("delete", id, provider.Unavailable(err))
	}
	if err := r.c.Del(ctx, key).Err(); err != nil {
		return idError("delete", id, r.p.StoreError(ctx, err))
	}
	return nil
}

func idError(op, id string, err error) error {
	return fmt.Errorf("redisrepo: %s %q: %w", op, id, err)
}

// lastSeq is the last write sequence number handed out in this process.
var lastSeq atomic.Int64

// nextSeq returns a write sequence number above every earlier one of this
// process and, as the clock's nanoseconds, normally above those of a
// process that handed its lease over earlier (locked.Lease.Detach).
func nextSeq() int64 {
	for {
		last := lastSeq.Load()
		next := max(last+1, time.Now().UnixNano())
		if lastSeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// newID returns a random request id.
func newID() string { return strconv.FormatUint(rand.Uint64(), 36) }
