package providertest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lockproof/lockproof/provider"
	"github.com/lockproof/lockproof/provider/providertest"
)

// refProvider is a deliberately simple provider: one mutex, and a broadcast
// channel per key closed on every release. It exists so the suite itself is
// tested against an implementation small enough to check by reading, and so
// the mutants in mutants_test.go have something correct to break.
type refProvider struct {
	done chan struct{} // closed by Close

	mu     sync.Mutex // guards the fields below
	closed bool
	holds  map[string]refHold
	fences map[string]uint64        // last fence granted per key; never reset
	wake   map[string]chan struct{} // closed when the key's hold ends by release
}

type refHold struct {
	token   string
	fence   uint64
	expires time.Time
}

var _ provider.Provider = (*refProvider)(nil)

func newRefProvider() *refProvider {
	return &refProvider{
		done:   make(chan struct{}),
		holds:  map[string]refHold{},
		fences: map[string]uint64{},
		wake:   map[string]chan struct{}{},
	}
}

// holdLocked returns key's live hold, dropping a lapsed one. p.mu is held.
func (p *refProvider) holdLocked(key string, now time.Time) (refHold, bool) {
	h, ok := p.holds[key]
	if ok && !now.Before(h.expires) {
		delete(p.holds, key)
		return refHold{}, false
	}
	return h, ok
}

// freeLocked ends key's hold and wakes its waiters. p.mu is held.
func (p *refProvider) freeLocked(key string) {
	delete(p.holds, key)
	if ch, ok := p.wake[key]; ok {
		close(ch)
		delete(p.wake, key)
	}
}

// try grants key to token if it is free. Otherwise it returns a channel
// closed on release and the current hold's expiry. p.mu is held.
func (p *refProvider) tryLocked(key, token string, ttl time.Duration) (provider.Grant, <-chan struct{}, time.Time, bool) {
	start := time.Now()
	if h, ok := p.holdLocked(key, start); ok {
		ch, ok := p.wake[key]
		if !ok {
			ch = make(chan struct{})
			p.wake[key] = ch
		}
		return provider.Grant{}, ch, h.expires, false
	}
	p.fences[key]++
	h := refHold{token: token, fence: p.fences[key], expires: start.Add(ttl)}
	p.holds[key] = h
	return provider.Grant{Fence: h.fence, Expires: h.expires}, nil, time.Time{}, true
}

func (p *refProvider) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := firstErr(provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return provider.Grant{}, provider.ErrClosed
	}
	if g, _, _, ok := p.tryLocked(key, token, ttl); ok {
		return g, nil
	}
	return provider.Grant{}, provider.ErrNotAcquired
}

func (p *refProvider) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := firstErr(provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	for {
		if ctx.Err() != nil {
			return provider.Grant{}, provider.CtxError(ctx)
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return provider.Grant{}, provider.ErrClosed
		}
		g, wake, expires, ok := p.tryLocked(key, token, ttl)
		p.mu.Unlock()
		if ok {
			return g, nil
		}
		timer := time.NewTimer(time.Until(expires))
		select {
		case <-wake:
		case <-timer.C:
		case <-p.done:
		case <-ctx.Done():
		}
		timer.Stop()
	}
}

func (p *refProvider) Release(ctx context.Context, key, token string) error {
	_, err := p.ReleaseAt(ctx, key, token)
	return err
}

// The reference keeps its holds on this process's clock, with exact
// grants: it is a provider.LocalClock too.
var _ provider.LocalClock = (*refProvider)(nil)

func (p *refProvider) ReleaseAt(ctx context.Context, key, token string) (time.Time, error) {
	if err := firstErr(provider.CheckKey(key), provider.CheckToken(token)); err != nil {
		return time.Time{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return time.Time{}, provider.ErrClosed
	}
	now := time.Now()
	if h, ok := p.holdLocked(key, now); !ok || h.token != token {
		return now, provider.ErrNotHeld
	}
	p.freeLocked(key)
	return now, nil
}

func (p *refProvider) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := firstErr(provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return provider.Grant{}, provider.ErrClosed
	}
	now := time.Now()
	h, ok := p.holdLocked(key, now)
	if !ok || h.token != token {
		return provider.Grant{}, provider.ErrNotHeld
	}
	h.expires = now.Add(ttl)
	p.holds[key] = h
	return provider.Grant{Fence: h.fence, Expires: h.expires}, nil
}

func (p *refProvider) State(ctx context.Context, key string) (provider.State, error) {
	if err := provider.CheckKey(key); err != nil {
		return provider.State{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return provider.State{}, provider.ErrClosed
	}
	now := time.Now()
	h, ok := p.holdLocked(key, now)
	if !ok {
		return provider.State{}, nil
	}
	return provider.State{Held: true, Token: h.token, Fence: h.fence, TTL: h.expires.Sub(now)}, nil
}

func (p *refProvider) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := provider.CheckKey(key); err != nil {
		return false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, provider.ErrClosed
	}
	if _, ok := p.holdLocked(key, time.Now()); !ok {
		return false, nil
	}
	p.freeLocked(key)
	return true, nil
}

func (p *refProvider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return provider.ErrClosed
	}
	p.closed = true
	close(p.done)
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestRefProvider checks the suite against the reference provider: a failure
// here is a bug in the suite (or in the reference), not in a real provider.
func TestRefProvider(t *testing.T) {
	providertest.Run(t, func(t *testing.T) provider.Provider { return newRefProvider() })
}
