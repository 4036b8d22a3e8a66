package locked

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/lockproof/lockproof/provider"
)

// Why a lease's Context ended when the hold was freed by someone else.
var (
	errOwnerReleased = fmt.Errorf("%w: released by key and owner", ErrNotOwner)
	errAdminReleased = fmt.Errorf("%w: released by an admin call", ErrNotOwner)
)

// Release frees key if owner holds it, without the lease: for a job that
// knows its owner ID (WithOwner) but not the lease, such as a request that
// ends in another handler than the one that locked. It returns an error
// matching ErrNotHeld if key is free, ErrNotOwner if another owner holds
// it, and ErrInvalid for an empty key or owner. A lease of this Service on
// that hold ends (its Context's cause matches ErrNotOwner); holders in
// other processes learn it at their next Check, extend or write.
func (s *Service) Release(ctx context.Context, key, owner string) error {
	if s == nil {
		return opError("release", key, invalid("service", "must not be nil"))
	}
	if err := errors.Join(provider.CheckKey(key), checkOwner(owner)); err != nil {
		return opError("release", key, err)
	}
	st, err := s.p.State(ctx, s.prefix+key)
	switch {
	case err != nil:
		return opError("release", key, err)
	case !st.Held:
		return opError("release", key, ErrNotHeld)
	case ownerOf(st.Token) != owner:
		return opError("release", key, fmt.Errorf("%w: held by %q", ErrNotOwner, ownerOf(st.Token)))
	}
	// The release compares the token: if the hold changed since State, it
	// refuses, and nothing of the new holder's is freed.
	if err := s.p.Release(ctx, s.prefix+key, st.Token); err != nil {
		return opError("release", key, err)
	}
	s.endLocal(key, st.Token, errOwnerReleased)
	s.events.emit(Event{Type: ForceReleased, Key: key, Token: st.Token})
	return nil
}

// KeyState is one held key reported by Locks.
type KeyState struct {
	Key string // as the caller names it, without namespace
	State
}

// Locks lists the keys held now in this Service's namespace (every key of
// the store if it has none), for operators and tests (pglock's
// GetAllLocks). It needs a provider that implements provider.Lister
// (memprovider, redisprovider, Redlock); otherwise the error matches
// errors.ErrUnsupported. The list is a snapshot taken key by key.
func (s *Service) Locks(ctx context.Context) ([]KeyState, error) {
	entries, err := s.list(ctx, "locks")
	if err != nil {
		return nil, err
	}
	out := make([]KeyState, len(entries))
	for i, e := range entries {
		out[i] = KeyState{Key: strings.TrimPrefix(e.Key, s.prefix), State: s.stateOf(e.State)}
	}
	return out, nil
}

func (s *Service) list(ctx context.Context, op string) ([]provider.Entry, error) {
	if s == nil {
		return nil, opError(op, "", invalid("service", "must not be nil"))
	}
	l, ok := s.p.(provider.Lister)
	if !ok {
		return nil, opError(op, "", fmt.Errorf("%w: provider %T cannot list its keys (provider.Lister)", errors.ErrUnsupported, s.p))
	}
	entries, err := l.List(ctx, s.prefix)
	if err != nil {
		return nil, opError(op, "", err)
	}
	return entries, nil
}

// ReleaseOwner frees every key that owner holds in this Service's
// namespace, whichever process took it (Medusa's releaseAll with an
// owner), and reports how many it freed. It lists the namespace (see
// Locks; errors.ErrUnsupported without a provider.Lister) and releases each
// of owner's holds by its token, so a key taken by someone else after the
// listing is left alone. Leases of this Service end at once; holders in
// other processes learn it at their next Check, extend or write, and their
// Context's cause then matches ErrNotHeld. Failures are joined in the
// error; the count is of the keys freed before and despite them.
func (s *Service) ReleaseOwner(ctx context.Context, owner string) (int, error) {
	if err := checkOwner(owner); err != nil {
		return 0, opError("release owner", "", err)
	}
	return s.releaseListed(ctx, "release owner", func(token string) bool { return ownerOf(token) == owner })
}

// ForceReleaseAll frees every key held in this Service's namespace (every
// key of the store if it has none), whoever holds it (Medusa's releaseAll
// with no owner), and reports how many it freed. It is the admin form of
// ReleaseOwner, with the same listing, token comparison and errors. Use it
// for operator action, not in normal flow.
func (s *Service) ForceReleaseAll(ctx context.Context) (int, error) {
	return s.releaseListed(ctx, "force release all", func(string) bool { return true })
}

func (s *Service) releaseListed(ctx context.Context, op string, match func(token string) bool) (int, error) {
	entries, err := s.list(ctx, op)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !match(e.State.Token) {
			continue
		}
		key := strings.TrimPrefix(e.Key, s.prefix)
		err := s.p.Release(ctx, e.Key, e.State.Token)
		switch {
		case err == nil:
			n++
			s.endLocal(key, e.State.Token, errAdminReleased)
			s.events.emit(Event{Type: ForceReleased, Key: key, Token: e.State.Token})
		case errors.Is(err, ErrNotHeld): // released or lapsed since the listing
		default:
			errs = append(errs, opError(op, key, err))
		}
	}
	return n, errors.Join(errs...)
}
