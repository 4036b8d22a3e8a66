// Package redisprovider is the distributed lock provider, on Redis through
// go-redis v9's redis.UniversalClient: a single node, Sentinel or Cluster.
// NewRedlock adds quorum mode over independent nodes.
//
// Acquire, release and extend are each one round trip: one EVALSHA of an
// embedded Lua script (go-redis reloads a script that a restarted Redis or a
// SCRIPT FLUSH forgot, transparently). A key K is stored as
// "<prefix>{K}" = "<fence> <token>" with the hold's TTL, beside a fence
// counter "<prefix>{K}:fence" and, while somebody waits, a FIFO queue of
// waiters "<prefix>{K}:queue" with their deadlines "<prefix>{K}:alive". The
// shared hash tag keeps them all in one Cluster slot.
//
// Waiting is fair: a waiter that finds the key held joins the queue, and
// while anyone waits, only the head of the queue may take the key, so a
// releaser asking again cannot barge in front. The release publishes the
// key and the head's token on the provider's channel; each Provider keeps
// one subscription to it, multiplexed over its waiters and confirmed before
// any waiter first retries, so a release between the try and the subscribe
// cannot be missed, and it wakes only the head. A waiter also retries when
// the holder's TTL runs out and, in case a message is lost, at a jittered
// fallback interval; each retry renews its place in the queue, and a waiter
// that stops retrying for three poll intervals (a crashed process) loses it.
package redisprovider

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/provider"
)

var (
	//go:embed scripts/acquire.lua
	acquireSrc string
	//go:embed scripts/release.lua
	releaseSrc string
	//go:embed scripts/extend.lua
	extendSrc string
	//go:embed scripts/state.lua
	stateSrc string
	//go:embed scripts/raise.lua
	raiseSrc string
	//go:embed scripts/giveup.lua
	giveUpSrc string

	acquireScript = redis.NewScript(acquireSrc)
	releaseScript = redis.NewScript(releaseSrc)
	extendScript  = redis.NewScript(extendSrc)
	stateScript   = redis.NewScript(stateSrc)
	raiseScript   = redis.NewScript(raiseSrc)
	giveUpScript  = redis.NewScript(giveUpSrc)
)

// Defaults used when Options leave a field zero.
const (
	DefaultPrefix       = "lockproof:"
	DefaultPollInterval = time.Second
)

// Options configure a Provider. A nil *Options, and every zero field, means
// the default.
type Options struct {
	// Prefix starts every Redis key and the wake-up channel of this
	// provider; it must not contain '{' or '}'. Default DefaultPrefix.
	Prefix string

	// PollInterval is how often a waiter retries if no wake-up arrives (a
	// lost message, a broken subscription). Each wait is jittered to
	// between half and 1.5 times this. Default DefaultPollInterval.
	PollInterval time.Duration
}

var _ provider.Provider = (*Provider)(nil)

// Provider is a provider.Provider on one Redis deployment (one node,
// Sentinel or Cluster). It does not own the client: close the client after
// the Provider.
type Provider struct {
	c       redis.UniversalClient
	prefix  string
	channel string
	poll    time.Duration
	closed  atomic.Bool

	mu sync.Mutex
	// waiters is guarded by mu.
	waiters map[string]map[chan struct{}]string // key → wake-up channel → token

	subTimeout time.Duration // bounds each attempt to subscribe (and to give up)

	cleanMu sync.Mutex
	// cleanQ, cleanStop and cleanDone are guarded by cleanMu.
	cleanQ    []pendingGiveUp // give-ups to retry
	cleanStop chan struct{}   // closed to stop the clean-up goroutine; nil when none runs
	cleanDone chan struct{}   // closed when it has returned

	subMu sync.Mutex
	// sub, subDone and subFailed are guarded by subMu.
	sub       *redis.PubSub // nil until the first wait
	subDone   chan struct{} // closed when the dispatcher returns
	subFailed time.Time     // the last failed attempt; the next waits a poll interval
}

// New returns a Provider on c. It does not contact Redis; the first call
// does. opts may be nil.
//
// Create c with ContextTimeoutEnabled set: go-redis otherwise bounds each
// call by its ReadTimeout and WriteTimeout only, so a context deadline
// (the Service's acquire timeout) cannot cut short a call to a hung server.
func New(c redis.UniversalClient, opts *Options) (*Provider, error) {
	if c == nil {
		return nil, &provider.ArgError{Arg: "client", Reason: "must not be nil"}
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case strings.ContainsAny(o.Prefix, "{}"):
		return nil, &provider.ArgError{Arg: "Prefix", Reason: "must not contain '{' or '}'"}
	case o.PollInterval < 0:
		return nil, &provider.ArgError{Arg: "PollInterval", Reason: "must not be negative"}
	}
	prefix := cmp.Or(o.Prefix, DefaultPrefix)
	poll := cmp.Or(o.PollInterval, DefaultPollInterval)
	return &Provider{
		c:          c,
		prefix:     prefix,
		channel:    prefix + "released",
		poll:       poll,
		subTimeout: min(poll, time.Second),
		waiters:    make(map[string]map[chan struct{}]string),
	}, nil
}

// LockKey returns the Redis key that holds key's lock, as the string
// "<fence> <token>" while held. A store that keeps data beside the lock
// can check a proof in the same script as its write: its keys must share
// the lock key's hash tag (append a suffix to LockKey) to stay in one
// Cluster slot.
func (p *Provider) LockKey(key string) string {
	lock, _, _, _ := p.keys(key)
	return lock
}

// keys returns the Redis keys of key: the lock, its fence counter, its
// waiter queue and the waiters' deadlines. All share one hash tag: {key},
// or, for a key with braces (which would end or empty the tag), a hash of
// the key, followed by the key itself.
func (p *Provider) keys(key string) (lock, fence, queue, alive string) {
	if strings.ContainsAny(key, "{}") {
		h := fnv.New64a()
		h.Write([]byte(key))
		lock = p.prefix + "{#" + strconv.FormatUint(h.Sum64(), 16) + "}" + key
	} else {
		lock = p.prefix + "{" + key + "}"
	}
	return lock, lock + ":fence", lock + ":queue", lock + ":alive"
}

// storeError wraps an error from Redis as ErrUnavailable, keeping the
// cause (a context error stays matchable too).
func storeError(err error) error {
	if errors.Is(err, provider.ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", provider.ErrUnavailable, err)
}

// ctxEnded reports whether ctx has ended or reached its deadline: a socket
// deadline taken from ctx can fire a moment before ctx itself reports it.
func ctxEnded(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// refused reports whether err is the store's plain "held" answer, as
// opposed to a failure or a timeout that leaves the outcome unknown.
func refused(err error) bool {
	return errors.Is(err, provider.ErrNotAcquired) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// usable returns the first argument error, else ErrClosed if closed is
// set: the entry check of every Provider and Redlock method.
func usable(closed *atomic.Bool, argErrs ...error) error {
	if err := cmp.Or(argErrs...); err != nil {
		return err
	}
	if closed.Load() {
		return provider.ErrClosed
	}
	return nil
}

// ms converts a TTL to whole milliseconds, at least 1.
func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// How a try treats the waiter queue.
const (
	tryOnce      = iota // take a free key unless a waiter is ahead; never queue
	waitFair            // the same, and join the queue if refused
	waitAnyOrder        // queue only to be woken; take a free key in any order (Redlock)
)

// try runs the acquire script once. It returns the grant, or
// provider.ErrNotAcquired and when to try again unwoken (the holder's
// remaining TTL, or the head waiter's deadline).
func (p *Provider) try(ctx context.Context, key, token string, ttl time.Duration, mode int) (provider.Grant, time.Duration, error) {
	lock, fence, queue, alive := p.keys(key)
	join, fair := 1, 1
	switch mode {
	case tryOnce:
		join = 0
	case waitAnyOrder:
		fair = 0
	}
	start := time.Now()
	res, err := acquireScript.Run(ctx, p.c, []string{lock, fence, queue, alive, tombstone(lock, token)},
		token, ms(ttl), join, ms(3*p.poll), fair).Int64Slice()
	if err != nil { // the script may have run although its reply was lost
		if ctxEnded(ctx) {
			return provider.Grant{}, 0, provider.CtxError(ctx)
		}
		return provider.Grant{}, 0, storeError(err)
	}
	if len(res) != 2 {
		return provider.Grant{}, 0, fmt.Errorf("%w: acquire script returned %v", provider.ErrUnavailable, res)
	}
	if res[0] == 0 { // res[1] is the holder's PTTL: -1 (none) is not ours, polling covers it
		return provider.Grant{}, time.Duration(res[1]) * time.Millisecond, provider.ErrNotAcquired
	}
	return provider.Grant{Fence: uint64(res[1]), Expires: start.Add(ttl)}, 0, nil
}

// TryAcquire implements provider.Provider.
func (p *Provider) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&p.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	g, _, err := p.try(ctx, key, token, ttl, tryOnce)
	if err != nil && !refused(err) {
		p.giveUp(ctx, key, token, ttl, true) // a lost reply may hide a grant
	}
	return g, err
}

// Acquire implements provider.Provider. It retries when a release of key is
// published, when the holder's TTL runs out, and at the fallback interval.
func (p *Provider) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&p.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	wake := make(chan struct{}, 1)
	defer p.watch(ctx, key, token, wake)()
	var last error // of the last try
	g, err := waitLoop(ctx, wake, p.poll, func() (provider.Grant, time.Duration, error) {
		if p.closed.Load() {
			return provider.Grant{}, 0, provider.ErrClosed
		}
		g, d, err := p.try(ctx, key, token, ttl, waitFair)
		last = err
		return g, d, err
	})
	if err != nil {
		p.giveUp(ctx, key, token, ttl, last != nil && !refused(last))
	}
	return g, err
}

// giveUp runs the give-up script for a caller that will not hold key:
// whatever ctx says, it takes token out of the queue (so the waiters behind
// need not wait for its deadline) and, if unknown is set because the last
// try's reply was lost, frees a hold that try took or makes it refuse if it
// has not run yet. If Redis does not answer in time, the provider's
// clean-up goroutine keeps trying until the hold would have lapsed anyway.
func (p *Provider) giveUp(ctx context.Context, key, token string, ttl time.Duration, unknown bool) {
	g := pendingGiveUp{key: key, token: token, ttl: ttl, unknown: unknown, until: time.Now().Add(ttl)}
	if err := p.runGiveUp(context.WithoutCancel(ctx), g); err != nil {
		p.retryGiveUp(g)
	}
}

// pendingGiveUp is a give-up that Redis has not confirmed.
type pendingGiveUp struct {
	key, token string
	ttl        time.Duration
	unknown    bool
	until      time.Time // after this the TTL has done the work
}

func (p *Provider) runGiveUp(ctx context.Context, g pendingGiveUp) error {
	ctx, cancel := context.WithTimeout(ctx, p.subTimeout)
	defer cancel()
	lock, _, queue, alive := p.keys(g.key)
	free := 0
	if g.unknown {
		free = 1
	}
	// EVAL, not EVALSHA: this rare path must not depend on a script cache
	// that a NOSCRIPT round trip could not refill in time.
	return giveUpScript.Eval(ctx, p.c, []string{lock, queue, alive, tombstone(lock, g.token)},
		g.token, p.channel, g.key, free, ms(g.ttl)).Err()
}

// retryGiveUp hands g to the clean-up goroutine, starting it if needed.
func (p *Provider) retryGiveUp(g pendingGiveUp) {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	if p.closed.Load() {
		return // the TTL and the waiter deadline clean up
	}
	p.cleanQ = append(p.cleanQ, g)
	if p.cleanStop == nil {
		p.cleanStop, p.cleanDone = make(chan struct{}), make(chan struct{})
		go p.cleanUp(p.cleanStop, p.cleanDone)
	}
}

// cleanUp retries pending give-ups every poll interval (at most a second)
// until each succeeds or lapses, then exits; Close stops it.
func (p *Provider) cleanUp(stop, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(min(p.poll, time.Second))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		p.cleanMu.Lock()
		todo := p.cleanQ
		p.cleanQ = nil
		p.cleanMu.Unlock()
		var again []pendingGiveUp
		for _, g := range todo {
			if time.Now().Before(g.until) && p.runGiveUp(context.Background(), g) != nil {
				again = append(again, g)
			}
		}
		p.cleanMu.Lock()
		p.cleanQ = append(p.cleanQ, again...)
		if len(p.cleanQ) == 0 { // nothing left: exit; the next retry restarts it
			p.cleanStop = nil
			p.cleanMu.Unlock()
			return
		}
		p.cleanMu.Unlock()
	}
}

// tombstone is the key that tells a late acquire of token to refuse.
func tombstone(lock, token string) string { return lock + ":gone:" + token }

// waitLoop calls try until it grants, fails otherwise than ErrNotAcquired,
// or ctx ends. Between tries it waits for a wake-up, the holder's expiry or
// a jittered poll, whichever comes first.
func waitLoop(ctx context.Context, wake <-chan struct{}, poll time.Duration, try func() (provider.Grant, time.Duration, error)) (provider.Grant, error) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		g, holderTTL, err := try()
		switch {
		case err == nil:
			return g, nil
		case ctx.Err() != nil:
			return provider.Grant{}, provider.CtxError(ctx)
		case !errors.Is(err, provider.ErrNotAcquired):
			return provider.Grant{}, err
		}
		d := time.Duration(float64(poll) * (0.5 + rand.Float64()))
		if holderTTL >= 0 && holderTTL < d {
			d = max(holderTTL, time.Millisecond) // PTTL 0: lapsing right now
		}
		timer.Reset(d)
		select {
		case <-wake:
		case <-timer.C:
		case <-ctx.Done():
			return provider.Grant{}, provider.CtxError(ctx)
		}
	}
}

// Release implements provider.Provider.
func (p *Provider) Release(ctx context.Context, key, token string) error {
	if err := usable(&p.closed, provider.CheckKey(key), provider.CheckToken(token)); err != nil {
		return err
	}
	freed, err := p.release(ctx, key, token)
	if err == nil && !freed {
		err = provider.ErrNotHeld
	}
	return err
}

// release frees key if token holds it, or whoever holds it for token "".
func (p *Provider) release(ctx context.Context, key, token string) (bool, error) {
	lock, _, queue, _ := p.keys(key)
	n, err := releaseScript.Run(ctx, p.c, []string{lock, queue}, token, p.channel, key).Int64()
	if err != nil {
		return false, storeError(err)
	}
	return n == 1, nil
}

// Extend implements provider.Provider.
func (p *Provider) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&p.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	lock, _, _, _ := p.keys(key)
	start := time.Now()
	fence, err := extendScript.Run(ctx, p.c, []string{lock}, token, ms(ttl)).Int64()
	if err != nil {
		return provider.Grant{}, storeError(err)
	}
	if fence == 0 {
		return provider.Grant{}, provider.ErrNotHeld
	}
	return provider.Grant{Fence: uint64(fence), Expires: start.Add(ttl)}, nil
}

// State implements provider.Provider.
func (p *Provider) State(ctx context.Context, key string) (provider.State, error) {
	if err := usable(&p.closed, provider.CheckKey(key)); err != nil {
		return provider.State{}, err
	}
	lock, _, _, _ := p.keys(key)
	res, err := stateScript.Run(ctx, p.c, []string{lock}).Slice()
	if err != nil {
		return provider.State{}, storeError(err)
	}
	if len(res) == 0 {
		return provider.State{}, nil
	}
	token, _ := res[0].(string)
	fence, _ := res[1].(int64)
	pttl, _ := res[2].(int64)
	if token == "" || fence <= 0 {
		return provider.State{}, fmt.Errorf("%w: state script returned %v", provider.ErrUnavailable, res)
	}
	return provider.State{Held: true, Token: token, Fence: uint64(fence), TTL: time.Duration(max(pttl, 0)) * time.Millisecond}, nil
}

// ForceRelease implements provider.Provider.
func (p *Provider) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := usable(&p.closed, provider.CheckKey(key)); err != nil {
		return false, err
	}
	return p.release(ctx, key, "")
}

// raise lifts the fence counter of key to at least fence and records fence
// as token's (Redlock).
func (p *Provider) raise(ctx context.Context, key, token string, fence uint64) error {
	lock, counter, _, _ := p.keys(key)
	if err := raiseScript.Run(ctx, p.c, []string{lock, counter}, token, fence).Err(); err != nil {
		return storeError(err)
	}
	return nil
}

// Close stops the wake-up subscription, ends waiting Acquire calls and
// fails later calls with provider.ErrClosed. Holds stay
// in Redis until released by another Provider or until they expire. Close
// is idempotent and does not close the client.
func (p *Provider) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.mu.Lock()
	for _, set := range p.waiters { // their next try sees ErrClosed
		for ch := range set {
			notify(ch)
		}
	}
	p.mu.Unlock()
	p.cleanMu.Lock()
	stop, cleaned := p.cleanStop, p.cleanDone
	p.cleanStop = nil
	p.cleanMu.Unlock()
	if stop != nil {
		close(stop)
	}
	if cleaned != nil {
		<-cleaned
	}
	p.subMu.Lock()
	sub, done := p.sub, p.subDone
	p.sub = nil
	p.subMu.Unlock()
	if sub == nil {
		return nil
	}
	err := sub.Close()
	<-done
	return err
}

// watch registers ch (buffered) to be signalled when key is released to
// token (or to anyone, for token "") and makes sure the subscription is
// live before returning, so the caller can try and then wait without
// missing a release in between. If Redis cannot be subscribed to, the
// waiter still works, by polling. stop unregisters.
func (p *Provider) watch(ctx context.Context, key, token string, ch chan struct{}) (stop func()) {
	p.mu.Lock()
	set := p.waiters[key]
	if set == nil {
		set = make(map[chan struct{}]string)
		p.waiters[key] = set
	}
	set[ch] = token
	p.mu.Unlock()
	p.subscribe(ctx)
	return func() {
		p.mu.Lock()
		delete(p.waiters[key], ch)
		if len(p.waiters[key]) == 0 {
			delete(p.waiters, key)
		}
		p.mu.Unlock()
	}
}

// subscribe starts the provider's one subscription if it is not running,
// and waits, at most subTimeout, for Redis to confirm it. After a failure
// it does not try again for a poll interval; waiters poll meanwhile.
func (p *Provider) subscribe(ctx context.Context) {
	p.subMu.Lock()
	defer p.subMu.Unlock()
	if p.sub != nil || p.closed.Load() || time.Since(p.subFailed) < p.poll {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.subTimeout)
	defer cancel()
	sub := p.c.Subscribe(ctx) // no channel yet: connects nothing
	// Subscribing connects, bounded by ctx. go-redis keeps the context of
	// the first receive for the life of the subscription (pings,
	// reconnects), so that one must not end; the timeout bounds it.
	err := sub.Subscribe(ctx, p.channel)
	if err == nil {
		_, err = sub.ReceiveTimeout(context.Background(), p.subTimeout) // the confirmation
	}
	if err != nil {
		_ = sub.Close()
		p.subFailed = time.Now()
		return
	}
	p.sub, p.subDone = sub, make(chan struct{})
	go p.dispatch(sub.Channel(), p.subDone)
}

// dispatch wakes the waiter named by each message until the subscription
// is closed. go-redis reconnects a broken subscription by itself; releases
// published meanwhile are caught by the waiters' fallback polling.
func (p *Provider) dispatch(msgs <-chan *redis.Message, done chan struct{}) {
	defer close(done)
	for m := range msgs {
		head, key, ok := parseWake(m.Payload)
		if !ok {
			continue
		}
		p.mu.Lock()
		for ch, token := range p.waiters[key] {
			if token == "" || token == head {
				notify(ch)
			}
		}
		p.mu.Unlock()
	}
}

// parseWake splits a wake-up "<len(head)>:<head><key>".
func parseWake(msg string) (head, key string, ok bool) {
	i := strings.IndexByte(msg, ':')
	if i < 0 {
		return "", "", false
	}
	n, err := strconv.Atoi(msg[:i])
	if err != nil || n < 0 || i+1+n > len(msg) {
		return "", "", false
	}
	return msg[i+1 : i+1+n], msg[i+1+n:], true
}

// notify signals a waiter's buffered channel without blocking.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // already signalled
	}
}
