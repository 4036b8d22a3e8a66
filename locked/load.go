package locked

import (
	"context"

	"github.com/lockproof/lockproof/persistent"
	"github.com/lockproof/lockproof/provider"
)

// A Loader is a Finder whose records a Service's provider can read in the
// same atomic step that grants the entity's lock ("lock and load":
// repository/redisrepo on redisprovider reads the record in the acquire
// script, one round trip for lock and read). Load and LoadAll ask ReadFor
// for each ID and hand the reads to the Service's acquire in its context
// (provider.WithReads), so the Service's waits, retries, nesting checks,
// events and renewal are the same as without them. If the grant that
// minted the lease carried the read (provider.Read.Granted), Load takes
// the entity from Loaded; otherwise (the provider ignores the read, or
// the hold was granted another way, as by WithReentrant's extend) it
// reads as a Finder would, with Claim or Find. Only the Service mints the
// lease either way.
type Loader[T persistent.Persistent] interface {
	Finder[T]

	// ReadFor returns the read of the record of id for a lock taken by s,
	// or false if s's provider cannot read the record with its grants (a
	// Service of another lock store): then Load finds the record after
	// the lock instead.
	ReadFor(s *Service, id string) (provider.Read, bool)

	// Loaded returns the entity that rd read for id, with the errors
	// Find would have returned for that record (repository.ErrNotFound
	// if there was none). Load calls it only after rd was granted with
	// the lease.
	Loaded(id string, rd provider.Read) (T, error)
}

// withReads returns ctx carrying the reads of r for ids under s, and the
// reads by position in ids (nil if r is not a Loader or declines).
func withReads[T persistent.Persistent](ctx context.Context, s *Service, r Finder[T], ids []string) (context.Context, []provider.Read) {
	ld, ok := r.(Loader[T])
	if !ok || s == nil {
		return ctx, nil
	}
	reads := make([]provider.Read, len(ids))
	n := 0
	for i, id := range ids {
		if rd, ok := ld.ReadFor(s, id); ok && rd != nil {
			reads[i] = rd
			n++
		}
	}
	if n == 0 {
		return ctx, nil
	}
	return provider.WithReads(ctx, reads...), reads
}

// load returns the entity ids[i] for lease: what reads[i] read with the
// grant of the lease if it did, else what find reads now.
func load[T persistent.Persistent](ctx context.Context, r Finder[T], id string, lease *Lease, reads []provider.Read, i int) (T, error) {
	if reads != nil && reads[i] != nil && reads[i].Granted(lease.Token(), lease.Fence()) {
		return r.(Loader[T]).Loaded(id, reads[i])
	}
	return find(ctx, r, id, lease)
}
