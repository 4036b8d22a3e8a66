// Package memprovider is the in-process lock provider: the default for
// single-process applications and for tests.
//
// Keys are spread over a fixed number of shards, each a map guarded by its
// own mutex. A waiter joins a FIFO queue on the key and blocks on a channel;
// a release hands the lock straight to the head of the queue and closes its
// channel, so waiting costs nothing and nobody can barge in front of a
// waiter. A lapsed hold is noticed when the key is next touched, by a
// waiter's timer set to the holder's expiry, or by the sweep that runs when a
// shard's map has doubled since the last one, so memory tracks the number of
// keys held at once, not the number of keys ever locked.
//
// Fences come from one counter per shard; a key always maps to the same
// shard, so its fences strictly increase for the life of the Provider.
//
// Grant.Expires is the store's own expiry, read from the same monotonic
// clock: a hold lasts while now < Expires and the key is free from Expires
// on. A lease that checks the clock against Expires (as locked.Lease does in
// CheckLocal) therefore never calls itself held after the key was given
// away. The Provider is a provider.LocalClock: Expires minus the TTL is the
// reading the grant was made at, and ReleaseAt returns the reading a
// release was decided at, so that a caller need not read the clock again.
package memprovider

import (
	"cmp"
	"context"
	"hash/maphash"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lockproof/lockproof/provider"
)

const (
	shardCount = 64 // a power of two
	minSweepAt = 64 // smallest map size that triggers a sweep
)

var _ provider.Provider = (*Provider)(nil)

// Provider is an in-memory provider.Provider. The zero value is not usable;
// call New. A Provider must not be copied after first use.
type Provider struct {
	base   time.Time // the origin of the monotonic clock read by now
	seed   maphash.Seed
	closed atomic.Bool
	shards [shardCount]shard
}

type shard struct {
	mu sync.Mutex
	// locks, fence and sweepAt are guarded by mu.
	locks   map[string]*entry
	fence   uint64 // last fence issued by this shard
	sweepAt int    // sweep free and lapsed entries when len(locks) reaches this
	freed   int    // entries freed by a release since the last sweep
	peak    int    // the most entries the map has held since it was last made
	_       [24]byte
}

// entry is one key. A released key keeps its entry, free (token ""), so
// that locking it again updates the entry in place; sweeps delete free
// entries. While waiters queue on a key its entry is always held: a release
// hands it to the head of the queue instead of freeing it.
type entry struct {
	token   string // "" when free
	fence   uint64
	expires mono
	queue   []*waiter // FIFO; nil when nobody waits
}

type waiter struct {
	token string
	ttl   time.Duration
	ready chan struct{} // closed once held or err is set, under the shard's mu
	held  entry         // a copy of the grant, when ready without err
	err   error
}

// New returns an empty Provider.
func New() *Provider {
	p := &Provider{base: time.Now(), seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].locks = make(map[string]*entry)
		p.shards[i].sweepAt = minSweepAt
	}
	return p
}

// mono is a reading of the Provider's monotonic clock: nanoseconds since
// base. One clock read costs half of time.Now, which reads two clocks.
type mono int64

func (p *Provider) now() mono { return mono(time.Since(p.base)) }

// time converts a reading back to a time.Time (with a monotonic reading).
func (p *Provider) time(m mono) time.Time { return p.base.Add(time.Duration(m)) }

func (p *Provider) shard(key string) *shard {
	return &p.shards[maphash.String(p.seed, key)&(shardCount-1)]
}

// checkArgs validates the arguments of a grant, with a fast path for the
// common case of good input.
func checkArgs(key, token string, ttl time.Duration) error {
	if key != "" && token != "" && ttl > 0 {
		return nil
	}
	return cmp.Or(provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl))
}

// TryAcquire implements provider.Provider. A ctx that has already ended is
// refused (provider.CtxError), as the contract asks.
func (p *Provider) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := checkArgs(key, token, ttl); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	s := p.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return provider.Grant{}, provider.ErrClosed
	}
	now := p.now()
	e, held := s.settle(key, now)
	if held {
		return provider.Grant{}, provider.ErrNotAcquired
	}
	return p.grantOf(s.take(key, e, token, ttl, now)), nil
}

// Acquire implements provider.Provider. Waiters are served in FIFO order.
func (p *Provider) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := checkArgs(key, token, ttl); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	s := p.shard(key)
	s.mu.Lock()
	if p.closed.Load() {
		s.mu.Unlock()
		return provider.Grant{}, provider.ErrClosed
	}
	now := p.now()
	e, held := s.settle(key, now)
	if !held {
		g := p.grantOf(s.take(key, e, token, ttl, now))
		s.mu.Unlock()
		return g, nil
	}
	w := &waiter{token: token, ttl: ttl, ready: make(chan struct{})}
	e.queue = append(e.queue, w)
	expires := e.expires
	s.mu.Unlock()

	// The timer catches a holder that lapses instead of releasing.
	timer := time.NewTimer(time.Duration(expires - now))
	defer timer.Stop()
	for {
		select {
		case <-w.ready:
			return p.grantOf(&w.held), w.err
		case <-ctx.Done():
			s.mu.Lock()
			defer s.mu.Unlock()
			select {
			case <-w.ready: // granted meanwhile: the caller has it
				return p.grantOf(&w.held), w.err
			default:
			}
			s.dequeue(key, w)
			return provider.Grant{}, provider.CtxError(ctx)
		case <-timer.C:
			s.mu.Lock()
			now := p.now()
			if e, held := s.settle(key, now); held {
				timer.Reset(time.Duration(e.expires - now))
			}
			s.mu.Unlock()
		}
	}
}

// Release implements provider.Provider. If waiters queue on key, the head
// of the queue becomes the holder.
func (p *Provider) Release(ctx context.Context, key, token string) error {
	_, err := p.release(key, token)
	return err
}

var _ provider.LocalClock = (*Provider)(nil)

// ReleaseAt implements provider.LocalClock: it is Release, and returns the
// clock reading that Release compared with the hold's expiry.
func (p *Provider) ReleaseAt(ctx context.Context, key, token string) (time.Time, error) {
	now, err := p.release(key, token)
	if now < 0 {
		return time.Time{}, err
	}
	return p.time(now), err
}

// release is Release, returning the clock reading it decided at (-1 if it
// took none).
func (p *Provider) release(key, token string) (mono, error) {
	if key == "" || token == "" {
		return -1, cmp.Or(provider.CheckKey(key), provider.CheckToken(token))
	}
	s := p.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return -1, provider.ErrClosed
	}
	now := p.now()
	e, held := s.settle(key, now)
	if !held || e.token != token {
		return now, provider.ErrNotHeld
	}
	s.release(e, now)
	return now, nil
}

// Extend implements provider.Provider.
func (p *Provider) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := checkArgs(key, token, ttl); err != nil {
		return provider.Grant{}, err
	}
	s := p.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return provider.Grant{}, provider.ErrClosed
	}
	now := p.now()
	e, held := s.settle(key, now)
	if !held || e.token != token {
		return provider.Grant{}, provider.ErrNotHeld
	}
	e.expires = now + mono(ttl)
	return p.grantOf(e), nil
}

// State implements provider.Provider.
func (p *Provider) State(ctx context.Context, key string) (provider.State, error) {
	if err := provider.CheckKey(key); err != nil {
		return provider.State{}, err
	}
	s := p.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return provider.State{}, provider.ErrClosed
	}
	now := p.now()
	e, held := s.settle(key, now)
	if !held {
		return provider.State{}, nil
	}
	return provider.State{Held: true, Token: e.token, Fence: e.fence, TTL: time.Duration(e.expires - now)}, nil
}

// ForceRelease implements provider.Provider.
func (p *Provider) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := provider.CheckKey(key); err != nil {
		return false, err
	}
	s := p.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.closed.Load() {
		return false, provider.ErrClosed
	}
	now := p.now()
	e, held := s.settle(key, now)
	if held {
		s.release(e, now)
	}
	return held, nil
}

// Close drops every hold and fails every waiter with provider.ErrClosed.
// Later calls return provider.ErrClosed. Close is idempotent.
func (p *Provider) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		for _, e := range s.locks {
			for _, w := range e.queue {
				w.err = provider.ErrClosed
				close(w.ready)
			}
		}
		clear(s.locks)
		s.mu.Unlock()
	}
	return nil
}

// Clear force-releases every key, as if ForceRelease were called on each:
// queued waiters are granted in turn. It is meant for tests.
func (p *Provider) Clear() {
	now := p.now()
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		for key := range s.locks {
			if e, held := s.settle(key, now); held {
				s.free(e, now)
			}
		}
		s.mu.Unlock()
	}
}

// IsLocked reports whether key is held now. It is meant for tests.
func (p *Provider) IsLocked(key string) bool {
	_, ok := p.Holder(key)
	return ok
}

// Holder returns the token holding key, if any. It is meant for tests.
func (p *Provider) Holder(key string) (token string, ok bool) {
	s := p.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, held := s.settle(key, p.now()); held {
		return e.token, true
	}
	return "", false
}

// Len returns the number of keys held now. It is meant for tests.
func (p *Provider) Len() int {
	n := 0
	now := p.now()
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.Lock()
		for _, e := range s.locks {
			if e.token != "" && (now < e.expires || e.queue != nil) {
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// settle applies a lapse to key's entry: a lapsed hold passes to the head
// of its queue, or frees the entry if nobody waits. It returns the entry
// (nil if the key has none) and whether it is held afterwards. s.mu must be
// held.
func (s *shard) settle(key string, now mono) (*entry, bool) {
	e := s.locks[key]
	switch {
	case e == nil || e.token == "":
		return e, false
	case now < e.expires:
		return e, true
	case e.queue == nil:
		e.token = ""
		return e, false
	}
	s.handoff(e, now)
	return e, true
}

// free ends the hold on e: the head of the queue takes it over, or the
// entry is left free. s.mu must be held.
func (s *shard) free(e *entry, now mono) {
	if e.queue == nil {
		e.token = ""
		return
	}
	s.handoff(e, now)
}

// handoff grants e to the head of its queue (non-empty) and wakes it.
func (s *shard) handoff(e *entry, now mono) {
	w := e.queue[0]
	e.queue[0] = nil
	e.queue = e.queue[1:]
	if len(e.queue) == 0 {
		e.queue = nil
	}
	w.held = *s.take("", e, w.token, w.ttl, now)
	close(w.ready)
}

// take makes token the holder of key with a new fence, in e if key has an
// entry. s.mu must be held.
func (s *shard) take(key string, e *entry, token string, ttl time.Duration, now mono) *entry {
	if e == nil {
		if len(s.locks) >= s.sweepAt {
			s.sweep(now)
		}
		e = &entry{}
		s.locks[key] = e
		s.peak = max(s.peak, len(s.locks))
	}
	s.fence++
	e.token, e.fence, e.expires = token, s.fence, now+mono(ttl)
	return e
}

// grantOf returns the grant of e. Its Expires is the clock reading at the
// grant plus the TTL, as provider.LocalClock promises (see take).
func (p *Provider) grantOf(e *entry) provider.Grant {
	return provider.Grant{Fence: e.fence, Expires: p.time(e.expires)}
}

// release frees e for a Release or ForceRelease, and sweeps once releases
// have freed as many entries as half the map (at least minSweepAt), so
// that the entries of a burst of keys held at once and then released do
// not stay until the map doubles again. Each such sweep follows that many
// releases: O(1) amortised per release. s.mu must be held.
func (s *shard) release(e *entry, now mono) {
	if e.queue != nil {
		s.handoff(e, now)
		return
	}
	e.token = ""
	s.freed++
	if s.freed >= max(len(s.locks)/2, minSweepAt) {
		s.sweep(now)
	}
}

// sweep settles every entry and deletes the free ones, then sets the next
// sweep for when the map has doubled. The cost is linear in the map's size
// and the map must double before the next sweep (or half of it be freed by
// releases), so it adds O(1) amortised per new key. A Go map never gives
// its buckets back, so a map left with under a quarter of its peak is
// copied into a new one. s.mu must be held.
func (s *shard) sweep(now mono) {
	for key := range s.locks {
		if _, held := s.settle(key, now); !held {
			delete(s.locks, key)
		}
	}
	if len(s.locks) < s.peak/4 { // against the peak: sweeps that each halve it add up
		m := make(map[string]*entry, len(s.locks)) // sized for the survivors, unlike maps.Clone
		maps.Copy(m, s.locks)
		s.locks, s.peak = m, len(m)
	}
	s.freed = 0
	s.sweepAt = max(2*len(s.locks), minSweepAt)
}

// dequeue removes w from key's queue. s.mu must be held.
func (s *shard) dequeue(key string, w *waiter) {
	e := s.locks[key]
	if e == nil {
		return
	}
	e.queue = slices.DeleteFunc(e.queue, func(x *waiter) bool { return x == w })
	if len(e.queue) == 0 {
		e.queue = nil
	}
}
