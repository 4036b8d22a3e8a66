package provider

import "context"

// A Read is a record to be read in the same atomic step that grants a
// hold ("lock and load"), so that nothing can write the record between the
// grant and the read, and the two cost one round trip. A provider that can
// run a Read makes it (redisprovider.Provider.HashRead, for a store that
// keeps its records beside the provider's locks) and is the only one that
// runs it; every other provider ignores it.
//
// A Read travels to TryAcquire and Acquire in their context (WithReads):
// the grant it rides on is the one the caller's acquire path asks for, with
// its waits, retries and undo unchanged, and a provider that ignores the
// Read still grants as usual. So the caller must not rely on the read
// having run: it asks Granted, and reads the record another way if the
// grant did not carry the Read. A Read is for one acquire call at a time.
type Read interface {
	// Key is the lock key, as the provider sees it (namespace included),
	// whose grant carries the read.
	Key() string

	// Granted reports whether the grant of Key to token with fence carried
	// the read, so that its result is the record as of that grant.
	Granted(token string, fence uint64) bool
}

type readsKey struct{}

// WithReads returns ctx carrying reads for the provider calls made with
// it: a TryAcquire or Acquire of a Read's Key by a provider that made the
// Read also runs it when it grants. Calls on other keys ignore them.
func WithReads(ctx context.Context, reads ...Read) context.Context {
	if len(reads) == 0 {
		return ctx
	}
	return context.WithValue(ctx, readsKey{}, reads)
}

// ReadOf returns the Read that ctx carries for key (see WithReads), or
// nil.
func ReadOf(ctx context.Context, key string) Read {
	reads, _ := ctx.Value(readsKey{}).([]Read)
	for _, r := range reads {
		if r != nil && r.Key() == key {
			return r
		}
	}
	return nil
}
