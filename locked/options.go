package locked

import (
	"strconv"
	"time"
)

// Defaults used when Options leave a field zero.
const (
	DefaultTTL     = 30 * time.Second
	DefaultTimeout = 5 * time.Second
)

// MaxTTL is the longest TTL WithTTL accepts. A lock that should outlive it
// is a lock without expiry: ask for one with WithNoExpiry. State reports a
// hold whose remaining TTL exceeds MaxTTL as NoExpiry.
const MaxTTL = 10 * 365 * 24 * time.Hour

// noExpiryTTL is the TTL sent to the store for WithNoExpiry: a century,
// which every provider already stores (Redis PX, memprovider's clock), so a
// hold without expiry needs no new store format. See docs/decisions.md.
const noExpiryTTL = 100 * 365 * 24 * time.Hour

// Options configure a Service. A nil *Options, and every zero field, means
// the default.
type Options struct {
	// TTL is how long a lease lives unless extended. Default DefaultTTL.
	TTL time.Duration

	// Timeout bounds how long Acquire waits for a held key, on top of the
	// caller's context. Default DefaultTimeout. With NoTimeout set, only
	// the caller's context bounds the wait.
	Timeout time.Duration

	// NoTimeout makes Acquire wait as long as the caller's context lasts,
	// ignoring Timeout (per call: WithNoTimeout). Default false.
	NoTimeout bool

	// MaxRetries, if positive, bounds the attempts of Acquire to
	// 1 + MaxRetries, each retry waiting at most RetryDelay for a release to
	// wake it; Timeout (or the context) still bounds the whole wait. Zero
	// means no count: one wait, woken by releases, until Timeout. Per call:
	// WithMaxRetries. Default 0.
	MaxRetries int

	// RetryDelay is the longest wait of each retry counted by MaxRetries.
	// Default Timeout / (MaxRetries + 1).
	RetryDelay time.Duration

	// AutoRenew extends every lease at a third of its TTL until it is
	// released, so a lease only lapses if its holder's process stops or the
	// store is unreachable for most of a TTL. Per call: WithAutoRenew,
	// WithoutAutoRenew. Default false.
	AutoRenew bool

	// Owner names this Service's holder in tokens and State. Default: a new
	// random ID per Service (16 characters of URL-safe base64, 96 bits).
	// Tokens stay unique even when several processes share an Owner. Per
	// call: WithOwner.
	Owner string

	// Namespace, if set, prefixes every key in the store with
	// Namespace + ":" so several apps can share one store. Keys reported
	// back (Lease.Key, events, errors) are the caller's, without it.
	// Default "" (no prefix).
	Namespace string

	// OnEvent, if set, is subscribed to every lease event from the start,
	// as by Subscribe. Default nil.
	OnEvent func(Event)
}

// CallOption adjusts one call: an acquire, a run, a restore.
type CallOption func(*callOptions)

type callOptions struct {
	ttl        time.Duration
	timeout    time.Duration
	noTimeout  bool
	maxRetries int
	retryDelay time.Duration
	autoRenew  bool
	noExpiry   bool
	owner      string
	reentrant  bool
	bad        error // the first invalid option, reported by the call
}

func (o *callOptions) reject(arg, reason string) {
	if o.bad == nil {
		o.bad = invalid(arg, reason)
	}
}

func (o *callOptions) rejectDuration(arg string, d time.Duration) {
	o.reject(arg, "must be positive, got "+d.String())
}

// WithTTL sets this lease's time to live; it must be positive and at most
// MaxTTL. Default: the Service's Options.TTL.
func WithTTL(d time.Duration) CallOption {
	return func(o *callOptions) {
		switch {
		case d <= 0:
			o.rejectDuration("ttl", d)
		case d > MaxTTL:
			o.reject("ttl", "must be at most MaxTTL, got "+d.String()+" (use WithNoExpiry)")
		}
		o.ttl = d
	}
}

// WithNoExpiry takes a lock that never lapses: only its holder (Release,
// Close, Service.Release by owner) or ForceRelease frees it. ExtendTo and ExtendBy on it
// fails with ErrInvalid, auto-renewal is off, Lease.NoExpiry and
// State.NoExpiry report it. A process that dies holding one leaves the key
// locked until an operator force-releases it: prefer a TTL with
// auto-renewal unless that is what you want. Default: locks expire.
func WithNoExpiry() CallOption {
	return func(o *callOptions) { o.noExpiry = true }
}

// WithTimeout sets how long this acquire waits for a held key; it must be
// positive. Default: the Service's Options.Timeout.
func WithTimeout(d time.Duration) CallOption {
	return func(o *callOptions) {
		if d <= 0 {
			o.rejectDuration("timeout", d)
		}
		o.timeout = d
		o.noTimeout = false
	}
}

// WithNoTimeout makes this acquire wait as long as its context lasts,
// ignoring the Service's Timeout. Default: Options.NoTimeout.
func WithNoTimeout() CallOption {
	return func(o *callOptions) { o.noTimeout = true }
}

// WithMaxRetries bounds this acquire to 1 + n attempts: a first try, then
// n retries, each waiting at most delay for a release to wake it (a release
// still wakes it at once). The timeout still bounds the whole call. n must
// not be negative (0 means: try once, as TryAcquire); delay zero means the
// timeout divided by n + 1, otherwise it must be positive. Default:
// Options.MaxRetries and Options.RetryDelay.
func WithMaxRetries(n int, delay time.Duration) CallOption {
	return func(o *callOptions) {
		switch {
		case n < 0:
			o.reject("maxRetries", "must not be negative, got "+strconv.Itoa(n))
		case delay < 0:
			o.rejectDuration("retryDelay", delay)
		}
		o.maxRetries, o.retryDelay = n, delay
		if n == 0 {
			o.maxRetries = -1 // one try: distinct from "no count"
		}
	}
}

// WithAutoRenew renews this lease at a third of its TTL until it is
// released. Default: the Service's Options.AutoRenew.
func WithAutoRenew() CallOption {
	return func(o *callOptions) { o.autoRenew = true }
}

// WithoutAutoRenew turns renewal off for this lease when the Service
// renews by default (Options.AutoRenew).
func WithoutAutoRenew() CallOption {
	return func(o *callOptions) { o.autoRenew = false }
}

// WithOwner acquires for owner (a user, a job) instead of the Service's
// Options.Owner. The lease's token stays unique; State, Lease.Owner and
// Service.Release(ctx, key, owner) see owner. It must be non-empty and
// must not contain '/'. Default: the Service's owner.
func WithOwner(owner string) CallOption {
	return func(o *callOptions) {
		if err := checkOwner(owner); err != nil && o.bad == nil {
			o.bad = err
		}
		o.owner = owner
	}
}

// WithReentrant lets the owner of this call (WithOwner, or the Service's)
// acquire a key it already holds: instead of waiting for itself, the call
// extends the existing hold to this call's TTL and returns a lease on that
// same hold (same token and fence; releasing either lease frees the key).
// A different owner is treated as without it: Acquire waits, TryAcquire
// refuses. It cannot be combined with WithNoExpiry. Default: off, and
// acquiring a key held by the same owner waits like any other.
func WithReentrant() CallOption {
	return func(o *callOptions) { o.reentrant = true }
}

func (s *Service) callOptions(opts []CallOption) callOptions {
	if len(opts) == 0 {
		return s.defaults
	}
	o := applyOptions(s.defaults, opts)
	if o.noExpiry {
		if o.reentrant && o.bad == nil {
			o.reject("options", "WithReentrant cannot be combined with WithNoExpiry")
		}
		o.ttl, o.autoRenew = noExpiryTTL, false
	}
	return o
}

// defaultOptions returns the options of a call without any, from the
// Service's Options (New keeps them in s.defaults).
func (s *Service) defaultOptions() callOptions {
	return callOptions{
		ttl: s.ttl, timeout: s.timeout, noTimeout: s.noTimeout,
		maxRetries: s.maxRetries, retryDelay: s.retryDelay,
		autoRenew: s.autoRenew, owner: s.owner,
	}
}

// applyOptions returns o with opts applied. It is apart from callOptions
// because the options' pointer makes its o escape to the heap: a call
// without options does not pay for that allocation.
func applyOptions(o callOptions, opts []CallOption) callOptions {
	for _, opt := range opts {
		opt(&o)
	}
	return o
}
