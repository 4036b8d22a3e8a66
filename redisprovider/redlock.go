package redisprovider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/provider"
)

// Defaults used when RedlockOptions leave a field zero.
const (
	DefaultDriftFactor = 0.01
	DefaultNodeTimeout = 500 * time.Millisecond
)

// RedlockOptions configure a Redlock. A nil *RedlockOptions, and every zero
// field, means the default.
type RedlockOptions struct {
	// Options apply to each node's provider.
	Options

	// DriftFactor is the share of the TTL allowed for clock drift between
	// the nodes and this process; 2 ms more are always allowed. A hold is
	// valid for TTL − time spent acquiring − drift. Default
	// DefaultDriftFactor.
	DriftFactor float64

	// NodeTimeout bounds each node's answer (and never exceeds a third of
	// the TTL), so a dead node cannot eat the hold's validity. Default
	// DefaultNodeTimeout.
	NodeTimeout time.Duration
}

var _ provider.Provider = (*Redlock)(nil)

// Redlock is a provider.Provider that holds each lock on a majority of
// independent Redis nodes (the Redlock algorithm), so it survives the loss
// of a minority of them. Each node runs the single-node scripts.
//
// Acquire asks every node at once and succeeds if a majority granted within
// the validity time (TTL − elapsed − drift); otherwise it rolls back the
// partial grants. The fence is the highest of the granting nodes' fences.
// When they differ it is first written back to the granting majority (one
// more round trip), so that every later majority, which must meet this one,
// issues a higher fence: fences strictly increase across holders as long as
// each node keeps its counter.
//
// Release, Extend and ForceRelease go to every node; Extend succeeds on a
// majority within validity. State reports a holder only if a majority
// agrees on it.
//
// Redlock waiters queue on each node only to be woken, not in order: fair
// per-node queues could each put a different waiter first and let nobody
// win a majority. A release wakes every waiter, so Redlock waiting is
// prompt but not fair.
type Redlock struct {
	nodes       []*Provider
	quorum      int
	drift       float64
	nodeTimeout time.Duration
	poll        time.Duration
	closed      atomic.Bool
}

// NewRedlock returns a Redlock over the given independent nodes: an odd
// number of clients, each of one Redis deployment, created with
// ContextTimeoutEnabled (go-redis otherwise ignores context deadlines on the
// socket, so a hung node could not be cut off at NodeTimeout). It does not
// own the clients. opts may be nil.
func NewRedlock(clients []redis.UniversalClient, opts *RedlockOptions) (*Redlock, error) {
	var o RedlockOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case len(clients)%2 == 0:
		return nil, &provider.ArgError{Arg: "clients", Reason: fmt.Sprintf("need an odd number of nodes, got %d", len(clients))}
	case o.DriftFactor < 0 || o.DriftFactor >= 0.5:
		return nil, &provider.ArgError{Arg: "DriftFactor", Reason: "must be in [0, 0.5)"}
	case o.NodeTimeout < 0:
		return nil, &provider.ArgError{Arg: "NodeTimeout", Reason: "must not be negative"}
	}
	r := &Redlock{
		quorum:      len(clients)/2 + 1,
		drift:       o.DriftFactor,
		nodeTimeout: o.NodeTimeout,
	}
	if r.drift == 0 {
		r.drift = DefaultDriftFactor
	}
	if r.nodeTimeout == 0 {
		r.nodeTimeout = DefaultNodeTimeout
	}
	for i, c := range clients {
		if enabled, known := contextTimeouts(c); known && !enabled {
			return nil, &provider.ArgError{Arg: fmt.Sprintf("clients[%d]", i),
				Reason: "set ContextTimeoutEnabled in its options: without it a hung node ignores NodeTimeout and eats the hold's validity"}
		}
		p, err := New(c, &o.Options)
		if err != nil {
			return nil, fmt.Errorf("redisprovider: node %d: %w", i, err)
		}
		p.subTimeout = min(p.subTimeout, r.nodeTimeout)
		r.nodes = append(r.nodes, p)
	}
	r.poll = r.nodes[0].poll
	return r, nil
}

// fanOut calls fn on every node at once, each with its own deadline, and
// returns the results in node order. All calls have returned when it does.
func fanOut[T any](ctx context.Context, nodes []*Provider, timeout time.Duration, fn func(ctx context.Context, n *Provider) T) []T {
	out := make([]T, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out[i] = fn(nctx, n)
		}()
	}
	wg.Wait()
	return out
}

func (r *Redlock) timeout(ttl time.Duration) time.Duration {
	return max(min(r.nodeTimeout, ttl/3), time.Millisecond)
}

// allowance is the clock-drift allowance for a hold of ttl.
func (r *Redlock) allowance(ttl time.Duration) time.Duration {
	return time.Duration(float64(ttl)*r.drift) + 2*time.Millisecond
}

// validity returns how long a hold taken at start with ttl stays valid now.
func (r *Redlock) validity(start time.Time, ttl time.Duration) time.Duration {
	return ttl - time.Since(start) - r.allowance(ttl)
}

// grant is the Grant of a quorum hold taken at start.
func (r *Redlock) grant(fence uint64, start time.Time, ttl time.Duration) provider.Grant {
	return provider.Grant{Fence: fence, Expires: start.Add(ttl - r.allowance(ttl))}
}

// unavailable reports that failures alone left fewer than a quorum of
// nodes able to answer.
func (r *Redlock) unavailable(errs []error) error {
	var failed []error
	for _, err := range errs {
		if err != nil && !refused(err) && !errors.Is(err, provider.ErrNotHeld) {
			failed = append(failed, err)
		}
	}
	if len(r.nodes)-len(failed) >= r.quorum {
		return nil
	}
	// The node errors are quoted, not wrapped: a node that timed out says
	// ErrNotAcquired, which must not make this error match it.
	return fmt.Errorf("%w: %d of %d nodes failed, quorum is %d: %v",
		provider.ErrUnavailable, len(failed), len(r.nodes), r.quorum, errors.Join(failed...))
}

type tryResult struct {
	g         provider.Grant
	holderTTL time.Duration
	err       error
}

// try asks every node once (mode tryOnce or waitAnyOrder). It returns the
// grant, or ErrNotAcquired with the soonest holder expiry seen, or
// ErrUnavailable.
func (r *Redlock) try(ctx context.Context, key, token string, ttl time.Duration, mode int) (provider.Grant, time.Duration, error) {
	start := time.Now()
	res := fanOut(ctx, r.nodes, r.timeout(ttl), func(ctx context.Context, n *Provider) tryResult {
		g, h, err := n.try(ctx, key, token, ttl, mode)
		return tryResult{g, h, err}
	})
	var (
		granted   []int
		fence     uint64
		equal     = true
		holderTTL = time.Duration(-1)
		errs      = make([]error, len(res))
	)
	for i, x := range res {
		errs[i] = x.err
		switch {
		case x.err == nil:
			if len(granted) > 0 && x.g.Fence != fence {
				equal = false
			}
			granted = append(granted, i)
			fence = max(fence, x.g.Fence)
		case refused(x.err) && x.holderTTL >= 0: // not a node that timed out
			if holderTTL < 0 || x.holderTTL < holderTTL {
				holderTTL = x.holderTTL
			}
		}
	}
	ok := len(granted) >= r.quorum && r.validity(start, ttl) > 0
	if ok && !equal {
		ok = r.raise(ctx, key, token, fence, granted, ttl) && r.validity(start, ttl) > 0
	}
	if ok {
		return r.grant(fence, start, ttl), 0, nil
	}
	if len(granted) > 0 || slices.ContainsFunc(errs, func(err error) bool {
		return err != nil && !refused(err)
	}) { // a failed node may have granted with its reply lost
		r.rollback(ctx, key, token, ttl)
	}
	if ctx.Err() != nil {
		return provider.Grant{}, 0, provider.CtxError(ctx)
	}
	if err := r.unavailable(errs); err != nil {
		return provider.Grant{}, 0, err
	}
	return provider.Grant{}, holderTTL, provider.ErrNotAcquired
}

// raise writes fence back to the granting nodes; it reports whether a
// majority now records it.
func (r *Redlock) raise(ctx context.Context, key, token string, fence uint64, granted []int, ttl time.Duration) bool {
	nodes := make([]*Provider, len(granted))
	for i, g := range granted {
		nodes[i] = r.nodes[g]
	}
	errs := fanOut(ctx, nodes, r.timeout(ttl), func(ctx context.Context, n *Provider) error {
		return n.raise(ctx, key, token, fence)
	})
	raised := 0
	for _, err := range errs {
		if err == nil {
			raised++
		}
	}
	return raised >= r.quorum
}

// rollback frees what a failed try granted, whatever ctx says: a partial
// grant must not wait for its TTL.
func (r *Redlock) rollback(ctx context.Context, key, token string, ttl time.Duration) {
	fanOut(context.WithoutCancel(ctx), r.nodes, r.timeout(ttl), func(ctx context.Context, n *Provider) error {
		_, err := n.release(ctx, key, token)
		return err
	})
}

// TryAcquire implements provider.Provider.
func (r *Redlock) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	g, _, err := r.try(ctx, key, token, ttl, tryOnce)
	return g, err
}

// Acquire implements provider.Provider. A release published by any node
// wakes the waiter.
func (r *Redlock) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	wake := make(chan struct{}, 1)
	stops := fanOut(ctx, r.nodes, r.nodeTimeout, func(ctx context.Context, n *Provider) func() {
		return n.watch(ctx, key, "", wake)
	})
	for _, stop := range stops {
		defer stop()
	}
	g, err := waitLoop(ctx, wake, r.poll, func() (provider.Grant, time.Duration, error) {
		if r.closed.Load() {
			return provider.Grant{}, 0, provider.ErrClosed
		}
		return r.try(ctx, key, token, ttl, waitAnyOrder)
	})
	if err != nil { // try rolled back any grants; leave the queues
		fanOut(ctx, r.nodes, r.nodeTimeout, func(ctx context.Context, n *Provider) struct{} {
			n.giveUp(ctx, key, token, ttl, false)
			return struct{}{}
		})
	}
	return g, err
}

// Release implements provider.Provider. It frees token's hold on every
// node; it returns ErrNotHeld unless a majority had it.
func (r *Redlock) Release(ctx context.Context, key, token string) error {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token)); err != nil {
		return err
	}
	return r.releaseAll(ctx, key, token)
}

func (r *Redlock) releaseAll(ctx context.Context, key, token string) error {
	errs := fanOut(ctx, r.nodes, r.nodeTimeout, func(ctx context.Context, n *Provider) error {
		freed, err := n.release(ctx, key, token)
		if err == nil && !freed {
			err = provider.ErrNotHeld
		}
		return err
	})
	freed := 0
	for _, err := range errs {
		if err == nil {
			freed++
		}
	}
	if freed >= r.quorum {
		return nil
	}
	if err := r.unavailable(errs); err != nil {
		return err
	}
	return provider.ErrNotHeld
}

// Extend implements provider.Provider.
func (r *Redlock) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&r.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	start := time.Now()
	type result struct {
		g   provider.Grant
		err error
	}
	res := fanOut(ctx, r.nodes, r.timeout(ttl), func(ctx context.Context, n *Provider) result {
		g, err := n.Extend(ctx, key, token, ttl)
		return result{g, err}
	})
	var (
		extended int
		fence    uint64
		errs     = make([]error, len(res))
	)
	for i, x := range res {
		errs[i] = x.err
		if x.err == nil {
			extended++
			fence = max(fence, x.g.Fence)
		}
	}
	if extended >= r.quorum && r.validity(start, ttl) > 0 {
		return r.grant(fence, start, ttl), nil
	}
	if err := r.unavailable(errs); err != nil {
		return provider.Grant{}, err
	}
	return provider.Grant{}, provider.ErrNotHeld
}

// State implements provider.Provider. A key is held if a majority of nodes
// agree on its token; the TTL reported is the time the majority lasts.
func (r *Redlock) State(ctx context.Context, key string) (provider.State, error) {
	if err := usable(&r.closed, provider.CheckKey(key)); err != nil {
		return provider.State{}, err
	}
	type result struct {
		st  provider.State
		err error
	}
	res := fanOut(ctx, r.nodes, r.nodeTimeout, func(ctx context.Context, n *Provider) result {
		st, err := n.State(ctx, key)
		return result{st, err}
	})
	errs := make([]error, len(res))
	byToken := make(map[string][]provider.State)
	for i, x := range res {
		errs[i] = x.err
		if x.err == nil && x.st.Held {
			byToken[x.st.Token] = append(byToken[x.st.Token], x.st)
		}
	}
	for token, sts := range byToken {
		if len(sts) < r.quorum {
			continue
		}
		st := provider.State{Held: true, Token: token}
		ttls := make([]time.Duration, len(sts))
		for i, s := range sts {
			st.Fence = max(st.Fence, s.Fence)
			ttls[i] = s.TTL
		}
		slices.Sort(ttls)
		st.TTL = ttls[len(ttls)-r.quorum] // the quorum-th longest
		return st, nil
	}
	if err := r.unavailable(errs); err != nil {
		return provider.State{}, err
	}
	return provider.State{}, nil
}

// ForceRelease implements provider.Provider. It reports whether any node
// had the key.
func (r *Redlock) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := usable(&r.closed, provider.CheckKey(key)); err != nil {
		return false, err
	}
	type result struct {
		freed bool
		err   error
	}
	res := fanOut(ctx, r.nodes, r.nodeTimeout, func(ctx context.Context, n *Provider) result {
		freed, err := n.ForceRelease(ctx, key)
		return result{freed, err}
	})
	errs := make([]error, len(res))
	freed := false
	for i, x := range res {
		errs[i] = x.err
		freed = freed || x.freed
	}
	if err := r.unavailable(errs); err != nil && !freed {
		return false, err
	}
	return freed, nil
}

// Close closes every node's provider. It is idempotent and does not close
// the clients.
func (r *Redlock) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, n := range r.nodes {
		errs = append(errs, n.Close())
	}
	return errors.Join(errs...)
}

// contextTimeouts reports whether c lets context deadlines bound its
// socket reads and writes, when its type tells (known).
func contextTimeouts(c redis.UniversalClient) (enabled, known bool) {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}
