package locked

import "context"

// chainKey is the context key under which a lease's Context (and the ctx
// Run gives fn) carries the leases of its call chain.
type chainKey struct{}

// chainNode links a lease to the leases its call chain already held when
// it was taken: Lease.Context carries the whole list, without keeping the
// caller's context.
type chainNode struct {
	lease  *Lease
	parent *chainNode
}

func chainOf(ctx context.Context) *chainNode {
	if ctx == nil {
		return nil
	}
	n, _ := ctx.Value(chainKey{}).(*chainNode)
	return n
}

// heldInChain reports whether the chain n (of a ctx) has a live lease on key in the same
// lock store (Store: provider and namespace) as s.
func (s *Service) heldInChain(n *chainNode, key string) bool {
	if n == nil {
		return false
	}
	st := s.Store()
	for ; n != nil; n = n.parent {
		l := n.lease
		if l.key == key && l.Store() == st && l.alive() == nil {
			return true
		}
	}
	return false
}

// withChain returns ctx carrying l's chain, for the fn of Run.
func withChain(ctx context.Context, l *Lease) context.Context {
	return context.WithValue(ctx, chainKey{}, &l.chain)
}

// withChains returns ctx carrying leases on top of the chain ctx carries.
func withChains(ctx context.Context, leases []*Lease) context.Context {
	n := chainOf(ctx)
	for _, l := range leases {
		n = &chainNode{lease: l, parent: n}
	}
	return context.WithValue(ctx, chainKey{}, n)
}
