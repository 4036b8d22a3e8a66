package redisrepo

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/locked"
	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/redisprovider"
)

var _ locked.Loader[persistent.Persistent] = (*Repository[persistent.Persistent])(nil)

// ReadFor implements locked.Loader: the read of the record's data field
// (redisprovider.HashRead) that the provider runs in the acquire script
// of the entity's lock, so that locked.Load locks and reads in one round
// trip, with nothing written in between. It declines (false) for a
// Service of another lock store than the repository's (another provider,
// or another namespace), whose grants are not of this record's lock, and
// for an empty ID: Load then locks and calls Find, as it would for any
// Finder.
func (r *Repository[T]) ReadFor(svc *locked.Service, id string) (provider.Read, bool) {
	if svc.Store() != r.store {
		return nil, false
	}
	key, err := persistent.KeyFor[T](id)
	if err != nil {
		return nil, false
	}
	return r.p.HashRead(r.prefix+key, entityName, dataField), true
}

// Loaded implements locked.Loader: the entity that rd, a read made by
// ReadFor and granted with the lock, found, with the errors of Find:
// repository.ErrNotFound if there was no record, ErrForeign for a key
// that holds a value redisrepo did not write, a decode error if the codec
// cannot read the record.
func (r *Repository[T]) Loaded(id string, rd provider.Read) (T, error) {
	var zero T
	hr, ok := rd.(*redisprovider.HashRead)
	if key, err := persistent.KeyFor[T](id); !ok || err != nil || hr.Key() != r.prefix+key {
		return zero, idError("load", id, fmt.Errorf("%w: the read is not of this record", locked.ErrInvalid))
	}
	data, err := hr.Result()
	if err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
		return zero, idError("load", id, fmt.Errorf("%w: %w", locked.ErrInvalid, err)) // not granted
	}
	return r.decode(context.Background(), "load", id, data, err) // no store error left to classify
}
