package locked

import (
	"cmp"
	"context"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/lockproof/lockproof/persistent"
)

// Locked is proof that its holder has exclusive access to one entity: only
// this package can mint one (Acquire, TryAcquire, Load, AcquireAll,
// LoadAll). Repositories take *Locked[T] to save or delete an existing
// entity, so a write that forgot the lock does not compile.
//
// A Locked must end with Close; `defer l.Close()` right after minting it is
// the usual form. Afterwards, and after its lease lapses or is lost, Check
// and every repository write fail with ErrNotHeld.
//
// Do not copy a Locked (go vet reports copies) or build one yourself: the
// zero value and nil hold nothing, and stores verify the token and fence of
// every write, so a forged proof cannot write.
type Locked[T persistent.Persistent] struct {
	_      noCopy
	_      [0]func() // not comparable
	lease  *Lease
	entity T
}

// noCopy makes go vet's copylocks check report copies of a Locked.
type noCopy struct{}

func (*noCopy) Lock()   {}
func (*noCopy) Unlock() {}

// Entity returns the locked entity. With a pointer entity type, modify it in
// place and pass the proof to the repository's Save.
func (l *Locked[T]) Entity() T {
	if l == nil {
		var zero T
		return zero
	}
	return l.entity
}

// Lease returns the key-level lease behind the proof (nil for a zero proof).
func (l *Locked[T]) Lease() *Lease {
	if l == nil {
		return nil
	}
	return l.lease
}

// Key returns the entity's lock key, "kind:id".
func (l *Locked[T]) Key() string { return l.Lease().Key() }

// Fence returns the proof's fencing token; see Lease.Fence.
func (l *Locked[T]) Fence() uint64 { return l.Lease().Fence() }

// ExpiresAt returns the local deadline of the proof's lease.
func (l *Locked[T]) ExpiresAt() time.Time { return l.Lease().ExpiresAt() }

// Context returns a context cancelled when the proof's lease ends.
func (l *Locked[T]) Context() context.Context { return l.Lease().Context() }

// Close releases the lock. It returns what Lease.Release returns the first
// time (ErrNotHeld if the lease had lapsed) and nil afterwards.
func (l *Locked[T]) Close() error { return l.Lease().Close() }

// Check verifies the proof for a write: CheckLocal, then the store
// confirms the token and fence. Repositories call it before writing; it
// returns nil or an error matching ErrNotHeld (or the store's error).
func (l *Locked[T]) Check(ctx context.Context) error {
	if err := l.CheckLocal(); err != nil {
		return err
	}
	return l.lease.checkStore(ctx)
}

// CheckLocal verifies what can be known without the store: the proof is
// real, its lease has not ended here (released, lapsed, lost, detached),
// and its entity still has the identity that was locked. A store that
// checks the token and fence inside its own write (redisrepo's script)
// calls this instead of Check. It returns nil or an error matching
// ErrNotHeld.
func (l *Locked[T]) CheckLocal() error {
	if l == nil || l.lease == nil {
		return opError("check", "", fmt.Errorf("%w: zero or nil proof", ErrNotHeld))
	}
	if err := l.lease.alive(); err != nil {
		return opError("check", l.lease.Key(), err)
	}
	key, err := persistent.KeyOf(l.entity)
	if err != nil {
		return opError("check", l.lease.key, fmt.Errorf("%w: %w", ErrNotHeld, err))
	}
	if key != l.lease.key {
		return opError("check", l.lease.key, fmt.Errorf("%w: entity identity changed to %q", ErrNotHeld, key))
	}
	return nil
}

// Finder loads entities by ID; every repository is one.
type Finder[T persistent.Persistent] interface {
	Find(ctx context.Context, id string) (T, error)
}

// Acquire locks e and returns the proof. It proves the lock, not that e
// is current: e was read before the lock was taken, and saving a stale e
// overwrites whatever was written since. To modify a stored entity use
// Load, which reads under the lock; use Acquire for an entity you just
// created or will overwrite whole.
// Errors as for Service.Acquire, plus ErrInvalid for a nil entity or an
// empty ID.
func Acquire[T persistent.Persistent](ctx context.Context, s *Service, e T, opts ...CallOption) (*Locked[T], error) {
	key, err := persistent.KeyOf(e)
	if err != nil {
		return nil, opError("acquire", "", fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	lease, err := s.Acquire(ctx, key, opts...)
	if err != nil {
		return nil, err
	}
	return &Locked[T]{lease: lease, entity: e}, nil
}

// TryAcquire is Acquire that returns ErrNotAcquired at once if e is locked.
func TryAcquire[T persistent.Persistent](ctx context.Context, s *Service, e T, opts ...CallOption) (*Locked[T], error) {
	key, err := persistent.KeyOf(e)
	if err != nil {
		return nil, opError("acquire", "", fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	lease, err := s.TryAcquire(ctx, key, opts...)
	if err != nil {
		return nil, err
	}
	return &Locked[T]{lease: lease, entity: e}, nil
}

// Load locks the entity of type T with the given ID, then reads it from r,
// so the entity cannot change between the read and the proof's writes. If
// the read fails the lock is released and r's error returned. If r is a
// Loader whose records s's provider can read with a grant (redisrepo on
// redisprovider), the read is part of the acquire: one round trip.
func Load[T persistent.Persistent](ctx context.Context, s *Service, r Finder[T], id string, opts ...CallOption) (*Locked[T], error) {
	all, err := LoadAll(ctx, s, r, []string{id}, opts...)
	if err != nil {
		return nil, err
	}
	return all[0], nil
}

// AcquireAll locks every entity in es, all or nothing, taking the keys in
// sorted order so that callers locking overlapping sets cannot deadlock.
// The proofs come back in the order of es. The Service's Timeout (or
// WithTimeout) bounds the whole call. Duplicate entities are an error.
func AcquireAll[T persistent.Persistent](ctx context.Context, s *Service, es []T, opts ...CallOption) ([]*Locked[T], error) {
	keys := make([]string, len(es))
	for i, e := range es {
		key, err := persistent.KeyOf(e)
		if err != nil {
			return nil, opError("acquire", "", fmt.Errorf("%w: %w", ErrInvalid, err))
		}
		keys[i] = key
	}
	leases, err := acquireKeys(ctx, s, keys, opts)
	if err != nil {
		return nil, err
	}
	out := make([]*Locked[T], len(es))
	for i, e := range es {
		out[i] = &Locked[T]{lease: leases[i], entity: e}
	}
	return out, nil
}

// LoadAll is AcquireAll for IDs: it locks every entity (sorted, all or
// nothing), then reads each from r. On any error it releases everything.
func LoadAll[T persistent.Persistent](ctx context.Context, s *Service, r Finder[T], ids []string, opts ...CallOption) ([]*Locked[T], error) {
	if r == nil || isNilPointer(r) {
		return nil, opError("load", "", invalid("finder", "must not be nil"))
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		key, err := persistent.KeyFor[T](id)
		if err != nil {
			return nil, opError("load", id, fmt.Errorf("%w: %w", ErrInvalid, err))
		}
		keys[i] = key
	}
	actx, reads := withReads(ctx, s, r, ids) // lock and load: load.go
	leases, err := acquireKeys(actx, s, keys, opts)
	if err != nil {
		return nil, err
	}
	out := make([]*Locked[T], len(ids))
	for i, id := range ids {
		e, err := load(ctx, r, id, leases[i], reads, i)
		if err == nil {
			var key string
			if key, err = persistent.KeyOf(e); err != nil {
				err = fmt.Errorf("%w: finder returned a bad entity for %q: %w", ErrInvalid, keys[i], err)
			} else if key != keys[i] {
				err = fmt.Errorf("%w: finder returned %q for %q", ErrInvalid, key, keys[i])
			}
		}
		if err != nil {
			closeAll(leases)
			return nil, err
		}
		out[i] = &Locked[T]{lease: leases[i], entity: e}
	}
	return out, nil
}

// acquireKeys takes every key in sorted order, sharing one timeout, and
// returns the leases in the order of keys; on error it releases those taken.
func acquireKeys(ctx context.Context, s *Service, keys []string, opts []CallOption) ([]*Lease, error) {
	if s == nil {
		return nil, opError("acquire", "", invalid("service", "must not be nil"))
	}
	order := make([]int, len(keys))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	for i := 1; i < len(order); i++ {
		if keys[order[i]] == keys[order[i-1]] {
			return nil, opError("acquire", keys[order[i]], invalid("keys", "duplicate key"))
		}
	}
	o := s.callOptions(opts)
	if o.bad != nil {
		return nil, opError("acquire", "", o.bad)
	}
	if !o.noTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	leases := make([]*Lease, len(keys))
	for _, i := range order {
		l, err := s.Acquire(ctx, keys[i], opts...)
		if err != nil {
			closeAll(leases)
			return nil, err
		}
		leases[i] = l
	}
	return leases, nil
}

func closeAll(leases []*Lease) {
	for _, l := range leases {
		_ = l.Close() // nil leases are fine; a lapsed one has nothing to free
	}
}

// isNilPointer reports whether v is a typed nil pointer, which would panic
// when its methods touch their receiver.
func isNilPointer(v any) bool {
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}
