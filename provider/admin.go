package provider

import "context"

// Lister is a Provider that can list the keys held in it, for the admin
// calls of locked.Service (Locks, ReleaseOwner, ForceReleaseAll). It is
// optional: those calls report errors.ErrUnsupported for a provider
// without it.
type Lister interface {
	// List returns every key held now whose name starts with prefix ("" for
	// all), with its state, in no particular order. It is a snapshot taken
	// key by key, not at one instant: a key may be released or taken while
	// the list is built, so callers that act on an entry must compare its
	// token (Release does). Its cost is linear in the keys the store keeps.
	List(ctx context.Context, prefix string) ([]Entry, error)
}

// Entry is one held key reported by Lister.List.
type Entry struct {
	Key   string // as the provider's callers name it
	State State  // Held is true
}
