// Package redisprovider is the distributed lock provider, on Redis through
// go-redis v9's redis.UniversalClient: a single node, Sentinel or Cluster.
// NewRedlock adds quorum mode over independent nodes.
//
// # Layout
//
// Acquire, release and extend are each one round trip: one EVALSHA of an
// embedded Lua script (go-redis reloads a script that a restarted Redis or a
// SCRIPT FLUSH forgot, transparently). A key K is stored as
// "<prefix>{K}" = "<fence> <nonce> <token>" with the hold's TTL, beside a
// fence counter shared by the keys of K's Cluster hash slot
// ([Provider.FenceCounter]) and, while somebody waits, a FIFO queue
// of waiters "<prefix>{K}:queue" with their deadlines "<prefix>{K}:alive"
// (which also keeps, for the TTL they asked for, the nonces of acquires
// whose reply was lost and whose caller gave up, so that they refuse if
// they run late). A free key with neither hash nor queue is taken with
// EXISTS, INCR and SET; a release runs GET, DEL and, if the client may
// re-send it, SET of its marker.
// The shared hash tag keeps them all in one Cluster slot. The value's
// format is this package's alone: a store that checks a hold inside its own
// script gets a [Guard] and a [GuardedScript], never the format.
//
// # Waiting
//
// Waiting is fair: a waiter that finds the key held joins the queue, and
// while anyone waits, only the head of the queue may take the key, so a
// releaser asking again cannot barge in front. A waiter that joins marks
// the hold, and only the release of a marked hold looks at the queue. Each
// Provider keeps one subscription, multiplexed over its waiters and
// confirmed before any waiter first retries, so a release between the try
// and the subscribe cannot be missed.
//
// On a single node (a *redis.Client, Sentinel's included) the release
// hands the key over itself: it grants the first live waiter the next
// fence and a hold with that waiter's TTL, and publishes the grant on the
// waiter's Provider channel ("<prefix>released:<instance>"), so the waiter
// returns without another round trip. The grant stands only if that
// PUBLISH reached a subscriber: a waiter whose Provider has died or lost
// its subscription is skipped, and leaves the queue when nobody took the
// key. A grant whose message is lost is found by the waiter's next try.
// On Cluster and Ring, where a script's PUBLISH counts only its own node's
// subscribers, and for waiters without a live subscription, the release
// instead publishes the key and the head's token on "<prefix>released",
// which wakes only the head, and the head takes the key by a try.
//
// A waiter also retries when the holder's TTL runs out and, in case a
// message is lost, at a jittered fallback interval; each retry renews its
// place in the queue, and a waiter that stops retrying for three poll
// intervals (a crashed process) loses it.
//
// # What an error means
//
// Every call ends in one of: success; a definite refusal
// (provider.ErrNotAcquired, provider.ErrNotHeld: Redis decided, nothing
// changed); provider.ErrUnavailable when nothing can have been applied; or
// provider.ErrOutcomeUnknown (which also matches ErrUnavailable) when the
// request may have been applied: a read timeout, a reset connection, a
// context that ended while the request was in flight, or any failure of a
// client that may have re-sent it. Redis runs a script already in its
// receive buffer even after the client gave up, so such a request may
// still apply. When a call ends because ctx ended, the error also matches
// ctx.Err(). [Provider.StoreError] is this classification, for stores
// beside the provider.
//
// Which failures prove that nothing was applied depends on whether the
// client re-sends. go-redis re-sends after a retryable failure (MaxRetries,
// default 3) and returns only its last attempt's error, or ctx's bare
// error if ctx ended in a back-off or while it redialled; it never says
// whether an earlier attempt was written, and a request that ran and lost
// its reply to a crash is followed by failed dials just like one that
// never left. So with a client that may re-send, every failure is
// ErrOutcomeUnknown: an unreachable Redis (closed port, DNS typo) is
// reported so, with the dial error in the chain when go-redis returns it,
// never as ErrNotAcquired. A client created with MaxRetries -1 makes one
// attempt, and a dial error, a pool timeout, a closed client, an error
// reply, or ctx's bare error (go-redis returns it only while it waits for
// a connection) is ErrUnavailable. The scripts are idempotent, so
// re-sending is not needed for correctness. For the dial error in the
// chain, let DialerRetries × DialerRetryTimeout plus DialTimeout fit in the
// deadline: go-redis's defaults outlast short deadlines and keep the dial
// error to themselves. docs/decisions.md (entry 44) says why a dial hook
// cannot do better.
//
// # Re-sent requests
//
// go-redis re-sends a command whose reply was lost (MaxRetries, default 3).
// Every script is idempotent for its own request: an acquire carries a
// nonce that it stores in the hold, so its re-execution returns the same
// hold and fence (a fresh call by the same token is still refused); a
// release that freed leaves a marker (this token's "<lock>:rel:<token>" =
// the release's nonce, for as long as go-redis may re-send, at most a
// minute, and not at all for clients that never re-send) so its
// re-execution reports success; extend and give-up change nothing
// more when run twice.
//
// # Fences
//
// Fences are exact over the whole range of Redis's INCR, 1 to 2^63−1: the
// scripts never turn them into Lua numbers (doubles) beyond 2^53, and send
// them as decimal strings.
//
// # Deadlines
//
// Every call returns within its context's deadline plus the time go-redis
// takes to notice a socket deadline (about a millisecond on loopback; up to
// 30 ms measured under the race detector on a loaded machine), Redis down
// or hung, provided the client was created with ContextTimeoutEnabled (New
// refuses clients that it can see lack it). An Acquire that gives up also
// leaves the waiter queue, waiting for that at most 20 ms more
// (queueLeaveBudget) when Redis just answered its last try. Undoing an
// acquire whose reply was lost, and any leave that did not fit the budget,
// run in the provider's own background goroutine, never in the caller's.
package redisprovider

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lockproof/lockproof/provider"
)

var (
	//go:embed scripts/hold.lua
	holdSrc string
	//go:embed scripts/acquire.lua
	acquireSrc string
	//go:embed scripts/release.lua
	releaseSrc string
	//go:embed scripts/extend.lua
	extendSrc string
	//go:embed scripts/state.lua
	stateSrc string
	//go:embed scripts/giveup.lua
	giveUpSrc string

	acquireScript = holdScript(acquireSrc)
	releaseScript = holdScript(releaseSrc)

	acquireSha   = newNodeScript(acquireScript)
	releaseSha   = newNodeScript(releaseScript)
	extendScript = holdScript(extendSrc)
	stateScript  = holdScript(stateSrc)
	giveUpScript = holdScript(giveUpSrc)
)

// holdScript is src with the hold format (scripts/hold.lua): its
// constants first, and its functions before src, or in place of src's line
// "--#hold" if it has one: a fast path above that line runs without
// creating the functions' closures.
func holdScript(src string) *redis.Script { return redis.NewScript(holdSource(src)) }

// holdSource is the text of holdScript(src).
func holdSource(src string) string {
	consts, funcs, ok := strings.Cut(holdSrc, "\n--#functions\n")
	if !ok {
		panic(`redisprovider: scripts/hold.lua lacks its "--#functions" line`)
	}
	consts += "\n"
	if before, after, ok := strings.Cut(src, "\n--#hold\n"); ok {
		return consts + before + "\n" + funcs + after
	}
	return consts + funcs + src
}

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
	resend  time.Duration // how long go-redis may re-send a request; 0: never
	closed  atomic.Bool

	// instance names this Provider in the waiter entries that a release
	// hands the key to, and grants is its own channel (channel + ":" +
	// instance); both "" when handoff is off (clients other than
	// *redis.Client: see decisions, "Direct handoff").
	instance string
	grants   string

	// The scripts' arguments that are the same in every call, boxed once.
	channelArg, instanceArg, leaseArg, resendArg any

	mu sync.Mutex
	// waiters is guarded by mu.
	waiters map[string]map[chan struct{}]waiter // key → wake-up channel → who waits

	subTimeout time.Duration // bounds each attempt to subscribe (and to give up)

	// bg ends when Close is called: it bounds the clean-up goroutine's calls.
	bg       context.Context
	bgCancel context.CancelFunc

	cleanMu sync.Mutex
	// cleanQ, cleanKick, cleanRunning and cleanDone are guarded by cleanMu.
	cleanQ       []pendingGiveUp // give-ups to run
	cleanKick    chan struct{}   // signalled when cleanQ grows
	cleanRunning bool            // the clean-up goroutine runs
	cleanDone    chan struct{}   // closed when it has returned

	subMu sync.Mutex
	// sub, subDone and subFailed are guarded by subMu.
	sub       *redis.PubSub // nil until the first wait
	subDone   chan struct{} // closed when the dispatcher returns
	subFailed time.Time     // the last failed attempt; the next waits a poll interval
	// subUp is set while sub is not nil (written under subMu), so that a
	// try can tell without the lock whether a handoff could reach it.
	subUp atomic.Bool
}

// waiter is one registered wait (see watch): whom a wake-up or a handoff
// is for.
type waiter struct {
	token  string       // "" for a release to anyone
	nonce  string       // the Acquire call's nonce; "" takes no handoff
	grants chan handoff // buffered; nil takes no handoff
}

// handoff is a grant that a release sent to a waiting Acquire call: its
// fence and the server time from that call's try number seq to the grant.
type handoff struct {
	fence   uint64
	elapsed time.Duration
	seq     int
}

// New returns a Provider on c. It does not contact Redis; the first call
// does. opts may be nil.
//
// c must be created with ContextTimeoutEnabled: go-redis otherwise bounds
// each call by its ReadTimeout and WriteTimeout only, so a context deadline
// (the Service's acquire timeout) cannot cut short a call to a hung server.
// New returns an *provider.ArgError (matching provider.ErrInvalid) for a
// nil or typed-nil client, for a *redis.Client, *redis.ClusterClient or
// *redis.Ring without ContextTimeoutEnabled, and for bad Options.
func New(c redis.UniversalClient, opts *Options) (*Provider, error) {
	if err := checkClient(c, "client"); err != nil {
		return nil, err
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
	p := &Provider{
		c:          c,
		prefix:     prefix,
		channel:    prefix + "released",
		poll:       poll,
		resend:     resendWindow(c),
		subTimeout: min(poll, time.Second),
		waiters:    make(map[string]map[chan struct{}]waiter),
		cleanKick:  make(chan struct{}, 1),
	}
	// A script's PUBLISH counts the subscribers of its own node only, and
	// only a single node (or Sentinel's master) is sure to hold both the
	// key and this Provider's subscription.
	if _, single := c.(*redis.Client); single {
		p.instance = newNonce() // 64 random bits: no two Providers share one
		p.grants = p.channel + ":" + p.instance
	}
	p.channelArg, p.instanceArg = p.channel, p.instance
	p.leaseArg, p.resendArg = ms(3*p.poll), ms(p.resend)
	p.bg, p.bgCancel = context.WithCancel(context.Background())
	return p, nil
}

// checkClient refuses a nil or typed-nil client and one that it can see
// ignores context deadlines; arg names the argument in the error.
func checkClient(c redis.UniversalClient, arg string) error {
	if c == nil {
		return &provider.ArgError{Arg: arg, Reason: "must not be nil"}
	}
	if v := reflect.ValueOf(c); v.Kind() == reflect.Pointer && v.IsNil() {
		return &provider.ArgError{Arg: arg, Reason: fmt.Sprintf("must not be a nil %T", c)}
	}
	if enabled, known := contextTimeouts(c); known && !enabled {
		return &provider.ArgError{Arg: arg,
			Reason: "set ContextTimeoutEnabled: true in its options: without it a context deadline cannot cut short a call to a hung Redis"}
	}
	return nil
}

// resendWindow is how long after a request's first execution go-redis may
// still re-send it: its retries times the time each attempt may take, at
// most a minute; 0 if it never re-sends.
func resendWindow(c redis.UniversalClient) time.Duration {
	var (
		retries         int
		read, write, bo time.Duration
	)
	switch c := c.(type) {
	case *redis.Client:
		o := c.Options()
		retries, read, write, bo = o.MaxRetries, o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff
	case *redis.ClusterClient:
		o := c.Options()
		retries, read, write, bo = max(o.MaxRetries, 0)+max(o.MaxRedirects, 0), o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff
	case *redis.Ring:
		o := c.Options()
		retries, read, write, bo = o.MaxRetries, o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff
	default:
		return time.Minute
	}
	if retries <= 0 {
		return 0
	}
	if read <= 0 || write <= 0 { // no socket timeout: only the context bounds it
		return time.Minute
	}
	return min(time.Duration(retries)*(read+write+bo)+time.Second, time.Minute)
}

// markerTTL is how long a marker that lets a re-sent request of a call with
// ctx find its first execution must live, in ms; 0 for none.
func (p *Provider) markerTTL(ctx context.Context) any {
	if p.resend == 0 {
		return 0
	}
	dl, ok := ctx.Deadline()
	if !ok {
		return p.resendArg // ms(p.resend), boxed once
	}
	return ms(min(p.resend, time.Until(dl)+time.Second))
}

// keyCounts are the key counts of runScript's command lines, boxed once.
var keyCounts = [...]any{"0", "1", "2", "3", "4", "5", "6", "7", "8"}

// runScript runs s with keys and args, as go-redis's Script.Run does:
// EVALSHA, and EVAL if Redis has lost the script (a restart, SCRIPT
// FLUSH). It sends one command line built in one slice, with the key
// count as a string; Run builds a second one and allocates to look for
// NOSCRIPT even in a reply without error.
func runScript(ctx context.Context, c redis.UniversalClient, s *nodeScript, keys []string, args []any) *redis.Cmd {
	line := make([]any, 3, 3+len(keys)+len(args))
	line[0], line[1] = "evalsha", s.sha
	if len(keys) < len(keyCounts) {
		line[2] = keyCounts[len(keys)]
	} else {
		line[2] = strconv.Itoa(len(keys))
	}
	for _, k := range keys {
		line = append(line, k)
	}
	cmd := redis.NewCmd(ctx, append(line, args...)...)
	if err := c.Process(ctx, cmd); noScript(err) {
		return s.s.Eval(ctx, c, keys, args...)
	}
	return cmd
}

// Client returns the client the Provider was created with, for a store that
// keeps its data beside the locks (repository/redisrepo).
func (p *Provider) Client() redis.UniversalClient { return p.c }

// DataKey returns a Redis key for data that a store keeps beside key's
// lock: it shares the lock's hash tag, so one script can check a Guard of
// key and touch the data in one Cluster slot. name must not be empty and
// must not start with "fence", "queue", "alive", "gone" or "rel", the
// provider's own names.
func (p *Provider) DataKey(key, name string) string {
	lock, _, _, _ := p.keys(key)
	return lock + ":" + name
}

// keys returns the Redis keys of key: the lock, the fence counter it draws
// from, its waiter queue and the waiters' deadlines. All are in one Cluster
// slot: the lock, queue and deadlines share the hash tag {key}, or, for a
// key with braces (which would end or empty the tag), a hash of the key,
// followed by the key itself; the counter is the one of that tag's slot
// (slot.go).
//
// The four are cut from one string, built in one allocation: they are
// built on every call.
func (p *Provider) keys(key string) (lock, fence, queue, alive string) {
	tag, suffix := key, ""
	if strings.ContainsAny(key, "{}") {
		h := fnv.New64a()
		h.Write([]byte(key))
		tag, suffix = "#"+strconv.FormatUint(h.Sum64(), 16), key
	}
	st := &slotTags()[slotOf(tag)]
	n := 0
	for n < len(st) && st[n] != 0 {
		n++
	}
	// "<lock>:queue<lock>:alive<prefix>{<slot tag>}:fences"
	lockLen := len(p.prefix) + len(tag) + 2 + len(suffix)
	var b strings.Builder
	b.Grow(2*lockLen + len(":queue:alive") + len(p.prefix) + n + len("{}:fences"))
	for _, part := range [...]string{":queue", ":alive"} {
		b.WriteString(p.prefix)
		b.WriteByte('{')
		b.WriteString(tag)
		b.WriteByte('}')
		b.WriteString(suffix)
		b.WriteString(part)
	}
	b.WriteString(p.prefix)
	b.WriteByte('{')
	b.Write(st[:n])
	b.WriteString("}:fences")
	all := b.String()
	q := lockLen + len(":queue")
	return all[:lockLen], all[2*q:], all[:q], all[q : 2*q]
}

// FenceCounter returns the Redis key of the counter that key's fences come
// from. Every key of one Cluster hash slot draws from the same counter, so
// at most 16384 counters exist, however many keys were ever locked. To
// restore fences after Redis lost them (docs/decisions.md, "Fences in
// Redis survive only what the counter survives"), raise this counter to at
// least the highest fence a store kept.
func (p *Provider) FenceCounter(key string) string {
	_, fence, _, _ := p.keys(key)
	return fence
}

// A Guard is the check that one hold is still live, for a store that
// writes its own data in the same Redis script (etcd's Mutex.IsOwner()
// shape): the store runs a GuardedScript with it and never learns the
// hold's format. Create one with Provider.Guard; the zero Guard holds
// nothing.
type Guard struct {
	p     *Provider
	lock  string
	fence string
	token string
}

// Guard returns the guard of the hold of key (as the provider sees it,
// namespace included) by token with fence.
func (p *Provider) Guard(key, token string, fence uint64) Guard {
	lock, _, _, _ := p.keys(key)
	return Guard{p: p, lock: lock, fence: strconv.FormatUint(fence, 10), token: token}
}

// A GuardedScript is a Lua script that runs under a Guard: its body may
// call guard_held(), which reports whether the guard's hold is live, and
// fence_less(a, b), which compares two fences given as decimal strings
// exactly. KEYS[1] and ARGV[1], ARGV[2] are the guard's; the script's own
// keys and arguments follow them. Keys must come from DataKey of the
// guarded key (one Cluster slot). Classify its errors with
// Provider.StoreError.
type GuardedScript struct{ s *redis.Script }

// NewGuardedScript returns body as a GuardedScript.
func NewGuardedScript(body string) *GuardedScript {
	return &GuardedScript{s: holdScript(body)}
}

// Run runs s under g (EVALSHA, and EVAL if Redis lost the script) on the
// provider's client, with keys as KEYS[2:] and args as ARGV[3:]. A zero
// Guard fails with provider.ErrNotHeld without a round trip.
func (s *GuardedScript) Run(ctx context.Context, g Guard, keys []string, args ...any) *redis.Cmd {
	if g.p == nil {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(fmt.Errorf("%w: zero guard", provider.ErrNotHeld))
		return cmd
	}
	return s.s.Run(ctx, g.p.c, append([]string{g.lock}, keys...), append([]any{g.fence, g.token}, args...)...)
}

// StoreError classifies err, from a go-redis call made with ctx on the
// provider's client, into the three classes of the package documentation:
// it returns nil for nil, err itself for provider.ErrClosed, an error
// matching provider.ErrUnavailable if the request cannot have been applied,
// and one matching provider.ErrOutcomeUnknown (and ErrUnavailable)
// otherwise. If ctx has ended, the error matches ctx.Err() too. err stays
// in the chain.
func (p *Provider) StoreError(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, provider.ErrClosed) {
		return err
	}
	cause := err
	if cerr := ctxErr(ctx); cerr != nil && !errors.Is(err, cerr) {
		cause = fmt.Errorf("%w: %w", cerr, err)
	}
	if p.cannotHaveApplied(err) {
		return provider.Unavailable(cause)
	}
	return provider.OutcomeUnknown(cause)
}

// notSent reports whether err shows that the request was not applied:
// Redis answered with an error, or the command never left the client.
func notSent(err error) bool {
	var re redis.Error
	if errors.As(err, &re) {
		return true // an error reply: the scripts fail before writing
	}
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// ctxErr returns ctx.Err(), or DeadlineExceeded once ctx's deadline has
// passed: a socket deadline taken from ctx can fire a moment before ctx
// itself reports it.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
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

// newNonce returns a request id: random, so that a fresh request by the
// same token is told apart from a re-sent one.
func newNonce() string { return strconv.FormatUint(rand.Uint64(), 36) }

// parseFence parses a fence sent by a script as a decimal string.
func parseFence(v any) (uint64, bool) {
	s, ok := v.(string)
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseUint(s, 10, 64)
	return f, err == nil && f > 0
}

// try runs the acquire script once, sent at start, for the request nonce
// (one per TryAcquire, one per Acquire call for all its tries); with join
// set, a refused caller joins the waiter queue, as try number seq of its
// call, and may be handed the key by a release. It returns the grant, or
// provider.ErrNotAcquired and when to try again unwoken (the holder's
// remaining TTL, or the head waiter's deadline), or a StoreError. When the
// outcome is unknown it has already handed the give-up of this request
// (free its hold, or make it refuse) to the clean-up goroutine.
func (p *Provider) try(ctx context.Context, key, token string, ttl time.Duration, join bool, nonce string, seq int, start time.Time) (provider.Grant, time.Duration, error) {
	instance := ""
	if join && p.subUp.Load() && !p.loads(ctx, key) { // a handoff can reach this call
		instance = p.instance
	}
	keys, args := p.acquireArgs(key, token, ttl, join, nonce, instance, seq)
	res, err := p.runAcquire(ctx, key, token, keys, args) // acquire.lua, or lock and load (load.go)
	if err != nil {
		err = p.StoreError(ctx, err)
		if errors.Is(err, provider.ErrOutcomeUnknown) { // it may have granted
			p.abandon(key, token, ttl, true, nonce)
		}
		return provider.Grant{}, 0, err
	}
	if len(res) == 3 { // the hold is already this request's: count from its PTTL
		if f, ok := parseFence(res[1]); ok {
			if pttl, ok := res[2].(int64); ok && res[0] == int64(1) {
				// PTTL is counted from Redis's clock in whole ms, so the
				// hold may lapse up to 1 ms before start + pttl.
				return provider.Grant{Fence: f, Expires: start.Add(time.Duration(pttl-1) * time.Millisecond)}, 0, nil
			}
		}
	}
	if len(res) == 2 {
		if ok, _ := res[0].(int64); ok == 1 {
			if f, ok := parseFence(res[1]); ok {
				return provider.Grant{Fence: f, Expires: start.Add(ttl)}, 0, nil
			}
		} else if d, ok := res[1].(int64); ok { // -1 (no TTL) is a foreign value: polling covers it
			return provider.Grant{}, time.Duration(d) * time.Millisecond, provider.ErrNotAcquired
		}
	}
	return provider.Grant{}, 0, fmt.Errorf("%w: acquire script returned %v", provider.ErrUnavailable, res)
}

// acquireArgs returns the KEYS and ARGV of the acquire script for one
// request (nonce) of token on key; with join set, a refused caller joins
// the waiter queue as try number seq of its call, to be handed the key on
// this Provider's channel if instance is not "".
func (p *Provider) acquireArgs(key, token string, ttl time.Duration, join bool, nonce, instance string, seq int) ([]string, []any) {
	lock, fence, queue, alive := p.keys(key)
	joinArg := 0
	if join {
		joinArg = 1
	}
	instanceArg := any("")
	if instance != "" {
		instanceArg = instance
		if instance == p.instance {
			instanceArg = p.instanceArg
		}
	}
	return []string{lock, fence, queue, alive}, []any{token, ms(ttl), joinArg, p.leaseArg, nonce, instanceArg, seq}
}

// loads reports whether ctx carries a HashRead of p for key. Such an
// Acquire takes no handoff: it is woken, and the try that takes the key
// reads the record in the same script (load.go), as many round trips as a
// handoff followed by a separate read, and the read stays atomic with the
// grant.
func (p *Provider) loads(ctx context.Context, key string) bool {
	rd, _ := provider.ReadOf(ctx, key).(*HashRead)
	return rd != nil && rd.p == p
}

// TryAcquire implements provider.Provider.
//
// Errors: provider.ErrNotAcquired if the key is held (by another token,
// by token itself, or by a value lockproof did not write), also with
// ctx.Err() if ctx had ended before the call; provider.ErrUnavailable if
// nothing was sent; provider.ErrOutcomeUnknown (with ctx.Err() if ctx
// ended) if the request was lost on its way: the provider then frees, in
// the background, any hold it took, so the key is not left locked for the
// whole TTL.
func (p *Provider) TryAcquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&p.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	g, _, err := p.try(ctx, key, token, ttl, false, newNonce(), 0, time.Now())
	return g, err
}

// Acquire implements provider.Provider. On a single node (not Cluster or
// Ring) the release hands the key to the head waiter and tells it so,
// without another round trip. Otherwise it retries when a release of key
// is published, when the holder's TTL runs out, and at the fallback
// interval.
//
// Errors: provider.ErrNotAcquired with ctx.Err() if ctx ended while it
// waited between tries; provider.ErrUnavailable at once if Redis cannot be
// reached (nothing was sent), rather than waiting for ctx;
// provider.ErrOutcomeUnknown, with ctx.Err() if ctx ended, if a try was
// lost in flight: as for TryAcquire, its hold is undone in the background.
// provider.ErrClosed if the Provider is closed meanwhile. It returns
// within ctx's deadline plus the bound of the package documentation.
func (p *Provider) Acquire(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&p.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if ctx.Err() != nil {
		return provider.Grant{}, provider.CtxError(ctx)
	}
	nonce := newNonce() // of the whole call: a handoff's hold carries it
	wake := make(chan struct{}, 1)
	grants := make(chan handoff, 1)
	defer p.watchAs(ctx, key, waiter{token: token, nonce: nonce, grants: grants}, wake)()
	var sent []time.Time // when each try was sent, by its number
	g, err := waitLoop(ctx, wake, grants, p.poll, func() (provider.Grant, time.Duration, error) {
		if p.closed.Load() {
			return provider.Grant{}, 0, provider.ErrClosed
		}
		if ctxErr(ctx) != nil { // nothing sent: a wait that timed out
			return provider.Grant{}, 0, provider.CtxError(ctx)
		}
		start := time.Now()
		sent = append(sent, start)
		return p.try(ctx, key, token, ttl, true, nonce, len(sent)-1, start)
	}, func(h handoff) (provider.Grant, bool) {
		if h.seq < 0 || h.seq >= len(sent) {
			return provider.Grant{}, false // not one of ours: a try asks Redis
		}
		// The try with number seq ran after it was sent, and the hold
		// lapses elapsed + TTL after that try ran, by Redis's clock.
		return provider.Grant{Fence: h.fence, Expires: sent[h.seq].Add(h.elapsed + time.Duration(ms(ttl))*time.Millisecond)}, true
	})
	if err != nil && !errors.Is(err, provider.ErrOutcomeUnknown) { // try handed that give-up over already
		p.giveUp(ctx, key, token, ttl, nonce)
	}
	return g, err
}

// queueLeaveBudget bounds how long a caller that will not hold a key waits
// for Redis to take it out of the queue before leaving that to the
// clean-up goroutine: a Redis that just answered the caller's try answers
// this in one round trip, so later callers see the queue as it is; a Redis
// that does not answer costs the caller at most this.
const queueLeaveBudget = 20 * time.Millisecond

// giveUp runs the give-up script for an Acquire call (its request nonce)
// that will not hold key: it takes token out of the queue (so the waiters
// behind need not wait for its deadline) and frees a hold that a release
// handed to the call meanwhile. It is tried at once for at most
// queueLeaveBudget; if Redis has not answered, the clean-up goroutine
// retries until Redis answers or the hold would have lapsed anyway.
func (p *Provider) giveUp(_ context.Context, key, token string, ttl time.Duration, nonce string) {
	p.abandon(key, token, ttl, false, nonce)
}

// abandon gives up the request nonce of token on key: giveUp, and, if
// unknown is set because its last try was lost, also frees a hold that try
// took or makes it refuse if it has not run yet. Every unknown outcome's
// undo runs in the clean-up goroutine.
func (p *Provider) abandon(key, token string, ttl time.Duration, unknown bool, nonce string) {
	g := pendingGiveUp{key: key, token: token, ttl: ttl, unknown: unknown, nonce: nonce, until: time.Now().Add(ttl)}
	if !unknown && p.runGiveUp(g, queueLeaveBudget) == nil {
		return
	}
	p.schedule(g)
}

// pendingGiveUp is a give-up that Redis has not confirmed.
type pendingGiveUp struct {
	key, token, nonce string
	ttl               time.Duration
	unknown           bool
	until             time.Time // after this the TTL has done the work
}

// runGiveUp runs g's script once, waiting at most timeout.
func (p *Provider) runGiveUp(g pendingGiveUp, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(p.bg, timeout)
	defer cancel()
	lock, _, queue, alive := p.keys(g.key)
	free := 0
	if g.unknown {
		free = 1
	}
	// EVAL, not EVALSHA: this rare path must not depend on a script cache
	// that a NOSCRIPT round trip could not refill in time.
	return giveUpScript.Eval(ctx, p.c, []string{lock, queue, alive},
		g.token, p.channel, g.key, free, ms(g.ttl), g.nonce).Err()
}

// schedule queues g for the clean-up goroutine, starting it if needed.
func (p *Provider) schedule(g pendingGiveUp) {
	p.cleanMu.Lock()
	defer p.cleanMu.Unlock()
	if p.closed.Load() {
		return // the TTL and the waiter deadline clean up
	}
	p.cleanQ = append(p.cleanQ, g)
	notify(p.cleanKick)
	if !p.cleanRunning {
		p.cleanRunning, p.cleanDone = true, make(chan struct{})
		go p.cleanUp(p.cleanDone)
	}
}

// cleanUp runs queued give-ups at once, retries the failed ones every poll
// interval (at most a second) until each succeeds or lapses, and exits
// when none is left; Close stops it.
func (p *Provider) cleanUp(done chan struct{}) {
	defer close(done)
	t := time.NewTimer(0)
	<-t.C
	defer t.Stop()
	for {
		p.cleanMu.Lock()
		todo := p.cleanQ
		p.cleanQ = nil
		p.cleanMu.Unlock()
		var again []pendingGiveUp
		for _, g := range todo {
			if p.bg.Err() != nil {
				return
			}
			if time.Now().Before(g.until) && p.runGiveUp(g, p.subTimeout) != nil {
				again = append(again, g)
			}
		}
		p.cleanMu.Lock()
		p.cleanQ = append(p.cleanQ, again...)
		if len(p.cleanQ) == 0 { // nothing left: exit; the next give-up restarts it
			p.cleanRunning = false
			p.cleanMu.Unlock()
			return
		}
		retry := len(again) > 0
		p.cleanMu.Unlock()
		if retry {
			t.Reset(min(p.poll, time.Second))
			select {
			case <-p.bg.Done():
				return
			case <-t.C:
			}
		}
	}
}

// tombstone is the key that tells a late Redlock acquire of token to refuse
// (a single node keeps its tombstones in the waiter hash: giveup.lua).
func tombstone(lock, token string) string { return lock + ":gone:" + token }

// releaseMarker is the key that tells a re-sent release of token (or a
// re-sent ForceRelease, token "") that it freed the lock.
func releaseMarker(lock, token string) string { return lock + ":rel:" + token }

// waitLoop calls try until it grants, fails otherwise than ErrNotAcquired,
// or ctx ends. Between tries it waits for a wake-up, a handoff, the
// holder's expiry or a jittered poll, whichever comes first. A handoff
// that granted turns into the grant it returns; one it cannot place (ok
// false) is checked by the next try, which finds the hold. A handoff that
// arrives when waitLoop has returned otherwise is the caller's to give
// back (the give-up frees a hold of its request).
func waitLoop(ctx context.Context, wake <-chan struct{}, grants <-chan handoff, poll time.Duration,
	try func() (provider.Grant, time.Duration, error), granted func(handoff) (provider.Grant, bool)) (provider.Grant, error) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		g, holderTTL, err := try()
		switch {
		case err == nil:
			return g, nil
		case !errors.Is(err, provider.ErrNotAcquired):
			return provider.Grant{}, err // a store error says itself whether ctx ended
		case ctx.Err() != nil:
			return provider.Grant{}, provider.CtxError(ctx)
		}
		d := time.Duration(float64(poll) * (0.5 + rand.Float64()))
		if holderTTL >= 0 && holderTTL < d {
			d = max(holderTTL, time.Millisecond) // PTTL 0: lapsing right now
		}
		timer.Reset(d)
		select {
		case <-wake:
		case h := <-grants:
			if g, ok := granted(h); ok {
				return g, nil
			}
		case <-timer.C:
		case <-ctx.Done():
			return provider.Grant{}, provider.CtxError(ctx)
		}
	}
}

// Release implements provider.Provider.
//
// Errors: provider.ErrNotHeld if token does not hold key (free, another
// holder, or a value lockproof did not write, which is left as it is); a
// release re-sent by go-redis after it freed the key reports success.
// provider.ErrUnavailable if nothing was sent; provider.ErrOutcomeUnknown
// (with ctx.Err() if ctx ended) if the request was lost on its way: the
// key may have been freed.
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
	if err := ctx.Err(); err != nil {
		return false, provider.Unavailable(err)
	}
	lock, fence, queue, alive := p.keys(key)
	n, err := runScript(ctx, p.c, releaseSha, []string{lock, queue, releaseMarker(lock, token), fence, alive},
		[]any{token, p.channelArg, key, newNonce(), p.markerTTL(ctx)}).Int64()
	if err != nil {
		return false, p.StoreError(ctx, err)
	}
	return n == 1, nil
}

// Extend implements provider.Provider.
//
// Errors: provider.ErrNotHeld if token does not hold key (a foreign value
// is left as it is); provider.ErrUnavailable if nothing was sent;
// provider.ErrOutcomeUnknown (with ctx.Err() if ctx ended) if the request
// was lost on its way: the TTL may have been set. Running twice sets the
// same TTL, so a re-sent extend is harmless.
func (p *Provider) Extend(ctx context.Context, key, token string, ttl time.Duration) (provider.Grant, error) {
	if err := usable(&p.closed, provider.CheckKey(key), provider.CheckToken(token), provider.CheckTTL(ttl)); err != nil {
		return provider.Grant{}, err
	}
	if err := ctx.Err(); err != nil {
		return provider.Grant{}, provider.Unavailable(err)
	}
	lock, _, _, _ := p.keys(key)
	start := time.Now()
	res, err := extendScript.Run(ctx, p.c, []string{lock}, token, ms(ttl)).Result()
	if err != nil {
		return provider.Grant{}, p.StoreError(ctx, err)
	}
	if n, ok := res.(int64); ok && n == 0 {
		return provider.Grant{}, provider.ErrNotHeld
	}
	fence, ok := parseFence(res)
	if !ok {
		return provider.Grant{}, fmt.Errorf("%w: extend script returned %v", provider.ErrUnavailable, res)
	}
	return provider.Grant{Fence: fence, Expires: start.Add(ttl)}, nil
}

// State implements provider.Provider. A key that holds a value lockproof
// did not write is reported with an error matching provider.ErrNotHeld (no
// token holds it; an acquire refuses it). Errors otherwise:
// provider.ErrUnavailable, or provider.ErrOutcomeUnknown for a lost reply
// (State changes nothing either way).
func (p *Provider) State(ctx context.Context, key string) (provider.State, error) {
	if err := usable(&p.closed, provider.CheckKey(key)); err != nil {
		return provider.State{}, err
	}
	if err := ctx.Err(); err != nil {
		return provider.State{}, provider.Unavailable(err)
	}
	lock, _, _, _ := p.keys(key)
	res, err := stateScript.Run(ctx, p.c, []string{lock}).Result()
	if err != nil {
		return provider.State{}, p.StoreError(ctx, err)
	}
	if n, ok := res.(int64); ok && n == 0 {
		return provider.State{}, fmt.Errorf("redisprovider: %w: %q holds a value lockproof did not write", provider.ErrNotHeld, lock)
	}
	arr, _ := res.([]any)
	if len(arr) == 0 {
		return provider.State{}, nil
	}
	if len(arr) == 3 {
		token, _ := arr[0].(string)
		fence, ok := parseFence(arr[1])
		pttl, _ := arr[2].(int64)
		if ok && token != "" {
			return provider.State{Held: true, Token: token, Fence: fence, TTL: time.Duration(max(pttl, 0)) * time.Millisecond}, nil
		}
	}
	return provider.State{}, fmt.Errorf("%w: state script returned %v", provider.ErrUnavailable, res)
}

// ForceRelease implements provider.Provider. A value lockproof did not
// write is left as it is (false). Errors as for Release.
func (p *Provider) ForceRelease(ctx context.Context, key string) (bool, error) {
	if err := usable(&p.closed, provider.CheckKey(key)); err != nil {
		return false, err
	}
	return p.release(ctx, key, "")
}

// Close stops the wake-up subscription and the clean-up goroutine, ends
// waiting Acquire calls and fails later calls with provider.ErrClosed.
// Holds stay in Redis until released by another Provider or until they
// expire; a request already sent may still apply. Close is idempotent and
// does not close the client.
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
	p.bgCancel()
	p.cleanMu.Lock()
	cleaned := p.cleanDone
	running := p.cleanRunning
	p.cleanMu.Unlock()
	if running {
		<-cleaned
	}
	p.subMu.Lock()
	sub, done := p.sub, p.subDone
	p.sub = nil
	p.subUp.Store(false)
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
	return p.watchAs(ctx, key, waiter{token: token}, ch)
}

// watchAs is watch for w, which also takes handoffs to its call if
// w.grants is set.
func (p *Provider) watchAs(ctx context.Context, key string, w waiter, ch chan struct{}) (stop func()) {
	p.mu.Lock()
	set := p.waiters[key]
	if set == nil {
		set = make(map[chan struct{}]waiter)
		p.waiters[key] = set
	}
	set[ch] = w
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
	d, hasDeadline := ctx.Deadline()
	hurried := hasDeadline && time.Until(d) < 2*p.subTimeout // the caller's deadline may cut it short
	ctx, cancel := context.WithTimeout(ctx, p.subTimeout)
	defer cancel()
	sub := p.c.Subscribe(ctx) // no channel yet: connects nothing
	// Subscribing connects, bounded by ctx. go-redis keeps the context of
	// the first receive for the life of the subscription (pings,
	// reconnects), so that one must not end; the timeout bounds it.
	channels := []string{p.channel}
	if p.grants != "" {
		channels = append(channels, p.grants) // one command: confirmed together
	}
	err := sub.Subscribe(ctx, channels...)
	wait := p.subTimeout // the caller's deadline bounds it too
	if err == nil {
		if d, ok := ctx.Deadline(); ok {
			wait = max(min(wait, time.Until(d)/2), time.Millisecond) // leave time for a try
		}
		_, err = sub.ReceiveTimeout(context.Background(), wait) // the confirmation
	}
	if err != nil {
		_ = sub.Close()
		// A caller whose own deadline cut the attempt short says nothing
		// about Redis: the next waiter tries again at once. Only a failure
		// within the full timeout makes waiters poll for a while.
		if !hurried {
			p.subFailed = time.Now()
		}
		return
	}
	p.sub, p.subDone = sub, make(chan struct{})
	p.subUp.Store(true)
	go p.dispatch(sub.Channel(), p.subDone)
}

// dispatch wakes the waiter named by each message, and hands each handoff
// to the Acquire call it is for, until the subscription is closed. go-redis
// reconnects a broken subscription by itself; releases published meanwhile
// are caught by the waiters' fallback polling (a handoff sent meanwhile
// reached no subscriber, so the release did not make it). A handoff whose
// call no longer waits is dropped: that call's give-up frees its hold.
func (p *Provider) dispatch(msgs <-chan *redis.Message, done chan struct{}) {
	defer close(done)
	for m := range msgs {
		if p.grants != "" && m.Channel == p.grants {
			p.deliver(m.Payload)
			continue
		}
		head, key, ok := parseWake(m.Payload)
		if !ok {
			continue
		}
		p.mu.Lock()
		for ch, w := range p.waiters[key] {
			if w.token == "" || w.token == head {
				notify(ch)
			}
		}
		p.mu.Unlock()
	}
}

// deliver passes a handoff message to the call it names.
func (p *Provider) deliver(msg string) {
	key, token, nonce, h, ok := parseHandoff(msg)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.waiters[key] {
		if w.grants != nil && w.nonce == nonce && w.token == token {
			select {
			case w.grants <- h:
			default: // one handoff per call; a second is a duplicate
			}
		}
	}
}

// parseHandoff splits a handoff "<fence> <elapsed ms> <seq> <nonce>
// <len(token)>:<token><key>" (see release.lua).
func parseHandoff(msg string) (key, token, nonce string, h handoff, ok bool) {
	f := strings.SplitN(msg, " ", 5)
	if len(f) != 5 {
		return "", "", "", handoff{}, false
	}
	fence, okF := parseFence(f[0])
	elapsed, errE := strconv.ParseInt(f[1], 10, 64)
	seq, errS := strconv.Atoi(f[2])
	token, key, okW := parseWake(f[4])
	if !okF || errE != nil || elapsed < 0 || errS != nil || f[3] == "" || !okW {
		return "", "", "", handoff{}, false
	}
	return key, token, f[3], handoff{fence: fence, elapsed: time.Duration(elapsed) * time.Millisecond, seq: seq}, true
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
